"""Metrics, plots and error tables for any predictor that gives probabilities in ``LABELS`` order.

The model, the rules-only engine, the full scorer and the baselines are all measured here, the same way.
"""

from __future__ import annotations

from typing import Any, Protocol

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

__all__ = [
    "Predictor",
    "confusion_figure",
    "errors_table",
    "metrics",
    "pr_figure",
    "recall_at_precision",
    "top_terms",
]


class Predictor(Protocol):
    """Anything that scores texts: the fitted pipeline, a Scorer, the rules engine, a baseline."""

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


def recall_at_precision(is_risky: np.ndarray, risk: np.ndarray, precision: float) -> float:
    """The highest recall of risky posts at any threshold whose precision is at least ``precision``."""
    if is_risky.sum() == 0:
        return 0.0
    p, r, _ = precision_recall_curve(is_risky, risk)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


def metrics(
    y_true: list[str] | np.ndarray, proba: np.ndarray, thresholds: dict[str, float] | None = None
) -> dict[str, Any]:
    """Quality figures for probabilities ``proba`` (columns in ``LABELS`` order) against ``y_true``.

    Returns:
        Per-label precision/recall/F1 and one-vs-rest PR-AUC, macro-F1, accuracy, the confusion matrix
        (rows: true, columns: predicted, in ``LABELS`` order), false-positive rate on ``normal`` rows,
        and for the risk score (1 − P(normal)) ROC-AUC, PR-AUC and recall at precision 0.95 and 0.99;
        with ``thresholds``, the precision and recall of each decision level too.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    predicted = np.asarray(LABELS)[proba.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=list(LABELS), zero_division=0
    )
    result: dict[str, Any] = {
        "rows": len(y_true),
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(np.mean(predicted == y_true)),
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=list(LABELS)).tolist(),
    }
    for i, label in enumerate(LABELS):
        result[f"{label}_precision"] = float(precision[i])
        result[f"{label}_recall"] = float(recall[i])
        result[f"{label}_f1"] = float(f1[i])
        result[f"{label}_support"] = int(support[i])
        truth = y_true == label
        result[f"{label}_pr_auc"] = float(average_precision_score(truth, proba[:, i])) if truth.any() else 0.0
    normal_rows = y_true == NORMAL
    result["normal_fpr"] = float(np.mean(predicted[normal_rows] != NORMAL)) if normal_rows.any() else 0.0
    is_risky = np.isin(y_true, RISKY_LABELS)
    risk = 1.0 - proba[:, LABELS.index(NORMAL)]
    both = 0 < is_risky.sum() < len(is_risky)
    result["risk_roc_auc"] = float(roc_auc_score(is_risky, risk)) if both else 0.0
    result["risk_pr_auc"] = float(average_precision_score(is_risky, risk)) if both else 0.0
    result["risk_recall_at_p95"] = recall_at_precision(is_risky, risk, 0.95)
    result["risk_recall_at_p99"] = recall_at_precision(is_risky, risk, 0.99)
    if thresholds:
        for level in ("review", "block"):
            flagged = risk >= thresholds[level]
            result[f"{level}_precision"] = float(is_risky[flagged].mean()) if flagged.any() else 0.0
            result[f"{level}_recall"] = float(flagged[is_risky].mean()) if is_risky.any() else 0.0
            result[f"{level}_share"] = float(flagged.mean())
    return result


def scalar_metrics(result: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numeric entries of a metrics dict, prefixed (``holdout_macro_f1``), for MLflow."""
    return {f"{prefix}_{k}": float(v) for k, v in result.items() if isinstance(v, (int, float))}


def errors_table(frame: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    """Misclassified rows of ``frame`` with predicted label, risk and per-label probabilities."""
    predicted = np.asarray(LABELS)[np.asarray(proba).argmax(axis=1)]
    table = frame[[c for c in ("id", "text", "label", "group", "source") if c in frame.columns]].copy()
    table["predicted"] = predicted
    table["risk"] = 1.0 - np.asarray(proba)[:, LABELS.index(NORMAL)]
    for i, label in enumerate(LABELS):
        table[f"p_{label}"] = np.asarray(proba)[:, i]
    return table[table["predicted"] != table["label"]].sort_values("risk", ascending=False)


def top_terms(pipeline: Any, n: int = 30) -> pd.DataFrame:
    """The ``n`` features that push hardest toward each label (weight relative to the label average)."""
    from duanka.features import feature_names

    classifier = pipeline.named_steps["classifier"]
    classes = [str(c) for c in classifier.classes_]
    coef = classifier.coef_
    push = coef - coef.mean(axis=0, keepdims=True)
    names = feature_names(pipeline)
    rows = []
    for label in LABELS:
        weights = push[classes.index(label)]
        for rank, j in enumerate(np.argsort(-weights)[:n], start=1):
            rows.append({"label": label, "rank": rank, "feature": names[j], "weight": float(weights[j])})
    return pd.DataFrame(rows)


def confusion_figure(result: dict[str, Any], title: str) -> Any:
    """A confusion-matrix plot (matplotlib Figure) from a metrics dict."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (notebooks) alone

    matrix = np.asarray(result["confusion_matrix"])
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
        risk = 1.0 - proba[:, LABELS.index(NORMAL)]
        p, r, _ = precision_recall_curve(is_risky, risk)
        axes.plot(r, p, "k--", label=f"risk (AP {average_precision_score(is_risky, risk):.3f})")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower left", fontsize=8)
    axes.set_title(title)
    figure.tight_layout()
    return figure
