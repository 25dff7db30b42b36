from __future__ import annotations

import numpy as np
import pytest

from duanka.labels import LABELS
from duanka.training.evaluate import Metrics, metrics, recall_at_precision


def _proba(rows: list[int]) -> np.ndarray:
    out = np.full((len(rows), 3), 0.05)
    out[np.arange(len(rows)), rows] = 0.9
    return out


def test_metrics_are_typed_and_flatten_to_the_logged_names() -> None:
    truth = ["card_trading", "recruitment_lure", "normal", "normal"]
    values = metrics(truth, _proba([0, 1, 2, 0]), {"review": 0.5, "block": 0.9})
    assert isinstance(values, Metrics)
    assert values.labels["normal"].recall == 0.5 and values.normal_fpr == 0.5
    assert values.confusion_matrix[2] == [1, 0, 1]
    flat = values.to_dict()
    assert {f"{label}_f1" for label in LABELS} <= set(flat)
    assert flat["block_share"] == pytest.approx(0.75) and flat["macro_f1"] == values.macro_f1
    assert values.scalars("holdout")["holdout_normal_fpr"] == 0.5


def test_recall_at_precision() -> None:
    risky = np.array([True, True, False, True])
    risk = np.array([0.9, 0.8, 0.7, 0.1])
    assert recall_at_precision(risky, risk, 0.99) == pytest.approx(2 / 3)
