"""duanka's classifier: multinomial logistic regression blended with naive-Bayes-scaled logistic regressions.

The blend is one linear model. Its scores are

    z = (1 − nb_weight) · (W x + b)  +  nb_weight · (V x + c)

where ``W x + b`` are the logits of a multinomial ``LogisticRegression`` on the TF-IDF features, and row ``k`` of
``V x + c`` is a one-vs-rest logistic regression for label ``k`` fitted on the features scaled by their naive-Bayes
log-count ratios for that label (NBSVM, Wang & Manning 2012, "Baselines and Bigrams"). The ratios are folded into
``V``, so the fitted estimator exposes plain ``coef_`` and ``intercept_``: probabilities are the softmax of
``z``, the exported artifact and the scorer need nothing new, and a class-prior shift is still an intercept.

Why: the scaling puts weight on n-grams that separate one label from the rest and away from frequent generic
ones. On validation (never the holdout) the blend labelled fewer normal posts risky at the same or higher macro-F1
(README, "Measured quality"). ``nb_weight=0`` is exactly ``LogisticRegression``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from duanka.scoring.model import softmax

__all__ = ["NBLogisticBlend", "nb_log_ratio"]


def nb_log_ratio(presence: sp.csr_matrix, positive: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """Naive-Bayes log-count ratio of every feature for ``positive`` rows against the others.

    Args:
        presence: binary (0/1) feature matrix, one row per sample.
        positive: boolean mask of the rows of the label.
        weight: sample weights (a row counts ``weight`` times).
        alpha: additive smoothing per feature.
    """
    pos = presence.T @ (weight * positive) + alpha
    neg = presence.T @ (weight * ~positive) + alpha
    return np.log(pos / pos.sum()) - np.log(neg / neg.sum())


class NBLogisticBlend(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression blended in logit space with NB-scaled one-vs-rest logistic regressions.

    Args:
        C: inverse regularization strength of every logistic regression in the blend.
        class_weight: passed to every logistic regression (``"balanced"`` balances each one's own classes).
        nb_weight: share of the NB-scaled one-vs-rest scores in the blend (0: plain multinomial LR).
        nb_alpha: additive smoothing of the naive-Bayes feature counts.
        max_iter, tol, random_state: passed to every logistic regression.
    """

    def __init__(
        self,
        C: float = 1.0,
        class_weight: str | dict | None = None,
        nb_weight: float = 0.5,
        nb_alpha: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-4,
        random_state: int | None = None,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.nb_weight = nb_weight
        self.nb_alpha = nb_alpha
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _logistic(self) -> LogisticRegression:
        return LogisticRegression(
            C=self.C,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=self.random_state,
        )

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NBLogisticBlend:
        """Fit the multinomial model and, when ``nb_weight > 0``, one NB-scaled binary model per label."""
        if not 0.0 <= self.nb_weight <= 1.0:
            raise ValueError(f"nb_weight must be in [0, 1], got {self.nb_weight!r}")
        X = sp.csr_matrix(X)
        y = np.asarray(y)
        if len(np.unique(y)) < 3:  # a binary LR has one coefficient row, not one per label
            raise ValueError(f"NBLogisticBlend needs at least three labels, got {sorted(set(y.tolist()))}")
        weight = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        multinomial = self._logistic().fit(X, y, sample_weight=weight)
        self.classes_ = multinomial.classes_
        self.n_features_in_ = X.shape[1]
        coef = multinomial.coef_.astype(np.float64)
        intercept = multinomial.intercept_.astype(np.float64)
        if self.nb_weight > 0.0:
            presence = X.copy()
            presence.data = np.ones_like(presence.data)
            nb_coef = np.empty_like(coef)
            nb_intercept = np.empty_like(intercept)
            for k, label in enumerate(self.classes_):
                positive = y == label
                ratio = nb_log_ratio(presence, positive, weight, self.nb_alpha)
                binary = self._logistic().fit(X @ sp.diags(ratio), positive, sample_weight=weight)
                nb_coef[k] = binary.coef_[0] * ratio
                nb_intercept[k] = binary.intercept_[0]
            coef = (1.0 - self.nb_weight) * coef + self.nb_weight * nb_coef
            intercept = (1.0 - self.nb_weight) * intercept + self.nb_weight * nb_intercept
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Blended logits, one column per class in ``classes_`` order."""
        check_is_fitted(self, "coef_")
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the blended logits."""
        return softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """The label with the highest blended logit."""
        return self.classes_[self.decision_function(X).argmax(axis=1)]
