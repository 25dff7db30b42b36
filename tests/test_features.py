from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from duanka.training.features import (
    PIPELINE_PARAMS,
    FittedModel,
    JiebaTokenizer,
    ModelParams,
    build_pipeline,
    label_order,
    risk_of,
)

# A value different from the default for every field, so a setting that does not reach the pipeline shows.
CHANGED = {
    "word_ngram_range": (1, 3),
    "char_ngram_range": (2, 5),
    "min_df": 3,
    "max_df": 0.8,
    "char_max_features": 1234,
    "sublinear_tf": False,
    "jieba_hmm": True,
    "C": 0.5,
    "class_weight": None,
    "nb_weight": 0.25,
    "max_iter": 77,
    "tol": 0.01,
}


def test_every_model_setting_reaches_the_pipeline() -> None:
    fields = {f.name for f in dataclasses.fields(ModelParams)}
    assert set(PIPELINE_PARAMS) == fields == set(CHANGED)
    params = build_pipeline(ModelParams(**CHANGED)).get_params(deep=True)
    for field, names in PIPELINE_PARAMS.items():
        for name in names:
            assert params[name] == CHANGED[field], (field, name)
    # sublinear_tf reaches both vectorizers (it used to reach only the word features)
    assert params["features__chars__sublinear_tf"] is False and params["features__words__sublinear_tf"] is False


def test_jieba_tokenizer_is_an_estimator_and_keeps_domain_terms() -> None:
    tokenizer = JiebaTokenizer(hmm=False)
    assert tokenizer.get_params() == {"user_terms": None, "hmm": False}
    assert tokenizer("出一类卡四件套") == ["出", "一类卡", "四件套"]  # plain jieba splits 一类 | 卡
    assert tokenizer == JiebaTokenizer(hmm=False) and hash(tokenizer) == hash(JiebaTokenizer(hmm=False))


def test_fitted_model_orders_columns_by_labels(small_artifact) -> None:
    from duanka.training.export import read_pipeline

    model = FittedModel(read_pipeline(small_artifact))
    texts = ["高价收卡，加微信", "今天天气很好"]
    proba = model.predict_proba(texts)
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1)
    from duanka.text.normalize import normalize

    np.testing.assert_allclose(model.proba_from_features(model.transform([normalize(t) for t in texts])), proba)
    assert model.push().shape == (3, len(model.feature_names()))
    assert risk_of(proba)[0] > risk_of(proba)[1]


def test_label_order_refuses_foreign_labels() -> None:
    assert label_order(["normal", "card_trading", "recruitment_lure"]) == [1, 2, 0]
    with pytest.raises(ValueError, match="not"):
        label_order(["spam", "ham", "normal"])
