"""Metrics, plots and error tables for any predictor that gives probabilities in ``LABELS`` order.

The model, the rules-only engine, the full scorer and the baselines are all measured here, the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from duanka.labels import LABELS, NORMAL, RISKY_LABELS
from duanka.training.features import FittedModel, risk_of

__all__ = [
    "DecisionMetrics",
    "LabelMetrics",
    "Metrics",
    "confusion_figure",
    "errors_table",
    "metrics",
    "pr_figure",
    "precision_at_prevalence",
    "recall_at_precision",
    "top_terms",
]


def recall_at_precision(is_risky: np.ndarray, risk: np.ndarray, precision: float) -> float:
    """The highest recall of risky posts at any threshold whose precision is at least ``precision``."""
    if is_risky.sum() == 0:
        return 0.0
    p, r, _ = precision_recall_curve(is_risky, risk)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


@dataclass(frozen=True)
class LabelMetrics:
    """One label, one-vs-rest."""

    precision: float
    recall: float
    f1: float
    support: int
    pr_auc: float


@dataclass(frozen=True)
class DecisionMetrics:
    """One decision level (``review`` or ``block``): risky posts among those it flags, risky posts it flags.

    ``normal_rate`` is the share of normal posts it flags; ``precision_at_1pct``/``precision_at_0_1pct`` are the
    precision it would have on traffic where 1% / 0.1% of posts are risky (recall and normal rate carried over).
    """

    precision: float
    recall: float
    share: float
    normal_rate: float = 0.0
    precision_at_1pct: float = 0.0
    precision_at_0_1pct: float = 0.0


@dataclass(frozen=True)
class Metrics:
    """Quality figures of one predictor on one labeled set.

    ``confusion_matrix`` rows are true labels and columns predicted ones, in ``LABELS`` order; ``risk_*``
    figures treat risk (1 − P(normal)) as a score for "risky"; ``decisions`` exist when thresholds were given.
    """

    rows: int
    macro_f1: float
    accuracy: float
    confusion_matrix: list[list[int]]
    labels: dict[str, LabelMetrics]
    normal_fpr: float
    risk_roc_auc: float
    risk_pr_auc: float
    risk_recall_at_p95: float
    risk_recall_at_p99: float
    decisions: dict[str, DecisionMetrics] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON form: ``macro_f1``, ``card_trading_f1``, ``block_precision`` … (MLflow and manifest keys)."""
        flat: dict[str, Any] = {
            "rows": self.rows,
            "macro_f1": self.macro_f1,
            "accuracy": self.accuracy,
            "confusion_matrix": self.confusion_matrix,
        }
        for label, values in self.labels.items():
            flat.update({f"{label}_{k}": v for k, v in asdict(values).items()})
        flat.update(
            normal_fpr=self.normal_fpr,
            risk_roc_auc=self.risk_roc_auc,
            risk_pr_auc=self.risk_pr_auc,
            risk_recall_at_p95=self.risk_recall_at_p95,
            risk_recall_at_p99=self.risk_recall_at_p99,
        )
        for level, values in (self.decisions or {}).items():
            flat.update({f"{level}_{k}": v for k, v in asdict(values).items()})
        return flat

    def scalars(self, prefix: str) -> dict[str, float]:
        """The numeric figures, prefixed (``holdout_macro_f1``), for MLflow."""
        return {f"{prefix}_{k}": float(v) for k, v in self.to_dict().items() if isinstance(v, (int, float))}


def precision_at_prevalence(recall: float, normal_rate: float, prevalence: float) -> float:
    """Precision of a decision on traffic where ``prevalence`` of posts are risky."""
    flagged = prevalence * recall + (1.0 - prevalence) * normal_rate
    return float(prevalence * recall / flagged) if flagged > 0 else 0.0


def _decision_metrics(flagged: np.ndarray, is_risky: np.ndarray, normal_rows: np.ndarray) -> DecisionMetrics:
    """What one decision level does on labeled rows: ``flagged`` is true where the level is reached."""
    recall = float(flagged[is_risky].mean()) if is_risky.any() else 0.0
    normal_rate = float(flagged[normal_rows].mean()) if normal_rows.any() else 0.0
    return DecisionMetrics(
        precision=float(is_risky[flagged].mean()) if flagged.any() else 0.0,
        recall=recall,
        share=float(flagged.mean()),
        normal_rate=normal_rate,
        precision_at_1pct=precision_at_prevalence(recall, normal_rate, 0.01),
        precision_at_0_1pct=precision_at_prevalence(recall, normal_rate, 0.001),
    )


def metrics(
    y_true: list[str] | np.ndarray,
    proba: np.ndarray,
    thresholds: dict[str, float] | None = None,
    decision_risk: np.ndarray | None = None,
) -> Metrics:
    """Quality figures for probabilities ``proba`` (columns in ``LABELS`` order) against ``y_true``.

    Args:
        y_true: the true labels.
        proba: one row of probabilities per post, columns in ``LABELS`` order.
        thresholds: ``{"review": r, "block": b}`` on risk; adds the precision, recall and share of each level.
        decision_risk: the risk decisions are taken on, when it differs from 1 − P(normal) (the evidence gate).

    Returns:
        A :class:`Metrics`.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    predicted = np.asarray(LABELS)[proba.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=list(LABELS), zero_division=0
    )
    per_label = {}
    for i, label in enumerate(LABELS):
        truth = y_true == label
        per_label[label] = LabelMetrics(
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(support[i]),
            pr_auc=float(average_precision_score(truth, proba[:, i])) if truth.any() else 0.0,
        )
    normal_rows = y_true == NORMAL
    is_risky = np.isin(y_true, RISKY_LABELS)
    risk = risk_of(proba)
    both = 0 < is_risky.sum() < len(is_risky)
    decisions = None
    if thresholds:
        seen = risk if decision_risk is None else np.asarray(decision_risk, dtype=float)
        decisions = {
            level: _decision_metrics(seen >= thresholds[level], is_risky, normal_rows) for level in ("review", "block")
        }
    return Metrics(
        rows=len(y_true),
        macro_f1=float(np.mean(f1)),
        accuracy=float(np.mean(predicted == y_true)),
        confusion_matrix=confusion_matrix(y_true, predicted, labels=list(LABELS)).tolist(),
        labels=per_label,
        normal_fpr=float(np.mean(predicted[normal_rows] != NORMAL)) if normal_rows.any() else 0.0,
        risk_roc_auc=float(roc_auc_score(is_risky, risk)) if both else 0.0,
        risk_pr_auc=float(average_precision_score(is_risky, risk)) if both else 0.0,
        risk_recall_at_p95=recall_at_precision(is_risky, risk, 0.95),
        risk_recall_at_p99=recall_at_precision(is_risky, risk, 0.99),
        decisions=decisions,
    )


def errors_table(frame: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    """Misclassified rows of ``frame`` with predicted label, risk and per-label probabilities."""
    predicted = np.asarray(LABELS)[np.asarray(proba).argmax(axis=1)]
    table = frame[[c for c in ("id", "text", "label", "group", "source") if c in frame.columns]].copy()
    table["predicted"] = predicted
    table["risk"] = risk_of(proba)
    for i, label in enumerate(LABELS):
        table[f"p_{label}"] = np.asarray(proba)[:, i]
    return table[table["predicted"] != table["label"]].sort_values("risk", ascending=False)


def top_terms(pipeline: Any, n: int = 30) -> pd.DataFrame:
    """The ``n`` features that push hardest toward each label (weight relative to the label average)."""
    model = FittedModel(pipeline)
    push = model.push()
    names = model.feature_names()
    rows = []
    for k, label in enumerate(LABELS):
        weights = push[k]
        for rank, j in enumerate(np.argsort(-weights)[:n], start=1):
            rows.append({"label": label, "rank": rank, "feature": names[j], "weight": float(weights[j])})
    return pd.DataFrame(rows)


def confusion_figure(result: Metrics, title: str) -> Any:
    """A confusion-matrix plot (matplotlib Figure) from :class:`Metrics`."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (notebooks) alone

    matrix = np.asarray(result.confusion_matrix)
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(LABELS)), LABELS, rotation=20)
    axes.set_yticks(range(len(LABELS)), LABELS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            axes.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    axes.set_title(title)
    figure.tight_layout()
    return figure


def pr_figure(y_true: list[str] | np.ndarray, proba: np.ndarray, title: str) -> Any:
    """Precision-recall curves: one per label (one-vs-rest) and one for the risk score."""
    from matplotlib.figure import Figure

    y_true = np.asarray(y_true)
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.subplots()
    for i, label in enumerate(LABELS):
        truth = y_true == label
        if truth.any():
            p, r, _ = precision_recall_curve(truth, proba[:, i])
            axes.plot(r, p, label=f"{label} (AP {average_precision_score(truth, proba[:, i]):.3f})")
    is_risky = np.isin(y_true, RISKY_LABELS)
    if 0 < is_risky.sum() < len(is_risky):
        risk = risk_of(proba)
        p, r, _ = precision_recall_curve(is_risky, risk)
        axes.plot(r, p, "k--", label=f"risk (AP {average_precision_score(is_risky, risk):.3f})")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower left", fontsize=8)
    axes.set_title(title)
    figure.tight_layout()
    return figure
