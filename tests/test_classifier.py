"""NBLogisticBlend: a linear model whose probabilities are the softmax of its own coef_ and intercept_."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from duanka.training.classifier import NBLogisticBlend, nb_log_ratio

LABELS = np.array(["card_trading", "normal", "recruitment_lure"])


def _data(seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Sparse non-negative features where each label prefers its own block of columns."""
    rng = np.random.default_rng(seed)
    y = LABELS[rng.integers(0, 3, 300)]
    dense = rng.random((300, 30)) * (rng.random((300, 30)) < 0.2)
    for k, label in enumerate(LABELS):
        rows = y == label
        block = rng.random((rows.sum(), 5)) * (rng.random((rows.sum(), 5)) < 0.6)
        dense[np.ix_(rows, range(k * 5, k * 5 + 5))] += block
    return sp.csr_matrix(dense), y


def test_nb_weight_zero_is_plain_multinomial_logistic_regression() -> None:
    X, y = _data()
    blend = NBLogisticBlend(C=3.0, class_weight="balanced", nb_weight=0.0, max_iter=1000, random_state=1).fit(X, y)
    plain = LogisticRegression(C=3.0, class_weight="balanced", max_iter=1000, random_state=1).fit(X, y)
    np.testing.assert_allclose(blend.predict_proba(X), plain.predict_proba(X), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(blend.predict(X), plain.predict(X))


def test_probabilities_are_the_softmax_of_coef_and_intercept() -> None:
    X, y = _data(1)
    blend = NBLogisticBlend(C=3.0, nb_weight=0.5, max_iter=1000, random_state=1).fit(X, y)
    scores = X @ blend.coef_.T + blend.intercept_
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(blend.predict_proba(X), expected, rtol=1e-9)
    assert blend.coef_.shape == (3, X.shape[1]) and list(blend.classes_) == sorted(LABELS)


def test_the_blend_is_the_weighted_sum_of_multinomial_and_nb_scaled_one_vs_rest_logits() -> None:
    X, y = _data(2)
    settings = dict(C=3.0, class_weight="balanced", max_iter=1000, random_state=1)
    blend = NBLogisticBlend(nb_weight=0.3, **settings).fit(X, y)
    multinomial = LogisticRegression(**settings).fit(X, y)
    presence = X.copy()
    presence.data[:] = 1.0
    expected = 0.7 * multinomial.decision_function(X)
    for k, label in enumerate(blend.classes_):
        ratio = nb_log_ratio(presence, y == label, np.ones(len(y)), 1.0)
        binary = LogisticRegression(**settings).fit(X @ sp.diags(ratio), y == label)
        expected[:, k] += 0.3 * binary.decision_function(X @ sp.diags(ratio))
    np.testing.assert_allclose(blend.decision_function(X), expected, rtol=1e-6, atol=1e-8)


def test_nb_log_ratio_counts_presence_with_sample_weights() -> None:
    presence = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]], dtype=float))
    positive = np.array([True, True, False])
    ratio = nb_log_ratio(presence, positive, np.array([1.0, 2.0, 1.0]), alpha=1.0)
    # positive counts (1+2, 2) + 1 -> (4, 3) of 7; negative counts (0, 1) + 1 -> (1, 2) of 3
    np.testing.assert_allclose(ratio, np.log([4 / 7, 3 / 7]) - np.log([1 / 3, 2 / 3]))


def test_sample_weights_reach_every_model_in_the_blend() -> None:
    X, y = _data(3)
    weights = np.where(y == "normal", 5.0, 1.0)
    unweighted = NBLogisticBlend(C=3.0, max_iter=1000, random_state=1).fit(X, y)
    weighted = NBLogisticBlend(C=3.0, max_iter=1000, random_state=1).fit(X, y, sample_weight=weights)
    normal = list(unweighted.classes_).index("normal")
    assert weighted.predict_proba(X)[:, normal].mean() > unweighted.predict_proba(X)[:, normal].mean()


def test_the_same_data_and_seed_give_the_same_model_and_clone_keeps_settings() -> None:
    X, y = _data(4)
    first = NBLogisticBlend(C=3.0, nb_weight=0.5, random_state=9, max_iter=1000).fit(X, y)
    second = clone(first).fit(X, y)
    assert clone(first).get_params() == first.get_params()
    np.testing.assert_array_equal(first.coef_, second.coef_)
    np.testing.assert_array_equal(first.intercept_, second.intercept_)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_an_nb_weight_outside_zero_to_one_is_refused(weight: float) -> None:
    X, y = _data(5)
    with pytest.raises(ValueError, match="nb_weight"):
        NBLogisticBlend(nb_weight=weight).fit(X, y)


def test_two_labels_are_refused_before_any_fitting() -> None:
    X, y = _data(6)
    with pytest.raises(ValueError, match="three labels"):
        NBLogisticBlend().fit(X, np.where(y == "normal", "normal", "card_trading"))
