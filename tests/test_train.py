from __future__ import annotations

import numpy as np
import pytest

from duanka.data import load_posts
from duanka.train import choose_thresholds, train


def test_same_seed_same_model(small_posts, fast_config) -> None:
    frame = load_posts(small_posts)
    first = train(frame, fast_config)
    second = train(frame, fast_config)
    assert first.C == second.C and first.thresholds == second.thresholds
    np.testing.assert_array_equal(first.validation_proba, second.validation_proba)
    texts = frame["text"].tolist()
    np.testing.assert_array_equal(first.pipeline.predict_proba(texts), second.pipeline.predict_proba(texts))
    assert first.validation == second.validation


def test_validation_is_out_of_fold_and_rules_are_measured_on_the_same_rows(small_posts, fast_config) -> None:
    frame = load_posts(small_posts)
    result = train(frame, fast_config)
    assert result.validation_proba.shape == (len(frame), 3)
    assert result.validation.rows == result.rules_validation.rows == len(frame)
    assert set(result.cv_macro_f1) == set(fast_config.c_grid) and result.C in fast_config.c_grid


def test_choose_thresholds() -> None:
    risky = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1], dtype=bool)
    risk = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    thresholds = choose_thresholds(risky, risk, block_precision=0.99, review_recall=0.97)
    assert thresholds == {"review": 0.3, "block": 0.5}
    nothing_pure = choose_thresholds(np.array([True, False]), np.array([0.5, 0.9]), 0.99, 0.97)
    assert nothing_pure["block"] > 1


@pytest.mark.parametrize("keep", [("normal",), ("normal", "card_trading")])
def test_training_on_one_or_two_labels_is_a_data_error(small_posts, fast_config, keep) -> None:
    from duanka.errors import DataError

    frame = load_posts(small_posts)
    with pytest.raises(DataError, match=r"every label .* needs rows in at least 3 groups"):
        train(frame[frame["label"].isin(keep)], fast_config)
