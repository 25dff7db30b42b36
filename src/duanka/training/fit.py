"""Fit the pipeline: choose ``C`` by group-aware cross-validation and the normal weight on the out-of-fold
predictions, refit on all training rows. Knows nothing of thresholds, MLflow, artifacts or the holdout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from duanka.errors import DataError
from duanka.labels import LABELS, NORMAL
from duanka.scoring.evidence_gate import gate_for
from duanka.text.normalize import normalize
from duanka.training.augment import augment_frame
from duanka.training.config import TrainConfig
from duanka.training.dataset import group_kfold
from duanka.training.features import build_pipeline, proba_in_label_order

__all__ = ["TrainResult", "macro_f1", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """A fitted pipeline and what cross-validation measured on the way (thresholds are chosen by the caller).

    ``validation_proba`` holds the out-of-fold probabilities of the labeled rows (``train_frame``), with the
    chosen normal weight applied: the one set of validation predictions every later choice is made on.
    """

    pipeline: Pipeline
    config: TrainConfig
    C: float
    cv_macro_f1: dict[float, float]
    validation_proba: np.ndarray
    train_frame: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    background_rows: int = 0
    gate_ceilings: np.ndarray | None = None  # the evidence gate's ceiling ("block", "review", "pass") per labeled row
    background_proba: np.ndarray | None = None  # out-of-fold probabilities of the background rows, if any
    background_ceilings: np.ndarray | None = None  # the gate's ceiling per background row
    normal_weight: float = 1.0  # prior weight on ``normal`` folded into the model's intercept
    label_macro_f1: dict[float, float] = field(default_factory=dict)  # validation macro-F1 per normal weight

    @property
    def gate_open(self) -> np.ndarray | None:
        """Labeled rows the evidence gate leaves to the model (thresholds are chosen on these)."""
        return None if self.gate_ceilings is None else self.gate_ceilings != "pass"


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _check_labels(frame: pd.DataFrame, folds: int) -> None:
    """Every label needs rows in at least ``folds`` groups, or cross-validation and the classifier cannot work."""
    groups_per_label = frame.groupby("label")["group"].nunique()
    short = {label: int(groups_per_label.get(label, 0)) for label in LABELS if groups_per_label.get(label, 0) < folds}
    if short:
        found = ", ".join(f"{label} in {count} group(s)" for label, count in short.items())
        raise DataError(
            f"cannot train: every label ({', '.join(LABELS)}) needs rows in at least {folds} groups (cv_folds); "
            f"found {found}"
        )


@dataclass
class _Rows:
    """The rows a model is fitted on: labeled rows first, then presumed-normal background rows."""

    frame: pd.DataFrame
    labeled_rows: int
    weights: np.ndarray
    normalized: np.ndarray

    @property
    def labeled(self) -> np.ndarray:
        return np.arange(len(self.frame)) < self.labeled_rows


def _fit_rows(
    train_frame: pd.DataFrame, config: TrainConfig, background: list[str] | None, progress: Progress | None
) -> _Rows:
    """Training rows with obfuscated copies (``augment_copies``) and background rows added, weighted, normalized."""
    frame = train_frame.reset_index(drop=True)
    if config.augment_copies > 0:
        extra = augment_frame(frame, copies=config.augment_copies, seed=config.seed)
        frame = pd.concat([frame, extra], ignore_index=True)
        _say(progress, f"augmented: +{len(extra)} obfuscated rows")
    labeled_rows = len(frame)
    if background:
        extra = pd.DataFrame({"text": list(background), "label": NORMAL})
        extra["group"] = [f"background-{i}" for i in range(len(extra))]
        frame = pd.concat([frame, extra], ignore_index=True)
        _say(progress, f"background: +{len(extra)} presumed-normal rows, weight {config.background_weight:g}")
    _check_labels(frame.iloc[:labeled_rows], config.cv_folds)
    weights = np.ones(len(frame))
    weights[labeled_rows:] = config.background_weight
    normalized = np.asarray([normalize(t) for t in frame["text"]], dtype=object)
    return _Rows(frame, labeled_rows, weights, normalized)


def _cross_validate(
    rows: _Rows, base: Pipeline, config: TrainConfig, progress: Progress | None
) -> tuple[float, dict[float, float], np.ndarray]:
    """(chosen C, macro-F1 per C, out-of-fold probabilities of every row at the chosen C) by group-aware
    cross-validation; C is chosen on the labeled rows.

    Features are fitted once per fold, then every C of the grid on the same matrices.
    """
    started = time.perf_counter()
    labels, groups = rows.frame["label"].to_numpy(), rows.frame["group"].to_numpy()
    steps = dict(base.steps)
    grid = sorted(set(config.c_grid) | ({config.model.C} if not config.c_grid else set()))
    oof = {c: np.zeros((len(labels), len(LABELS))) for c in grid}
    folds = list(group_kfold(labels, groups, config.cv_folds, config.seed))
    for k, (fit_rows, val_rows) in enumerate(folds, start=1):
        features = clone(steps["features"])
        x_fit = features.fit_transform(rows.normalized[fit_rows])
        x_val = features.transform(rows.normalized[val_rows])
        for c in grid:
            classifier = clone(steps["classifier"]).set_params(C=c)
            classifier.fit(x_fit, labels[fit_rows], sample_weight=rows.weights[fit_rows])
            oof[c][val_rows] = proba_in_label_order(classifier, x_val)
        _say(progress, f"cross-validation fold {k}/{len(folds)} done ({time.perf_counter() - started:.1f}s)")
    labeled = rows.labeled
    cv_f1 = {c: macro_f1(labels[labeled], oof[c][labeled]) for c in grid}
    best_c = max(grid, key=lambda c: (round(cv_f1[c], 6), -c))  # ties: the stronger regularization
    _say(progress, "C by cross-validated macro-F1: " + _listing(cv_f1) + f" -> C={best_c:g}")
    return best_c, cv_f1, oof[best_c]


def _listing(values: dict[float, float]) -> str:
    return ", ".join(f"{key:g}: {value:.4f}" for key, value in values.items())


def train(
    train_frame: pd.DataFrame,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    background: list[str] | None = None,
) -> TrainResult:
    """Train duanka's pipeline on ``train_frame`` (columns ``text``, ``label``, ``group``).

    Args:
        train_frame: labeled rows; ``group`` keeps families together in every fold.
        config: hyperparameters and seed.
        progress: called with a line of text at each step.
        background: texts of the user's own traffic, presumed ``normal``: fitted on (in every fold and in the
            final model) with weight ``config.background_weight``, each its own group; never part of the
            validation predictions, which stay on the labeled rows.

    Returns:
        A TrainResult with the refitted pipeline, the chosen ``C`` and normal weight, and the out-of-fold
        probabilities of the labeled rows (thresholds and policies are chosen on them by the workflow).
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    rows = _fit_rows(train_frame, config, background, progress)
    timings = {"normalize_s": time.perf_counter() - started}
    base = build_pipeline(config.model, seed=config.seed)
    started = time.perf_counter()
    best_c, cv_f1, every_oof = _cross_validate(rows, base, config, progress)
    timings["cross_validation_s"] = time.perf_counter() - started
    oof = every_oof[rows.labeled]

    labels = rows.frame["label"].to_numpy()[rows.labeled]
    label_f1 = {w: macro_f1(labels, with_normal_weight(oof, w)) for w in config.normal_weight_grid}
    normal_weight = choose_normal_weight(label_f1, config.label_f1_tolerance)
    _say(progress, "normal weight by validation macro-F1: " + _listing(label_f1) + f" -> {normal_weight:g}")

    started = time.perf_counter()
    pipeline = clone(base).set_params(classifier__C=best_c)
    pipeline.fit(rows.frame["text"].tolist(), rows.frame["label"].to_numpy(), classifier__sample_weight=rows.weights)
    apply_normal_weight(pipeline.named_steps["classifier"], normal_weight)
    timings["final_fit_s"] = time.perf_counter() - started
    _say(progress, f"final fit on {len(rows.frame)} rows ({timings['final_fit_s']:.1f}s)")
    ceilings = np.array([gate_for(t).ceiling for t in rows.normalized], dtype=object)  # normalized once, above
    return TrainResult(
        pipeline=pipeline,
        config=config,
        C=best_c,
        cv_macro_f1=cv_f1,
        validation_proba=with_normal_weight(oof, normal_weight),
        train_frame=rows.frame.iloc[: rows.labeled_rows],
        timings=timings,
        background_rows=len(rows.frame) - rows.labeled_rows,
        gate_ceilings=ceilings[rows.labeled],
        background_proba=with_normal_weight(every_oof[~rows.labeled], normal_weight) if background else None,
        background_ceilings=ceilings[~rows.labeled] if background else None,
        normal_weight=normal_weight,
        label_macro_f1=label_f1,
    )


def macro_f1(labels: np.ndarray, proba: np.ndarray) -> float:
    """Macro-F1 of the argmax labels of ``proba`` (columns in ``LABELS`` order)."""
    predicted = np.asarray(LABELS)[proba.argmax(axis=1)]
    return float(f1_score(labels, predicted, average="macro", labels=list(LABELS)))


def with_normal_weight(proba: np.ndarray, weight: float) -> np.ndarray:
    """Probabilities (``LABELS`` order) after ``P(normal)`` is multiplied by ``weight`` and rows renormalized.

    The same as adding ``log(weight)`` to the ``normal`` logit of a softmax model: a change of class prior.
    """
    shifted = np.array(proba, dtype=float)
    shifted[:, LABELS.index(NORMAL)] *= weight
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def choose_normal_weight(macro_f1: dict[float, float], tolerance: float) -> float:
    """The largest weight whose validation macro-F1 is within ``tolerance`` of the best one.

    Traffic is overwhelmingly ordinary: among label rules that validation cannot tell apart, the one that
    labels the fewest ordinary posts risky is preferred.
    """
    best = max(macro_f1.values())
    return max(w for w, f in macro_f1.items() if f >= best - tolerance)


def apply_normal_weight(classifier: Any, weight: float) -> None:
    """Fold a prior weight on ``normal`` into a fitted multinomial classifier's intercept (exact for softmax)."""
    if weight == 1.0:
        return
    classes = [str(c) for c in classifier.classes_]
    classifier.intercept_[classes.index(NORMAL)] += np.log(weight)
