"""The exported model: TF-IDF vectorizers and the linear classifier (softmax), in numpy, from plain files.

What scoring needs from a fitted pipeline is data: per vectorizer its analyzer settings, its vocabulary
and idf vector; the classifier's coefficients and intercepts; the segmenter's dictionary words. It is
written as ``model.json`` (settings, vocabularies) and ``model.npz`` (arrays, read with
``allow_pickle=False``), so loading a model executes nothing and imports neither scikit-learn nor joblib.

:meth:`LinearModel.transform` reproduces ``FeatureUnion([TfidfVectorizer(words), TfidfVectorizer(chars)])``
for a whole batch (the same float32 arithmetic: sublinear tf, idf, per-vectorizer L2 norm) and
:meth:`LinearModel.proba` the multinomial ``predict_proba``; tests/test_model.py checks both against
scikit-learn (probabilities within ``PARITY_TOLERANCE``, identical labels and decisions).
"""

from __future__ import annotations

import io
import itertools
import json
import operator
import re
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from duanka.errors import ArtifactError
from duanka.labels import LABELS
from duanka.text.segment import segmenter

__all__ = ["EXPORT_FORMAT", "PARITY_TOLERANCE", "Features", "LinearModel", "Vectorizer", "push", "softmax"]

EXPORT_FORMAT = 1
PARITY_TOLERANCE = 1e-6  # documented bound on |exported - scikit-learn| per probability
_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's char analyzer collapses these first
_MISSING = itertools.repeat(-1)  # dict.get's default for n-grams outside the vocabulary


@dataclass(frozen=True)
class Vectorizer:
    """One TF-IDF vectorizer's settings and learned state.

    Attributes:
        name: ``words`` or ``chars`` (feature names are prefixed ``word:`` / ``char:``).
        analyzer: ``word`` (segmented words, then n-grams joined by a space) or ``char``.
        ngram_range: smallest and largest n.
        sublinear_tf: tf replaced by 1 + log(tf).
        norm: ``l2`` or ``None``.
        terms: the vocabulary, in column order.
        idf: idf per column (float32).
    """

    name: str
    analyzer: str
    ngram_range: tuple[int, int]
    sublinear_tf: bool
    norm: str | None
    terms: tuple[str, ...]
    idf: np.ndarray

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "sublinear_tf": self.sublinear_tf,
            "norm": self.norm,
            "terms": list(self.terms),
        }


@dataclass(frozen=True)
class Features:
    """A batch's feature matrix in CSR form: row ``i`` is ``indices/data[indptr[i]:indptr[i+1]]``, columns sorted."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1


_SECOND = operator.itemgetter(1)


def _automaton(terms: tuple[str, ...], offset: int) -> tuple[Any, int]:
    """An Aho-Corasick automaton of a char vocabulary (term → ``offset`` + its index), or None when it is empty, and
    how many distinct non-empty terms it holds.

    Built straight from the terms, in C (``sum`` over ``map`` of ``add_word``, which is true for a new word): the
    cold start pays for every pass over a vocabulary of 50,000 n-grams.
    """
    if not terms:
        return None, 0
    import ahocorasick

    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    added = sum(map(automaton.add_word, terms, range(offset, offset + len(terms))))
    automaton.make_automaton()
    return automaton, added


class LinearModel:
    """TF-IDF features and a softmax linear classifier, with classes in ``LABELS`` order.

    Args:
        vectorizers: the word and char vectorizers, in feature-union order.
        coef: (labels, features) coefficients, rows in ``LABELS`` order.
        intercept: (labels,) intercepts.
        segmenter_terms: dictionary words added to jieba.
        segmenter_hmm: jieba's HMM setting.
        drop_tokens: characters; a word made only of these is dropped before word n-grams.
    """

    def __init__(
        self,
        vectorizers: list[Vectorizer],
        coef: np.ndarray,
        intercept: np.ndarray,
        segmenter_terms: tuple[str, ...],
        segmenter_hmm: bool,
        drop_tokens: str,
    ) -> None:
        self.vectorizers = list(vectorizers)
        # stored once, transposed (features, labels) for the scoring gather; ``coef`` is a view of it
        self._coef_t = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).T)
        self.coef = self._coef_t.T
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float64)
        self.segmenter_terms = tuple(segmenter_terms)
        self.segmenter_hmm = bool(segmenter_hmm)
        self.drop_tokens = drop_tokens
        self._check()
        offsets = []
        offset = 0
        for vectorizer in self.vectorizers:
            offsets.append(offset)
            offset += len(vectorizer.terms)
        self.n_features = offset
        self._offsets = offsets
        # (offset, name prefix, terms) from the last block down, for feature_name
        self._name_blocks = [
            (o, "word:" if v.name == "words" else "char:", v.terms) for o, v in zip(offsets, self.vectorizers)
        ][::-1]
        # Word n-grams: term -> column. Char n-grams: one Aho-Corasick pass finds every vocabulary n-gram in a text,
        # overlaps included (the same multiset of columns as slicing every n-gram and looking it up;
        # tests/test_model.py), at C speed; a char vocabulary lives in its automaton (and ``terms``), with no dict.
        # Each vocabulary is passed over once here: that pass is also its duplicate check.
        self._lookups: list[dict[str, int]] = []
        self._automata: list[Any] = []
        for vectorizer, start in zip(self.vectorizers, offsets):
            terms = vectorizer.terms
            if vectorizer.analyzer == "char":
                automaton, size = _automaton(terms, start)
                self._lookups.append({})
                self._automata.append(automaton)
            else:
                lookup = dict(zip(terms, range(start, start + len(terms))))
                size = len(lookup)
                self._lookups.append(lookup)
                self._automata.append(None)
            if size != len(terms):
                raise ArtifactError(f"vectorizer {vectorizer.name!r}: vocabulary has duplicate or empty terms")
        self.idf = np.concatenate([v.idf for v in self.vectorizers]).astype(np.float32)
        self._segmenter: Any = None

    # ------------------------------------------------------------------ checks and files
    def _check(self) -> None:
        if len(self.vectorizers) == 0:
            raise ArtifactError("exported model has no vectorizer")
        width = sum(len(v.terms) for v in self.vectorizers)
        if self.coef.shape != (len(LABELS), width):
            raise ArtifactError(f"exported coefficients have shape {self.coef.shape}, expected {(len(LABELS), width)}")
        if self.intercept.shape != (len(LABELS),):
            raise ArtifactError(f"exported intercepts have shape {self.intercept.shape}, expected {(len(LABELS),)}")
        if not (np.isfinite(self.coef).all() and np.isfinite(self.intercept).all()):
            raise ArtifactError("exported coefficients are not all finite numbers")
        for v in self.vectorizers:
            if v.analyzer not in ("word", "char"):
                raise ArtifactError(f"vectorizer {v.name!r}: unknown analyzer {v.analyzer!r}")
            low, high = v.ngram_range
            if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 10):
                raise ArtifactError(f"vectorizer {v.name!r}: bad ngram_range {v.ngram_range!r}")
            if v.norm not in ("l2", None):
                raise ArtifactError(f"vectorizer {v.name!r}: unsupported norm {v.norm!r}")
            if v.idf.shape != (len(v.terms),) or not np.isfinite(v.idf).all():
                raise ArtifactError(f"vectorizer {v.name!r}: idf vector does not match its {len(v.terms)} terms")

    def to_bytes(self) -> tuple[bytes, bytes]:
        """``(model.json bytes, model.npz bytes)``: the whole model as plain, non-executable data."""
        settings = {
            "export_format": EXPORT_FORMAT,
            "labels": list(LABELS),
            "segmenter": {"terms": list(self.segmenter_terms), "hmm": self.segmenter_hmm, "drop": self.drop_tokens},
            "vectorizers": [v.settings() for v in self.vectorizers],
        }
        arrays = {"coef": self.coef, "intercept": self.intercept}
        arrays.update({f"idf_{v.name}": np.asarray(v.idf, dtype=np.float32) for v in self.vectorizers})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return json.dumps(settings, ensure_ascii=False).encode("utf-8"), buffer.getvalue()

    @classmethod
    def from_bytes(cls, settings_bytes: bytes, arrays_bytes: bytes, where: str = "model") -> LinearModel:
        """Build a model from the bytes :meth:`to_bytes` wrote; nothing is unpickled or executed.

        Raises:
            ArtifactError: the bytes are not a model of this format; the message names ``where`` and the cause.
        """
        try:
            settings = json.loads(settings_bytes.decode("utf-8"))
            with np.load(io.BytesIO(arrays_bytes), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as exc:  # untrusted bytes: any parse failure (JSON, zip, npy header) means not a model
            raise ArtifactError(f"{where}: not an exported model ({type(exc).__name__}: {exc})") from None
        try:
            if settings.get("export_format") != EXPORT_FORMAT:
                raise ArtifactError(f"export format {settings.get('export_format')!r}, expected {EXPORT_FORMAT}")
            if settings.get("labels") != list(LABELS):
                raise ArtifactError(f"labels {settings.get('labels')!r} are not {list(LABELS)}")
            vectorizers = []
            for item in settings["vectorizers"]:
                terms = item["terms"]
                if not isinstance(terms, list) or not set(map(type, terms)) <= {str}:  # JSON strings are exact str
                    raise ArtifactError(f"vectorizer {item.get('name')!r}: terms must be a list of strings")
                low, high = item["ngram_range"]
                vectorizers.append(
                    Vectorizer(
                        name=str(item["name"]),
                        analyzer=item["analyzer"],
                        ngram_range=(low, high),
                        sublinear_tf=bool(item["sublinear_tf"]),
                        norm=item["norm"],
                        terms=tuple(terms),
                        idf=_numeric(arrays[f"idf_{item['name']}"], np.float32),
                    )
                )
            segment = settings["segmenter"]
            if not all(isinstance(t, str) for t in segment["terms"]) or not isinstance(segment["drop"], str):
                raise ArtifactError("segmenter terms and drop characters must be strings")
            return cls(
                vectorizers,
                _numeric(arrays["coef"], np.float64),
                _numeric(arrays["intercept"], np.float64),
                tuple(segment["terms"]),
                bool(segment["hmm"]),
                segment["drop"],
            )
        except ArtifactError as exc:
            raise ArtifactError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{where}: malformed exported model ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------------ scoring
    def warm_up(self) -> None:
        """Build the segmenter now (dictionary load) rather than on the first post."""
        self._segmenter_cut()

    def _segmenter_cut(self) -> Any:
        if self._segmenter is None:
            self._segmenter = segmenter(self.segmenter_terms, self.segmenter_hmm).cut
        return self._segmenter

    def feature_name(self, column: int) -> str:
        """``word:收卡 加微`` or ``char:收卡`` for a column."""
        for offset, prefix, terms in self._name_blocks:
            if column >= offset:
                return prefix + terms[column - offset]
        raise IndexError(column)

    def _columns(self, text: str, cut: Any, columns: Any) -> None:
        """Append the column of every in-vocabulary n-gram of ``text`` to ``columns`` (-1 for the others)."""
        for vectorizer, lookup, automaton in zip(self.vectorizers, self._lookups, self._automata):
            low, high = vectorizer.ngram_range
            get = lookup.get
            if vectorizer.analyzer == "char":
                if automaton is not None:
                    columns.extend(map(_SECOND, automaton.iter(_WHITE_SPACES.sub(" ", text))))
            else:
                drop = self.drop_tokens
                tokens = [w for w in cut(text) if w.strip(drop)]
                if low == 1:
                    columns.extend(map(get, tokens, _MISSING))
                for n in range(max(low, 2), min(high, len(tokens)) + 1):
                    # the n-grams in order: " ".join of each window of n tokens (zip of n shifted copies)
                    columns.extend(map(get, map(" ".join, zip(*(tokens[i:] for i in range(n)))), _MISSING))

    def coverage(self, normalized: str) -> tuple[int, int, int, int]:
        """Vocabulary coverage of a normalized text: (words, words in the vocabulary, char n-grams, in vocabulary).

        Words are the segmented words (unigrams) of the word vectorizer; char n-grams those of the char vectorizer's
        range, after the same white-space collapsing. What monitoring reports as the out-of-vocabulary rate.
        """
        words = known_words = grams = known_grams = 0
        for vectorizer, lookup, automaton in zip(self.vectorizers, self._lookups, self._automata):
            if vectorizer.analyzer == "char":
                text = _WHITE_SPACES.sub(" ", normalized)
                low, high = vectorizer.ngram_range
                grams += sum(max(0, len(text) - n + 1) for n in range(low, high + 1))
                if automaton is not None:
                    known_grams += sum(1 for _ in automaton.iter(text))
            else:
                tokens = [w for w in self._segmenter_cut()(normalized) if w.strip(self.drop_tokens)]
                words += len(tokens)
                known_words += sum(1 for w in tokens if w in lookup)
        return words, known_words, grams, known_grams

    def transform(self, texts: list[str]) -> Features:
        """TF-IDF features of normalized texts, for the whole batch at once."""
        cut = self._segmenter_cut()
        lengths = np.empty(len(texts), dtype=np.int64)
        flat = array("q")  # machine integers: a big batch holds no Python int per n-gram
        for i, text in enumerate(texts):
            before = len(flat)
            self._columns(text, cut, flat)
            lengths[i] = len(flat) - before
        width = self.n_features
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        columns = np.frombuffer(flat, dtype=np.int64) if flat else np.zeros(0, dtype=np.int64)
        known = columns >= 0
        keys, counts = np.unique(rows[known] * width + columns[known], return_counts=True)
        rows, indices = np.divmod(keys, width)
        data = counts.astype(np.float32)
        block = np.zeros(len(indices), dtype=np.int64)
        for k, offset in enumerate(self._offsets[1:], start=1):
            block[indices >= offset] = k
        for k, vectorizer in enumerate(self.vectorizers):
            if vectorizer.sublinear_tf:
                mask = block == k
                data[mask] = np.log(data[mask]) + np.float32(1.0)
        data *= self.idf[indices]
        groups = rows * len(self.vectorizers) + block
        squares = (data * data).astype(np.float64)  # float32 squares summed in double, as scikit-learn does
        norms = np.sqrt(np.bincount(groups, weights=squares, minlength=len(texts) * len(self.vectorizers)))
        scale = norms[groups]
        normed = np.array([v.norm == "l2" for v in self.vectorizers])[block] & (scale > 0)
        data = np.where(normed, data.astype(np.float64) / np.where(scale > 0, scale, 1.0), data).astype(np.float32)
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(texts)), out=indptr[1:])
        return Features(indptr, indices, data)

    def proba(self, features: Features) -> np.ndarray:
        """Probabilities in ``LABELS`` order, one row per text (softmax of the linear scores)."""
        n = features.rows
        rows = np.repeat(np.arange(n), np.diff(features.indptr))
        weights = features.data.astype(np.float64)
        scores = np.empty((n, len(LABELS)), dtype=np.float64)
        for k in range(len(LABELS)):
            scores[:, k] = np.bincount(rows, weights=weights * self._coef_t[features.indices, k], minlength=n)
        scores += self.intercept
        return softmax(scores)

    def predict_proba(self, normalized_texts: list[str]) -> np.ndarray:
        """Probabilities in ``LABELS`` order for texts that are already normalized."""
        return self.proba(self.transform(list(normalized_texts)))

    def push(self) -> np.ndarray:
        """:func:`push` of the coefficients, as float32 (what the evidence lookup reads)."""
        return np.asarray(push(self.coef), dtype=np.float32)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of linear scores (one column per label), computed in place and returned."""
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def push(coef: np.ndarray) -> np.ndarray:
    """Per label and feature: how much the feature pushes toward that label rather than the average label."""
    return coef - coef.mean(axis=0, keepdims=True)


def _numeric(values: Any, dtype: Any) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "fiu":
        raise ArtifactError(f"array of type {values.dtype} where numbers were expected")
    return values.astype(dtype, copy=False)
