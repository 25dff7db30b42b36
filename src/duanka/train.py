"""Fit the pipeline: choose ``C`` by group-aware cross-validation, choose thresholds on out-of-fold
predictions, refit on all training rows. Knows nothing of MLflow, of artifacts or of the holdout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from duanka.augment import augment_frame
from duanka.config import TrainConfig
from duanka.data import group_kfold
from duanka.evaluate import Metrics, metrics
from duanka.features import build_pipeline, proba_in_label_order, risk_of
from duanka.labels import LABELS, RISKY_LABELS
from duanka.normalize import normalize
from duanka.policy import choose_thresholds
from duanka.rules import RuleSet

__all__ = ["TrainResult", "choose_thresholds", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """A fitted pipeline and everything measured on the way."""

    pipeline: Pipeline
    config: TrainConfig
    C: float
    cv_macro_f1: dict[float, float]
    thresholds: dict[str, float]
    validation: Metrics
    validation_proba: np.ndarray
    train_frame: pd.DataFrame
    rules_validation: Metrics | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def train(
    train_frame: pd.DataFrame,
    config: TrainConfig | None = None,
    rules: RuleSet | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train duanka's pipeline on ``train_frame`` (columns ``text``, ``label``, ``group``).

    Args:
        train_frame: labeled rows; ``group`` keeps families together in every fold.
        config: hyperparameters and seed.
        rules: the rule set evaluated beside the model on the same validation rows (default: the shipped rules).
        progress: called with a line of text at each step.

    Returns:
        A TrainResult with the refitted pipeline, the chosen ``C`` and thresholds, and the validation metrics.
    """
    config = config or TrainConfig()
    rules = rules or RuleSet.load()
    timings: dict[str, float] = {}
    frame = train_frame.reset_index(drop=True)
    if config.augment_copies > 0:
        extra = augment_frame(frame, copies=config.augment_copies, seed=config.seed)
        frame = pd.concat([frame, extra], ignore_index=True)
        _say(progress, f"augmented: +{len(extra)} obfuscated rows")
    labels = frame["label"].to_numpy()
    groups = frame["group"].to_numpy()

    started = time.perf_counter()
    normalized = np.asarray([normalize(t) for t in frame["text"]], dtype=object)
    timings["normalize_s"] = time.perf_counter() - started

    # Cross-validation: features fitted once per fold, then every C on the same matrices.
    started = time.perf_counter()
    base = build_pipeline(config.model, seed=config.seed)
    steps = dict(base.steps)
    grid = sorted(set(config.c_grid) | ({config.model.C} if not config.c_grid else set()))
    oof = {c: np.zeros((len(frame), len(LABELS))) for c in grid}
    folds = list(group_kfold(labels, groups, config.cv_folds, config.seed))
    for k, (fit_rows, val_rows) in enumerate(folds, start=1):
        features = clone(steps["features"])
        x_fit = features.fit_transform(normalized[fit_rows])
        x_val = features.transform(normalized[val_rows])
        for c in grid:
            classifier = clone(steps["classifier"]).set_params(C=c)
            classifier.fit(x_fit, labels[fit_rows])
            oof[c][val_rows] = proba_in_label_order(classifier, x_val)
        _say(progress, f"cross-validation fold {k}/{len(folds)} done ({time.perf_counter() - started:.1f}s)")
    cv_f1 = {
        c: float(f1_score(labels, np.asarray(LABELS)[oof[c].argmax(axis=1)], average="macro", labels=list(LABELS)))
        for c in grid
    }
    best_c = max(grid, key=lambda c: (round(cv_f1[c], 6), -c))  # ties: the stronger regularization
    timings["cross_validation_s"] = time.perf_counter() - started
    _say(
        progress,
        "C by cross-validated macro-F1: "
        + ", ".join(f"{c:g}: {f:.4f}" for c, f in cv_f1.items())
        + f" -> C={best_c:g}",
    )

    validation_proba = oof[best_c]
    is_risky = np.isin(labels, RISKY_LABELS)
    thresholds = choose_thresholds(is_risky, risk_of(validation_proba), config.block_precision, config.review_recall)
    validation = metrics(labels, validation_proba, thresholds)
    _say(progress, f"thresholds on validation: review {thresholds['review']:.4f}, block {thresholds['block']:.4f}")

    started = time.perf_counter()
    pipeline = clone(base).set_params(classifier__C=best_c)
    pipeline.fit(frame["text"].tolist(), labels)
    timings["final_fit_s"] = time.perf_counter() - started
    _say(progress, f"final fit on {len(frame)} rows ({timings['final_fit_s']:.1f}s)")

    rules_validation = metrics(labels, rules.predict_proba(frame["text"].tolist()), rules.thresholds)
    return TrainResult(
        pipeline=pipeline,
        config=config,
        C=best_c,
        cv_macro_f1=cv_f1,
        thresholds=thresholds,
        validation=validation,
        validation_proba=validation_proba,
        train_frame=frame,
        rules_validation=rules_validation,
        timings=timings,
    )
