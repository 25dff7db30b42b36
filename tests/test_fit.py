from __future__ import annotations

import numpy as np
import pytest

from duanka.training.dataset import load_posts
from duanka.training.fit import train
from duanka.training.thresholds import choose_thresholds


def test_same_seed_same_model(small_posts, fast_config) -> None:
    frame = load_posts(small_posts)
    first = train(frame, fast_config)
    second = train(frame, fast_config)
    assert first.C == second.C and first.normal_weight == second.normal_weight
    np.testing.assert_array_equal(first.validation_proba, second.validation_proba)
    texts = frame["text"].tolist()
    np.testing.assert_array_equal(first.pipeline.predict_proba(texts), second.pipeline.predict_proba(texts))


def test_validation_is_out_of_fold_one_row_per_labeled_row(small_posts, fast_config) -> None:
    frame = load_posts(small_posts)
    result = train(frame, fast_config)
    assert result.validation_proba.shape == (len(frame), 3)
    np.testing.assert_allclose(result.validation_proba.sum(axis=1), 1.0)
    assert len(result.gate_open) == len(frame)
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


def test_choose_normal_weight_prefers_fewer_false_alarms_only_within_the_tolerance() -> None:
    from duanka.training.fit import choose_normal_weight

    scores = {1.0: 0.953, 1.5: 0.952, 2.0: 0.948, 3.0: 0.943}
    assert choose_normal_weight(scores, 0.002) == 1.5
    assert choose_normal_weight(scores, 0.0) == 1.0
    assert choose_normal_weight(scores, 0.01) == 3.0
    assert choose_normal_weight({1.0: 0.90, 2.0: 0.95}, 0.002) == 2.0


def test_normal_weight_in_the_intercept_equals_reweighted_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    from duanka.labels import LABELS
    from duanka.training.features import proba_in_label_order
    from duanka.training.fit import apply_normal_weight, with_normal_weight

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4))
    y = np.array(LABELS)[rng.integers(0, 3, size=90)]
    classifier = LogisticRegression().fit(x, y)
    before = proba_in_label_order(classifier, x)
    apply_normal_weight(classifier, 2.5)
    after = proba_in_label_order(classifier, x)
    np.testing.assert_allclose(after, with_normal_weight(before, 2.5), rtol=1e-10, atol=1e-12)
    normal = LABELS.index("normal")
    assert (after[:, normal] > before[:, normal]).all()
    np.testing.assert_allclose(after.sum(axis=1), 1.0)


def test_training_applies_the_chosen_normal_weight(small_posts, fast_config) -> None:
    import dataclasses

    from duanka.training.features import proba_in_label_order
    from duanka.training.fit import with_normal_weight

    frame = load_posts(small_posts)
    plain = train(frame, dataclasses.replace(fast_config, normal_weight_grid=(1.0,)))
    weighted = train(frame, dataclasses.replace(fast_config, normal_weight_grid=(1.0, 4.0), label_f1_tolerance=1.0))
    assert plain.normal_weight == 1.0 and weighted.normal_weight == 4.0
    assert set(weighted.label_macro_f1) == {1.0, 4.0}
    np.testing.assert_allclose(weighted.validation_proba, with_normal_weight(plain.validation_proba, 4.0), atol=1e-12)
    texts = frame["text"].tolist()
    expected = with_normal_weight(proba_in_label_order(plain.pipeline, texts), 4.0)
    np.testing.assert_allclose(proba_in_label_order(weighted.pipeline, texts), expected, atol=1e-6)  # float32 features
