"""Streamed training (``duanka train --engine stream``): memory is one chunk plus the model, whatever the rows.

Three passes over the files, each reading ``stream.chunk_rows`` rows at a time (:func:`read_chunks`):

1. **Vocabulary.** Every row is checked (the same row rules as ``duanka data check``) and normalized, and the
   document frequency of every word and character n-gram is counted with the default engine's own analyzers. The
   count tables are bounded (lossy counting: past ``count_table_max`` distinct n-grams the rarest are pruned), so
   this pass is bounded on any data. The vocabulary is then chosen as the default engine chooses it
   (``min_df``, ``max_df``, at most ``char_max_features`` char and ``word_max_features`` word n-grams, by
   document frequency) with scikit-learn's smoothed idf: the artifact keeps the ordinary vocabulary format, so
   the unchanged scorer reads it and evidence names real n-grams (hashed columns could not).
2. **Features.** Each chunk is featurized by the exported model's own numpy TF-IDF (what scoring runs) and written
   to a temporary directory as a sparse matrix. Rows whose ``group`` falls in the held-out share (a stable hash of
   the group, so a family never straddles the split) are kept aside, at most about ``validation_max_rows``.
3. **Fit.** ``SGDClassifier(loss="log_loss")`` models, one per ``alpha`` of the grid, take ``partial_fit`` over
   the cached chunks, in a seeded order per epoch, with balanced class weights. After each epoch every model is
   scored on the held-out groups; the best (alpha, epoch) by macro-F1 is chosen, its held-out predictions choose
   the normal weight, thresholds and policies (in the workflow, as for the default engine), and with ``refit``
   the chosen setting is fitted once more on every row.

The one-vs-rest logits of the fitted model are used as a softmax model, as the scorer computes probabilities;
validation probabilities are computed the same way, so thresholds are chosen on what scoring will see.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from duanka.errors import ConfigError, DataError
from duanka.files.readers import iter_records
from duanka.labels import LABELS
from duanka.scoring.evidence_gate import gate_for
from duanka.scoring.model import LinearModel, softmax
from duanka.text.normalize import normalize
from duanka.training.config import StreamParams, TrainConfig
from duanka.training.dataset import _checked_row
from duanka.training.features import build_pipeline, export_pipeline
from duanka.training.fit import TrainResult, apply_normal_weight, choose_normal_weight, macro_f1, with_normal_weight

__all__ = [
    "StreamTraining",
    "StreamedLinear",
    "count_texts",
    "group_unit",
    "held_out_share",
    "new_counts",
    "read_chunks",
    "train_stream",
    "vocabulary_sample",
]

Progress = Callable[[str], None]
MAX_LISTED_ERRORS = 20


class StreamedLinear(ClassifierMixin, BaseEstimator):
    """The streamed engine's fitted classifier: linear logits, softmax probabilities (as the scorer computes them).

    Args:
        alpha: the ``SGDClassifier`` regularization it was fitted with.
        epochs: passes over the training chunks.
        random_state: the seed of the fit.
    """

    def __init__(self, alpha: float = 1e-6, epochs: int = 1, random_state: int | None = None) -> None:
        self.alpha = alpha
        self.epochs = epochs
        self.random_state = random_state

    def set_coefficients(self, classes: Any, coef: np.ndarray, intercept: np.ndarray) -> StreamedLinear:
        """Set the fitted state (``classes_``, ``coef_``, ``intercept_``) from a fitted linear model."""
        self.classes_ = np.asarray(classes)
        self.coef_ = np.array(coef, dtype=np.float64)
        self.intercept_ = np.array(intercept, dtype=np.float64)
        self.n_features_in_ = self.coef_.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits, one column per class in ``classes_`` order."""
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the logits."""
        return softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest logit."""
        return self.classes_[self.decision_function(X).argmax(axis=1)]


@dataclass
class StreamTraining:
    """What the streamed engine trained: a TrainResult as the default engine's, and what only it knows."""

    result: TrainResult
    rows: int  # every labeled row read (the result's ``train_frame`` holds the held-out rows only)
    held_out_rows: int
    alpha: float
    epochs: int
    epoch_macro_f1: dict[str, float] = field(default_factory=dict)  # "alpha@epoch" -> held-out macro-F1


def group_unit(group: str) -> float:
    """A stable number in [0, 1) for a group (blake2b of its UTF-8 bytes): the same in every process and run."""
    digest = hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# ---------------------------------------------------------------- reading
def read_chunks(paths: Sequence[str | Path], rows: int, errors: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """Checked rows of labeled files, ``rows`` at a time (columns ``text``, ``label``, ``group``).

    Rows are checked as :func:`duanka.training.dataset.validate_posts` checks them, one by one; a bad row is left
    out and its file, row, line and cause appended to ``errors`` (when ``errors`` is None, the first bad row
    raises). Duplicates across the file are not looked for here (that needs the whole file): ``duanka data
    check`` finds them.

    Raises:
        DataError: a file cannot be read, has no ``text`` or ``label`` column, or (``errors`` None) a bad row.
    """
    batch: list[tuple[str, str, str]] = []
    for path in paths:
        path = Path(path)
        first = True
        for record in iter_records(path):
            if first and not record.error:
                missing = [c for c in ("text", "label") if c not in record.values]
                if missing:
                    found = ", ".join(record.values) or "none"
                    raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {found}")
                first = False
            row, problem = _checked_row(record, "group" in record.values)
            if problem:
                message = f"{path}: {record.where}: {problem}"
                if errors is None:
                    raise DataError(message)
                errors.append(message)
                continue
            batch.append((row["text"], row["label"], f"{path.name}:{row['group']}" if len(paths) > 1 else row["group"]))
            if len(batch) >= rows:
                yield pd.DataFrame(batch, columns=["text", "label", "group"])
                batch = []
    if batch:
        yield pd.DataFrame(batch, columns=["text", "label", "group"])


# ---------------------------------------------------------------- pass 1: vocabulary
@dataclass
class _Counts:
    rows: int = 0
    counted: int = 0  # rows whose n-grams were counted (the vocabulary sample)
    labels: Counter = field(default_factory=Counter)
    document_frequency: list[Counter] = field(default_factory=list)
    pruned_below: list[int] = field(default_factory=list)  # lossy counting: counts under this may be short


def _prune(counts: Counter, keep: int) -> tuple[Counter, int]:
    """Drop the rarest n-grams until at most ``keep`` remain; returns the table and the count that survived."""
    values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    floor = int(np.partition(values, len(values) - keep)[len(values) - keep]) + 1 if len(values) > keep else 1
    return Counter({term: n for term, n in counts.items() if n >= floor}), floor


def new_counts(analyzers: Sequence[Any]) -> _Counts:
    """Empty pass-1 count tables, one per analyzer."""
    return _Counts(document_frequency=[Counter() for _ in analyzers], pruned_below=[0] * len(analyzers))


def vocabulary_sample(texts: Sequence[str], groups: Sequence[str], share: float) -> list[str]:
    """The texts whose group is in the vocabulary sample (``group_unit(group) < share``; all when ``share >= 1``)."""
    if share >= 1:
        return list(texts)
    return [text for text, group in zip(texts, groups) if group_unit(group) < share]


def count_texts(texts: Sequence[str], analyzers: Sequence[Any], counts: _Counts, table_max: int) -> None:
    """Pass 1's counting of one chunk (or one Spark partition's batch): normalize ``texts`` and add each
    analyzer's document frequencies to ``counts``; a table past ``table_max`` n-grams keeps its commonest half."""
    normalized = [normalize(text) for text in texts]
    counts.counted += len(normalized)
    for k, analyzer in enumerate(analyzers):
        table = counts.document_frequency[k]
        for text in normalized:
            table.update(set(analyzer(text)))
        if len(table) > table_max:
            table, floor = _prune(table, table_max // 2)
            counts.document_frequency[k] = table
            counts.pruned_below[k] = max(counts.pruned_below[k], floor)


def _count(paths: Sequence[Path], config: TrainConfig, analyzers: list[Any], progress: Progress | None) -> _Counts:
    """Pass 1: check every row, count labels and each analyzer's document frequencies (bounded tables)."""
    params = config.stream
    counts = new_counts(analyzers)
    errors: list[str] = []
    share = None
    for chunk in read_chunks(paths, params.chunk_rows, errors):
        counts.rows += len(chunk)
        counts.labels.update(chunk["label"])
        share = share if share is not None else _vocabulary_share(paths, chunk, params.vocabulary_rows)
        count_texts(vocabulary_sample(chunk["text"], chunk["group"], share), analyzers, counts, params.count_table_max)
        _say(progress, f"vocabulary pass: {counts.rows:,} rows read, {counts.counted:,} counted")
    if errors:
        more = f"\n... and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
        raise DataError("\n".join(errors[:MAX_LISTED_ERRORS]) + more)
    short = [label for label in LABELS if counts.labels.get(label, 0) == 0]
    if short:
        raise DataError(f"cannot train: no rows labeled {', '.join(short)} in {', '.join(map(str, paths))}")
    return counts


def _vocabulary_share(paths: Sequence[Path], first: pd.DataFrame, rows: int) -> float:
    """The share of groups to count so that about ``rows`` rows are counted, from the files' size and the first
    chunk's bytes per row (a rough guess on compressed Parquet, where more rows are counted: slower, not wrong)."""
    total_bytes = sum(path.stat().st_size for path in paths)
    per_row = sum(len(t.encode("utf-8")) + len(g) + len(x) + 16 for t, g, x in first.itertuples(index=False)) / len(
        first
    )
    return min(1.0, rows / max(total_bytes / per_row, 1.0))


def _vocabulary(
    frequency: Counter, rows: int, min_df: int | float, max_df: int | float, max_features: int | None
) -> tuple[dict[str, int], np.ndarray]:
    """(term -> column, idf) chosen as scikit-learn's ``TfidfVectorizer`` chooses, by document frequency."""
    low = min_df if isinstance(min_df, int) else min_df * rows
    high = max_df if isinstance(max_df, int) else max_df * rows
    kept = [(term, n) for term, n in frequency.items() if low <= n <= high]
    if max_features is not None and len(kept) > max_features:
        kept = sorted(kept, key=lambda item: (-item[1], item[0]))[:max_features]
    kept.sort()  # scikit-learn's column order: terms sorted
    document_frequency = np.array([n for _, n in kept], dtype=np.float64)
    idf = np.log((1.0 + rows) / (1.0 + document_frequency)) + 1.0  # smooth_idf=True
    return {term: column for column, (term, _) in enumerate(kept)}, idf


def _feature_pipeline(config: TrainConfig, counts: _Counts) -> Pipeline:
    """The default engine's pipeline with the vocabulary and idf of pass 1 and an unfitted classifier slot."""
    model = config.model
    pipeline = build_pipeline(model, seed=config.seed)
    caps = {"words": config.stream.word_max_features, "chars": model.char_max_features}
    for (name, vectorizer), frequency in zip(
        pipeline.named_steps["features"].transformer_list, counts.document_frequency
    ):
        vocabulary, idf = _vocabulary(frequency, counts.counted, model.min_df, model.max_df, caps.get(name))
        if not vocabulary:
            raise DataError(f"cannot train: no {name} n-gram is in at least {model.min_df} rows")
        vectorizer.vocabulary_ = vocabulary
        vectorizer.idf_ = idf
    classifier = StreamedLinear(random_state=config.seed)
    pipeline.steps[-1] = ("classifier", classifier)
    return pipeline


def _analyzers(config: TrainConfig) -> list[Any]:
    """The default engine's own word and char analyzers (tokenizer, n-grams), in feature-union order."""
    features = build_pipeline(config.model, seed=config.seed).named_steps["features"]
    return [vectorizer.build_analyzer() for _, vectorizer in features.transformer_list]


# ---------------------------------------------------------------- pass 2: features
@dataclass
class _Featurized:
    chunk_files: list[Path]
    width: int
    held_frame: pd.DataFrame
    held_features: sp.csr_matrix
    held_ceilings: np.ndarray
    training_rows: int


def held_out_share(params: StreamParams, rows: int) -> float:
    """The share of groups held out: ``validation_share``, less on big data (about ``validation_max_rows`` rows)."""
    return min(params.validation_share, params.validation_max_rows / max(rows, 1))


def _to_csr(featurizer: LinearModel, normalized: list[str]) -> sp.csr_matrix:
    features = featurizer.transform(normalized)
    return sp.csr_matrix(
        (features.data, features.indices.astype(np.int32), features.indptr),
        shape=(features.rows, featurizer.n_features),
    )


def _featurize(
    paths: Sequence[Path],
    config: TrainConfig,
    featurizer: LinearModel,
    rows: int,
    cache: Path,
    progress: Progress | None,
) -> _Featurized:
    """Pass 2: each chunk's TF-IDF matrix (the scorer's arithmetic) to ``cache``; held-out groups kept aside."""
    params = config.stream
    share = held_out_share(params, rows)
    codes = {label: k for k, label in enumerate(LABELS)}
    files, held_frames, held_parts, held_ceilings, seen, training_rows = [], [], [], [], 0, 0
    for chunk in read_chunks(paths, params.chunk_rows):
        normalized = [normalize(text) for text in chunk["text"]]
        matrix = _to_csr(featurizer, normalized)
        held = np.fromiter((group_unit(g) < share for g in chunk["group"]), dtype=bool, count=len(chunk))
        kept = ~held
        target = cache / f"chunk-{len(files):05d}.npz"
        train_part = matrix[kept]
        labels = np.array([codes[label] for label in chunk["label"][kept]], dtype=np.int8)
        np.savez(target, data=train_part.data, indices=train_part.indices, indptr=train_part.indptr, labels=labels)
        files.append(target)
        training_rows += int(kept.sum())
        held_frames.append(chunk[held])
        held_parts.append(matrix[held])
        held_ceilings += [gate_for(text).ceiling for text, h in zip(normalized, held) if h]
        seen += len(chunk)
        _say(progress, f"feature pass: {seen:,} of {rows:,} rows ({int(held.sum())} held out in this chunk)")
    held_frame = pd.concat(held_frames, ignore_index=True)
    if held_frame["label"].nunique() < len(LABELS) or training_rows == 0:
        raise DataError(
            f"cannot train: the held-out groups ({len(held_frame)} rows, share {share:.3f}) need every label and the "
            "rest some rows; give more groups or raise stream.validation_share"
        )
    return _Featurized(
        files, featurizer.n_features, held_frame, sp.vstack(held_parts).tocsr(), np.array(held_ceilings), training_rows
    )


def _load_chunk(path: Path, width: int) -> tuple[sp.csr_matrix, np.ndarray]:
    with np.load(path, allow_pickle=False) as saved:
        labels = np.asarray(LABELS)[saved["labels"]]
        matrix = sp.csr_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=(len(labels), width))
    return matrix, labels


# ---------------------------------------------------------------- pass 3: fit
def _sgd(alpha: float, weights: dict[str, float], seed: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", alpha=alpha, class_weight=weights, random_state=seed)


def _class_weights(labels: Counter) -> dict[str, float]:
    """Balanced weights (scikit-learn's ``"balanced"``: rows / (labels × rows of the label)), from pass 1's counts."""
    total = sum(labels.values())
    return {label: total / (len(LABELS) * labels[label]) for label in LABELS}


def _proba(model: Any, matrix: sp.csr_matrix) -> np.ndarray:
    """Softmax of a fitted linear model's logits, columns in ``LABELS`` order (what the scorer computes)."""
    classes = [str(c) for c in model.classes_]
    return softmax(np.asarray(model.decision_function(matrix), dtype=np.float64))[:, [classes.index(x) for x in LABELS]]


def _one_epoch(models: list[Any], data: _Featurized, order: np.ndarray, extra: tuple | None = None) -> None:
    """One pass of every model over the cached chunks in ``order`` (index ``len(chunk_files)``: ``extra``)."""
    for index in order:
        matrix, labels = extra if index == len(data.chunk_files) else _load_chunk(data.chunk_files[index], data.width)
        if len(labels):
            for model in models:
                model.partial_fit(matrix, labels, classes=np.asarray(LABELS))


@dataclass
class _Selection:
    alpha: float
    epochs: int
    macro_f1: dict[str, float]
    best_per_alpha: dict[float, float]
    proba: np.ndarray
    model: Any


def _select(data: _Featurized, config: TrainConfig, weights: dict[str, float], progress: Progress | None) -> _Selection:
    """Fit one model per alpha, epoch by epoch; the (alpha, epoch) with the best held-out macro-F1 wins.

    Ties go to fewer epochs, then to the stronger regularization. The epochs stop early when no alpha improved
    its held-out macro-F1 for ``patience`` epochs.
    """
    import copy

    params, seed = config.stream, config.seed
    held_labels = data.held_frame["label"].to_numpy()
    models = {alpha: _sgd(alpha, weights, seed) for alpha in sorted(params.alpha_grid, reverse=True)}
    rng = np.random.default_rng(seed)
    scores: dict[str, float] = {}
    best_per_alpha: dict[float, float] = {}
    best: tuple[tuple[float, int, float], _Selection] | None = None
    stale = 0
    for epoch in range(1, params.max_epochs + 1):
        started = time.perf_counter()
        _one_epoch(list(models.values()), data, rng.permutation(len(data.chunk_files)))
        stale += 1
        for alpha, model in models.items():
            proba = _proba(model, data.held_features)
            f1 = scores[f"{alpha:g}@{epoch}"] = macro_f1(held_labels, proba)
            if f1 > best_per_alpha.get(alpha, -1.0):
                best_per_alpha[alpha], stale = f1, 0
            key = (round(f1, 6), -epoch, alpha)
            if best is None or key > best[0]:
                best = (key, _Selection(alpha, epoch, scores, best_per_alpha, proba, copy.deepcopy(model)))
        listing = ", ".join(f"{a:g}: {scores[f'{a:g}@{epoch}']:.4f}" for a in models)
        _say(progress, f"epoch {epoch}: held-out macro-F1 by alpha {listing} ({time.perf_counter() - started:.1f}s)")
        if stale >= params.patience:
            break
    selection = best[1]
    _say(progress, f"chosen: alpha {selection.alpha:g}, {selection.epochs} epoch(s), macro-F1 {best[0][0]:.4f}")
    return selection


def _refit(data: _Featurized, config: TrainConfig, weights: dict[str, float], selection: _Selection) -> Any:
    """The chosen alpha and epochs fitted again on every row, held-out groups included (one more chunk)."""
    model = _sgd(selection.alpha, weights, config.seed)
    rng = np.random.default_rng(config.seed)
    extra = (data.held_features, data.held_frame["label"].to_numpy())
    for _ in range(selection.epochs):
        _one_epoch([model], data, rng.permutation(len(data.chunk_files) + 1), extra)
    return model


# ---------------------------------------------------------------- the engine
def _check_params(params: StreamParams) -> None:
    problems = []
    if params.chunk_rows < 1 or params.max_epochs < 1 or params.validation_max_rows < 1:
        problems.append("chunk_rows, max_epochs and validation_max_rows must be at least 1")
    if not params.alpha_grid or not all(np.isfinite(a) and a > 0 for a in params.alpha_grid):
        problems.append(f"alpha_grid must be positive numbers, got {list(params.alpha_grid)}")
    if not 0 < params.validation_share < 1:
        problems.append(f"validation_share must be between 0 and 1, got {params.validation_share}")
    if params.vocabulary_rows < 1 or params.patience < 1:
        problems.append("vocabulary_rows and patience must be at least 1")
    if params.count_table_max < 1000:
        problems.append(f"count_table_max must be at least 1000, got {params.count_table_max}")
    if problems:
        raise ConfigError("stream settings: " + "; ".join(problems))


def train_stream(
    paths: Sequence[str | Path], config: TrainConfig | None = None, progress: Progress | None = None
) -> StreamTraining:
    """Train duanka's model on labeled files without holding them in memory (see the module docstring).

    Args:
        paths: labeled files (CSV, JSONL or Parquet with ``text``, ``label`` and preferably ``group``).
        config: shared settings (seed, vocabulary, normal weights) and ``config.stream``.
        progress: called with a line of text at each step.

    Returns:
        A StreamTraining whose ``result`` the workflow turns into thresholds, policies and an artifact.

    Raises:
        DataError: bad rows (every file, row and cause, up to 20), a label with no rows, too few groups.
        ConfigError: settings the engine cannot use (augmentation, bad stream settings).
    """
    config = config or TrainConfig()
    _check_params(config.stream)
    if config.augment_copies:
        raise ConfigError("the stream engine does not augment (augment_copies must be 0)")
    paths = [Path(p) for p in paths]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    counts = _count(paths, config, _analyzers(config), progress)
    pipeline = _feature_pipeline(config, counts)
    timings["vocabulary_s"] = time.perf_counter() - started
    sizes = "/".join(str(len(v.vocabulary_)) for _, v in pipeline.named_steps["features"].transformer_list)
    _say(progress, f"vocabulary: {counts.rows:,} rows, {sizes} word/char n-grams ({timings['vocabulary_s']:.1f}s)")
    weights = _class_weights(counts.labels)
    classifier: StreamedLinear = pipeline.named_steps["classifier"]
    width = sum(len(v.vocabulary_) for _, v in pipeline.named_steps["features"].transformer_list)
    classifier.set_coefficients(sorted(LABELS), np.zeros((len(LABELS), width)), np.zeros(len(LABELS)))
    featurizer = export_pipeline(pipeline)
    with tempfile.TemporaryDirectory(prefix="duanka-stream-") as cache:
        started = time.perf_counter()
        data = _featurize(paths, config, featurizer, counts.rows, Path(cache), progress)
        timings["features_s"] = time.perf_counter() - started
        started = time.perf_counter()
        selection = _select(data, config, weights, progress)
        timings["selection_s"] = time.perf_counter() - started
        started = time.perf_counter()
        final = _refit(data, config, weights, selection) if config.stream.refit else selection.model
        timings["refit_s"] = time.perf_counter() - started
    return _result(pipeline, config, counts, data, selection, final, timings)


def _result(
    pipeline: Pipeline,
    config: TrainConfig,
    counts: _Counts,
    data: _Featurized,
    selection: _Selection,
    final: Any,
    timings: dict[str, float],
) -> StreamTraining:
    """The fitted pipeline and the held-out predictions, in the default engine's TrainResult."""
    classifier: StreamedLinear = pipeline.named_steps["classifier"]
    classifier.set_params(alpha=selection.alpha, epochs=selection.epochs)
    classifier.set_coefficients(final.classes_, final.coef_, final.intercept_)
    labels = data.held_frame["label"].to_numpy()
    label_f1 = {w: macro_f1(labels, with_normal_weight(selection.proba, w)) for w in config.normal_weight_grid}
    normal_weight = choose_normal_weight(label_f1, config.label_f1_tolerance)
    apply_normal_weight(classifier, normal_weight)
    fitted_rows = counts.rows if config.stream.refit else data.training_rows
    equivalent_c = {1.0 / (alpha * fitted_rows): f for alpha, f in selection.best_per_alpha.items()}
    result = TrainResult(
        pipeline=pipeline,
        config=config,
        C=1.0 / (selection.alpha * fitted_rows),  # the LogisticRegression C of the same objective
        cv_macro_f1=equivalent_c,
        validation_proba=with_normal_weight(selection.proba, normal_weight),
        train_frame=data.held_frame,
        timings=timings,
        gate_ceilings=data.held_ceilings,
        normal_weight=normal_weight,
        label_macro_f1=label_f1,
    )
    return StreamTraining(
        result, counts.rows, len(data.held_frame), selection.alpha, selection.epochs, selection.macro_f1
    )
