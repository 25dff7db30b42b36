"""The exported model equals the scikit-learn pipeline it was exported from (probabilities, labels, decisions)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from duanka.errors import ArtifactError
from duanka.files.readers import clean_text
from duanka.scoring.artifact import read_artifact
from duanka.scoring.model import PARITY_TOLERANCE, LinearModel
from duanka.text.normalize import normalize
from duanka.training.export import read_pipeline
from duanka.training.features import FittedModel

ROOT = Path(__file__).resolve().parents[1]
EDGE_CASES = [
    "",
    " ",
    "收" * 12_000,
    "收卡\x00加微信\x00\x00高价",
    "🔥🔥收卡📱加薇💰💰 日结🙏",
    "We buy SIM cards and bank accounts, DM me on telegram",
    "ok",
    "a  b\t\tc\n\nd",  # runs of white space inside the char analyzer
    "收 卡   加 微 信 , 长 期 收",
]


def _texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _decide(risk: np.ndarray, thresholds: dict[str, float]) -> list[str]:
    return ["block" if r >= thresholds["block"] else "review" if r >= thresholds["review"] else "pass" for r in risk]


@pytest.fixture(scope="module")
def both(small_artifact):
    artifact = read_artifact(small_artifact)
    return artifact, FittedModel(read_pipeline(small_artifact))


@pytest.mark.parametrize("source", ["tests/fixtures/holdout_small.csv", "data/holdout.csv", "edge cases"])
def test_exported_model_equals_the_pipeline(both, source) -> None:
    artifact, fitted = both
    texts = EDGE_CASES if source == "edge cases" else _texts(ROOT / source)
    normalized = [normalize(clean_text(t)[0]) for t in texts]
    reference_matrix = fitted.transform(normalized)
    reference = fitted.proba_from_features(reference_matrix)
    features = artifact.model.transform(normalized)
    exported = artifact.model.proba(features)
    assert np.max(np.abs(exported - reference)) <= PARITY_TOLERANCE
    assert (exported.argmax(axis=1) == reference.argmax(axis=1)).all()
    # Decisions on the risk as the scorer rounds it: identical.
    risk_exported = np.round(1.0 - np.round(exported[:, 2], 6), 6)
    risk_reference = np.round(1.0 - np.round(reference[:, 2], 6), 6)
    thresholds = artifact.thresholds
    assert _decide(risk_exported, thresholds) == _decide(risk_reference, thresholds)
    # Same features in the same order (the evidence depends on them), values within float32 rounding.
    reference_matrix.sort_indices()
    np.testing.assert_array_equal(features.indptr, reference_matrix.indptr)
    np.testing.assert_array_equal(features.indices, reference_matrix.indices)
    np.testing.assert_allclose(features.data, reference_matrix.data, rtol=0, atol=1e-7)


def test_export_round_trips_through_plain_files(both) -> None:
    artifact, fitted = both
    settings, arrays = artifact.model.to_bytes()
    again = LinearModel.from_bytes(settings, arrays)
    texts = [normalize(t) for t in ["收卡加微信，高价长期收", "周末日结发传单"]]
    np.testing.assert_array_equal(again.predict_proba(texts), artifact.model.predict_proba(texts))
    assert again.feature_name(0).startswith("word:") and again.feature_name(again.n_features - 1).startswith("char:")
    names = fitted.feature_names()
    assert [artifact.model.feature_name(i) for i in range(0, len(names), 97)] == list(names[::97])


@pytest.mark.parametrize(
    ("settings", "arrays"),
    [(b"\xff\xfe", None), (b"[]", None), (b"{}", None), (None, b"PK\x03\x04 truncated"), (None, b"\x80\x04pickle")],
)
def test_damaged_export_is_an_artifact_error(both, settings, arrays) -> None:
    good_settings, good_arrays = both[0].model.to_bytes()
    with pytest.raises(ArtifactError, match="model"):
        LinearModel.from_bytes(settings or good_settings, arrays or good_arrays, "model")


def test_an_object_array_is_refused_without_unpickling(both) -> None:
    import io

    settings, _ = both[0].model.to_bytes()
    buffer = io.BytesIO()
    np.savez(buffer, coef=np.array([object()], dtype=object), intercept=np.zeros(3))
    with pytest.raises(ArtifactError, match=r"not an exported model|Object arrays"):
        LinearModel.from_bytes(settings, buffer.getvalue(), "model")


def test_char_ngrams_found_in_one_pass_equal_every_slice_looked_up() -> None:
    # The automaton must give the same multiset of vocabulary columns as slicing every n-gram, overlaps included.
    import random

    from duanka.scoring.model import _automaton

    rng = random.Random(3)
    alphabet = "收卡加微信高价日结 ab1🔥\u3000，。"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(400)]
    vocabulary = sorted({t[i : i + n] for t in texts[:50] for n in (1, 2, 3, 4) for i in range(len(t) - n + 1)})
    offset = 7  # the char block's first column, after the word block
    lookup = {term: offset + column for column, term in enumerate(vocabulary)}
    automaton, size = _automaton(tuple(vocabulary), offset)
    assert size == len(vocabulary)
    for text in texts:
        sliced = [lookup[g] for n in (1, 2, 3, 4) for i in range(len(text) - n + 1) if (g := text[i : i + n]) in lookup]
        assert sorted(column for _, column in automaton.iter(text)) == sorted(sliced), text
    assert _automaton((), 0) == (None, 0)
    assert _automaton(("收卡", "收卡", "加微"), 0)[1] == 2  # a repeated term is counted once: the duplicate check
