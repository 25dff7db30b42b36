"""Train duanka on Spark (``duanka spark train``): the stream engine's passes, run by the executors.

1. **Vocabulary.** Each partition checks its rows (the row rules of ``duanka data check``, as the stream engine checks
   them) and counts the document frequency of every word and character n-gram with the stream engine's own pass-1
   code (:func:`duanka.training.stream.count_texts`: the default engine's analyzers, bounded tables). Spark sums
   the partitions' tables by n-gram; the driver reads the sums into tables bounded as the stream engine bounds them
   and chooses the vocabulary and idf with the stream engine's own selection code, so the artifact has the
   ordinary vocabulary format. The vocabulary sample is the stream engine's (a stable hash of ``group``), sized
   from the exact row count rather than from bytes per row.
2. **Features.** Inside ``mapInArrow`` each partition featurizes its rows with the exported model's numpy TF-IDF
   (what scoring runs, broadcast once) into Spark ML ``SparseVector`` rows, with a balanced class weight per row
   (from pass 1's label counts) and the held-out flag (the stream engine's hash of ``group`` and share, so the same
   groups are held out). The held-out rows (about ``stream.validation_max_rows`` at most) come to the driver.
3. **Fit.** ``pyspark.ml.classification.LogisticRegression`` (multinomial, L2, ``standardization=False``, the
   class weights as ``weightCol``), one fit per ``regParam`` on the rows outside the held-out groups; the best by
   held-out macro-F1 (ties to the stronger regularization) is refitted on every row (``stream.refit``). The
   normal weight, thresholds, policies, manifest and monitoring reference come from the held-out predictions by the
   workflow's own code (:func:`duanka.training.workflow.write_model`), so ``Scorer.load`` scores the artifact
   unchanged.

**Why Spark ML's LogisticRegression and not SGD per partition merged by parameter averaging.** L-BFGS reaches the
optimum of a convex objective, so the model does not depend on how the rows are partitioned, how many executors
run or in which order rows arrive; averaging SGD models fitted on different partitions does (one-shot averaging is
only close to the optimum when every partition is an i.i.d. sample, and a platform's partitions are days, regions
or surfaces). It is a maintained, distributed solver (``treeAggregate`` of the gradient), and its multinomial
softmax is exactly what the scorer computes, where the stream engine reads one-vs-rest logits as softmax. The
cost: one pass over the cached features per L-BFGS iteration (``max_iter``, 50 by default: on posts.csv every fit
reached the cap, and 100 iterations scored no better on the holdout) instead of a few epochs.

**regParam, alpha and C.** Spark minimizes ``sum_i w_i loss_i / sum_i w_i + regParam/2 ||W||²``;
``SGDClassifier`` minimizes ``mean_i w_i loss_i + alpha/2 ||w||²`` and scikit-learn's ``LogisticRegression``
``C sum_i w_i loss_i + 1/2 ||W||²``. The balanced class weights sum to the row count, so ``regParam = alpha =
1 / (C · rows)``: the same penalty per row. The grid is ``stream.alpha_grid`` read as regParams (or
``--reg-params``), and the manifest's ``C`` is ``1 / (regParam · rows fitted)``, as the stream engine reports its
alpha. The losses differ (multinomial here, one binary loss per label there), so the same number is the same
penalty on a different loss, not the same model.
"""

from __future__ import annotations

import functools
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from duanka.adapters import spark as spark_adapter
from duanka.errors import ConfigError, DataError
from duanka.files.readers import Record
from duanka.labels import LABELS
from duanka.scoring.evidence_gate import gate_for
from duanka.text.normalize import normalize
from duanka.training import stream
from duanka.training.config import TrainConfig
from duanka.training.dataset import _checked_row
from duanka.training.features import export_pipeline
from duanka.training.fit import macro_f1

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from duanka.scoring.model import LinearModel
    from duanka.training.workflow import TrainRun

__all__ = ["SparkTraining", "train_spark", "train_spark_artifact"]

Progress = Callable[[str], None]
CLASSES = tuple(sorted(LABELS))  # the classifier's class order (the label index Spark ML fits)
MAX_LISTED_ERRORS = 20
# pass 1's output rows: kind 0.. the analyzers' tables, then these
_LABEL, _ERROR, _TOTAL, _PRUNED = -1, -2, -3, -4
_COLUMNS = ("text", "label", "group", "where", "error", "key")


@dataclass
class SparkTraining:
    """What ``duanka spark train`` trained: the workflow's TrainRun and what only Spark knows."""

    run: TrainRun
    rows: int
    held_out_rows: int
    reg_param: float
    iterations: int
    macro_f1: dict[str, float] = field(default_factory=dict)  # regParam -> held-out macro-F1
    timings: dict[str, float] = field(default_factory=dict)


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# ---------------------------------------------------------------- the labeled rows as one DataFrame
def _labeled_frame(
    spark: SparkSession, data: str, input_format: str | None, directory: Path
) -> tuple[DataFrame, bool, list[Path]]:
    """(rows as ``text, label, group, where, error, key``, whether the data has a group column, local files).

    CSV and JSON lines are read on the driver by duanka's reader (as ``duanka spark score`` reads them: one row per
    input row, broken rows as errors naming the file, row and line) and shipped as Parquet; Parquet is read by Spark
    from any path it can read.
    """
    from pyspark.sql import functions as F

    fmt = spark_adapter._input_format(data, input_format)
    if fmt != "parquet":
        staged = spark_adapter._stage_records(data, fmt, "text", ("label", "group"), directory)
        _require_columns(data, staged.columns)
        frame = spark_adapter._staged_frame(spark, staged, ("label", "group")).select(
            F.col(spark_adapter._TEXT).alias("text"),
            "label",
            "group",
            F.concat(F.lit(f"{data}: row "), F.col(spark_adapter.ROW_COLUMN).cast("string")).alias("where"),
            F.col(spark_adapter._ERROR).alias("error"),
            F.col(spark_adapter.ROW_COLUMN).alias("key"),
        )
        return frame, "group" in staged.columns, spark_adapter._local_files(data)
    df = spark.read.parquet(data)
    _require_columns(data, set(df.columns))
    if df.schema["text"].dataType.typeName() != "string":
        raise DataError(f"{data}: column text is {df.schema['text'].dataType.simpleString()}, not a string")
    has_group = "group" in df.columns
    where = F.input_file_name()
    if "id" in df.columns:
        where = F.concat(where, F.lit(": id "), F.col("id").cast("string"))
    frame = df.select(
        "text",
        F.col("label").cast("string").alias("label"),
        (F.col("group").cast("string") if has_group else F.lit(None).cast("string")).alias("group"),
        where.alias("where"),
        F.lit(None).cast("string").alias("error"),
        F.monotonically_increasing_id().alias("key"),
    )
    local = Path(data.removeprefix("file://"))
    return frame, has_group, ([local] if "://" not in data.removeprefix("file://") and local.is_file() else [])


def _spread(frame: DataFrame) -> DataFrame:
    """At least as many partitions as cores (a small CSV is staged as one Parquet row group: one partition)."""
    cores = frame.sparkSession.sparkContext.defaultParallelism
    return frame if frame.rdd.getNumPartitions() >= cores else frame.repartition(cores)


def _require_columns(data: str, columns: set[str]) -> None:
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        raise DataError(f"{data}: missing column(s) {', '.join(missing)}; found {', '.join(sorted(columns)) or 'none'}")


def _checked(batch: pa.RecordBatch, has_group: bool, problems: list[str] | None) -> list[tuple[str, str, str]]:
    """(text, label, group) of the batch's usable rows, by the stream engine's row rules; problems appended."""
    columns = batch.to_pydict()
    rows = []
    for text, label, group, where, error, key in zip(*(columns[name] for name in _COLUMNS)):
        values = {"text": text, "label": label, **({"group": group} if has_group else {})}
        row, problem = _checked_row(Record(row=key, line=None, values=values, error=error), has_group)
        if problem:
            if problems is not None:
                problems.append(error if error else f"{where}: {problem}")
            continue
        rows.append((row["text"], row["label"], row["group"]))
    return rows


# ---------------------------------------------------------------- pass 1, on the executors
def _count_partition(
    batches: Iterable[pa.RecordBatch], *, config: TrainConfig, share: float, has_group: bool
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of pass 1: this partition's bounded count tables as ``kind, term, n`` rows."""
    import pyarrow as pa

    analyzers = stream._analyzers(config)
    counts = stream.new_counts(analyzers)
    problems: list[str] = []
    for batch in batches:
        rows = _checked(batch, has_group, problems)
        counts.rows += len(rows)
        counts.labels.update(label for _, label, _ in rows)
        texts, groups = [r[0] for r in rows], [r[2] for r in rows]
        stream.count_texts(
            stream.vocabulary_sample(texts, groups, share), analyzers, counts, config.stream.count_table_max
        )
    extra: list[tuple[int, str, int]] = [(_LABEL, label, n) for label, n in counts.labels.items()]
    extra += [(_ERROR, message, 1) for message in problems[:MAX_LISTED_ERRORS]]
    extra += [(_TOTAL, "rows", counts.rows), (_TOTAL, "counted", counts.counted), (_TOTAL, "errors", len(problems))]
    extra += [(_PRUNED, str(k), floor) for k, floor in enumerate(counts.pruned_below)]
    tables = [(k, table) for k, table in enumerate(counts.document_frequency)] + [(None, extra)]
    schema = pa.schema([("kind", pa.int32()), ("term", pa.string()), ("n", pa.int64())])
    for kind, table in tables:
        items = list(table.items()) if kind is not None else [(term, n) for _, term, n in table]
        kinds = [kind] * len(items) if kind is not None else [k for k, _, _ in table]
        for start in range(0, max(len(items), 1), 100_000):
            part = items[start : start + 100_000]
            arrays = [pa.array(kinds[start : start + 100_000], pa.int32()), pa.array([t for t, _ in part], pa.string())]
            yield pa.RecordBatch.from_arrays([*arrays, pa.array([n for _, n in part], pa.int64())], schema=schema)


def _count(frame: DataFrame, config: TrainConfig, has_group: bool, data: str, progress: Progress | None) -> Any:
    """Pass 1: the partitions' tables summed by Spark, read by the driver into bounded tables (stream's ``_Counts``)."""
    from pyspark.sql import functions as F

    total = frame.count()
    share = min(1.0, config.stream.vocabulary_rows / max(total, 1))
    _say(progress, f"vocabulary pass: {total:,} rows, counting a {share:.3f} share of groups on the executors")
    count = functools.partial(_count_partition, config=config, share=share, has_group=has_group)
    schema = "kind int, term string, n long"
    summed = frame.mapInArrow(count, schema).groupBy("kind", "term").agg(F.sum("n").alias("n"))
    analyzers = stream._analyzers(config)
    counts = stream.new_counts(analyzers)
    errors: list[str] = []
    totals: dict[str, int] = {}
    limit = config.stream.count_table_max
    for kind, term, n in summed.toLocalIterator(prefetchPartitions=True):
        if kind >= 0:
            table = counts.document_frequency[kind]
            table[term] = n
            if len(table) > limit:
                counts.document_frequency[kind], floor = stream._prune(table, limit // 2)
                counts.pruned_below[kind] = max(counts.pruned_below[kind], floor)
        elif kind == _LABEL:
            counts.labels[term] = n
        elif kind == _ERROR:
            errors.append(term)
        elif kind == _TOTAL:
            totals[term] = n
        else:
            counts.pruned_below[int(term)] = max(counts.pruned_below[int(term)], n)
    counts.rows, counts.counted = totals.get("rows", 0), totals.get("counted", 0)
    _raise_problems(data, sorted(errors), totals.get("errors", 0), counts)
    return counts


def _raise_problems(data: str, errors: list[str], total: int, counts: Any) -> None:
    if total:
        listed = errors[:MAX_LISTED_ERRORS]
        more = f"\n... and {total - len(listed)} more" if total > len(listed) else ""
        raise DataError("\n".join(listed) + more)
    short = [label for label in LABELS if counts.labels.get(label, 0) == 0]
    if short:
        raise DataError(f"cannot train: no rows labeled {', '.join(short)} in {data}")


# ---------------------------------------------------------------- pass 2, on the executors
def _vectors(features: Any, width: int) -> pa.StructArray:
    """Spark ML ``SparseVector`` values (its UDT's storage struct) of a CSR batch of TF-IDF rows."""
    import pyarrow as pa

    offsets = pa.array(features.indptr.astype(np.int32))
    indices = pa.ListArray.from_arrays(offsets, pa.array(features.indices.astype(np.int32)))
    values = pa.ListArray.from_arrays(offsets, pa.array(features.data.astype(np.float64)))
    rows = features.rows
    kind = pa.array(np.zeros(rows, dtype=np.int8))
    size = pa.array(np.full(rows, width, dtype=np.int32))
    return pa.StructArray.from_arrays([kind, size, indices, values], names=["type", "size", "indices", "values"])


def _featurize_partition(
    batches: Iterable[pa.RecordBatch],
    *,
    featurizer: Any,
    held_share: float,
    weights: dict[str, float],
    has_group: bool,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of pass 2: label index, class weight, held-out flag and TF-IDF vector per row;
    text, label, group and evidence-gate ceiling for the held-out rows."""
    import pyarrow as pa

    model: LinearModel = featurizer.value
    codes = {label: float(k) for k, label in enumerate(CLASSES)}
    for batch in batches:
        rows = _checked(batch, has_group, None)
        if not rows:
            continue
        normalized = [normalize(text) for text, _, _ in rows]
        held = [stream.group_unit(group) < held_share for _, _, group in rows]
        only_held = [(text if h else None) for (text, _, _), h in zip(rows, held)]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([codes[label] for _, label, _ in rows], pa.float64()),
                pa.array([weights[label] for _, label, _ in rows], pa.float64()),
                pa.array(held, pa.bool_()),
                _vectors(model.transform(normalized), model.n_features),
                pa.array(only_held, pa.string()),
                pa.array([(label if h else None) for (_, label, _), h in zip(rows, held)], pa.string()),
                pa.array([(group if h else None) for (_, _, group), h in zip(rows, held)], pa.string()),
                pa.array([(gate_for(n).ceiling if h else None) for n, h in zip(normalized, held)], pa.string()),
            ],
            names=["label_index", "weight", "held", "features", "text", "label", "group", "ceiling"],
        )


def _features_schema() -> Any:
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import types as T

    string = T.StringType()
    return T.StructType(
        [
            T.StructField("label_index", T.DoubleType()),
            T.StructField("weight", T.DoubleType()),
            T.StructField("held", T.BooleanType()),
            T.StructField("features", VectorUDT()),
            *(T.StructField(name, string) for name in ("text", "label", "group", "ceiling")),
        ]
    )


def _held_out(features: DataFrame, width: int) -> tuple[pd.DataFrame, sp.csr_matrix, np.ndarray]:
    """The held-out rows on the driver: (text/label/group frame, TF-IDF matrix, evidence-gate ceilings)."""
    held = features.where("held").select("text", "label", "group", "ceiling", "features").collect()
    rows = sorted(held, key=lambda r: (r["group"], r["text"], r["label"]))  # vectors do not compare
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r["features"].indices) for r in rows])
    indices = np.concatenate([r["features"].indices for r in rows]) if rows else np.zeros(0, np.int32)
    data = np.concatenate([r["features"].values for r in rows]) if rows else np.zeros(0)
    matrix = sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(len(rows), width))
    frame = pd.DataFrame([(r["text"], r["label"], r["group"]) for r in rows], columns=["text", "label", "group"])
    return frame, matrix, np.array([r["ceiling"] for r in rows])


# ---------------------------------------------------------------- pass 3: Spark ML
def _fit(rows: DataFrame, reg_param: float, max_iter: int) -> tuple[stream.StreamedLinear, int]:
    """Multinomial L2 logistic regression on ``rows`` (see the module docstring); (coefficients, iterations)."""
    from pyspark.ml.classification import LogisticRegression

    regression = LogisticRegression(
        featuresCol="features",
        labelCol="label_index",
        weightCol="weight",
        family="multinomial",
        regParam=reg_param,
        elasticNetParam=0.0,
        standardization=False,
        fitIntercept=True,
        maxIter=max_iter,
        tol=1e-6,
    )
    fitted = regression.fit(rows)
    coef = fitted.coefficientMatrix.toArray()
    intercept = fitted.interceptVector.toArray()
    model = stream.StreamedLinear(alpha=reg_param).set_coefficients(CLASSES, coef, intercept)
    return model, int(fitted.summary.totalIterations)


@dataclass
class _Options:
    reg_params: tuple[float, ...]
    max_iter: int


def _select(
    features: DataFrame, held: Any, options: _Options, progress: Progress | None
) -> tuple[Any, dict[str, float]]:
    """One fit per regParam on the rows outside the held-out groups; the best by held-out macro-F1 (stream's
    ``_Selection``), and every regParam's score."""
    training = features.where("NOT held").select("label_index", "weight", "features")
    labels = held.held_frame["label"].to_numpy()
    scores: dict[str, float] = {}
    best: tuple[tuple[float, float], Any] | None = None
    for reg_param in sorted(options.reg_params, reverse=True):
        started = time.perf_counter()
        model, iterations = _fit(training, reg_param, options.max_iter)
        proba = stream._proba(model, held.held_features)
        f1 = scores[f"{reg_param:g}"] = macro_f1(labels, proba)
        seconds = time.perf_counter() - started
        _say(progress, f"regParam {reg_param:g}: held-out macro-F1 {f1:.4f} ({iterations} iterations, {seconds:.1f}s)")
        key = (round(f1, 6), reg_param)  # ties to the stronger regularization
        if best is None or key > best[0]:
            best_per = {float(k): v for k, v in scores.items()}
            best = (key, stream._Selection(reg_param, iterations, scores, best_per, proba, model))
    selection = best[1]
    selection.best_per_alpha = {float(k): v for k, v in scores.items()}
    return selection, scores


def _held_out_checked(held_frame: pd.DataFrame, share: float, training_rows: int) -> None:
    if held_frame["label"].nunique() < len(LABELS) or training_rows == 0:
        raise DataError(
            f"cannot train: the held-out groups ({len(held_frame)} rows, share {share:.3f}) need every label and the "
            "rest some rows; give more groups or raise stream.validation_share"
        )


def _check_settings(config: TrainConfig, options: _Options) -> None:
    stream._check_params(config.stream)
    if config.augment_copies:
        raise ConfigError("duanka spark train does not augment (augment_copies must be 0)")
    if not options.reg_params or not all(np.isfinite(r) and r > 0 for r in options.reg_params):
        raise ConfigError(f"regParams must be positive numbers, got {list(options.reg_params)}")
    if options.max_iter < 1:
        raise ConfigError(f"max_iter must be at least 1, got {options.max_iter}")


def _train(
    spark: SparkSession, frame: DataFrame, has_group: bool, config: TrainConfig, options: _Options, data: str,
    progress: Progress | None,
) -> tuple[stream.StreamTraining, float]:  # fmt: skip
    """The three passes; (the stream engine's StreamTraining of the Spark fit, the chosen regParam)."""
    from pyspark import StorageLevel

    timings: dict[str, float] = {}
    started = time.perf_counter()
    counts = _count(frame, config, has_group, data, progress)
    pipeline = stream._feature_pipeline(config, counts)
    timings["vocabulary_s"] = time.perf_counter() - started
    vectorizers = pipeline.named_steps["features"].transformer_list
    width = sum(len(v.vocabulary_) for _, v in vectorizers)
    sizes = "/".join(str(len(v.vocabulary_)) for _, v in vectorizers)
    _say(progress, f"vocabulary: {counts.rows:,} rows, {sizes} word/char n-grams ({timings['vocabulary_s']:.1f}s)")
    pipeline.named_steps["classifier"].set_coefficients(
        CLASSES, np.zeros((len(CLASSES), width)), np.zeros(len(CLASSES))
    )
    featurizer = spark.sparkContext.broadcast(export_pipeline(pipeline))
    share = stream.held_out_share(config.stream, counts.rows)
    featurize = functools.partial(
        _featurize_partition,
        featurizer=featurizer,
        held_share=share,
        weights=stream._class_weights(counts.labels),
        has_group=has_group,
    )
    started = time.perf_counter()
    features = frame.mapInArrow(featurize, _features_schema()).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        held_frame, held_matrix, ceilings = _held_out(features, width)
        _held_out_checked(held_frame, share, counts.rows - len(held_frame))
        held = stream._Featurized([], width, held_frame, held_matrix, ceilings, counts.rows - len(held_frame))
        timings["features_s"] = time.perf_counter() - started
        _say(
            progress, f"feature pass: {counts.rows:,} rows, {len(held_frame):,} held out ({timings['features_s']:.1f}s)"
        )
        started = time.perf_counter()
        selection, _ = _select(features, held, options, progress)
        timings["selection_s"] = time.perf_counter() - started
        started = time.perf_counter()
        final = selection.model
        if config.stream.refit:
            final, iterations = _fit(
                features.select("label_index", "weight", "features"), selection.alpha, options.max_iter
            )
            _say(progress, f"refit on every row: regParam {selection.alpha:g}, {iterations} iterations")
        timings["refit_s"] = time.perf_counter() - started
    finally:
        features.unpersist()
        featurizer.unpersist()
    return stream._result(pipeline, config, counts, held, selection, final, timings), selection.alpha


def _train_run(
    streamed: stream.StreamTraining,
    files: list[Path],
    holdout: str | Path | None,
    rules: str | Path | None,
    policies: str | Path | None,
) -> TrainRun:
    """The workflow's steps after the fit, as ``train_model`` runs them for the stream engine: normal weight,
    thresholds and policies on the held-out predictions, the manifest, the holdout scored by the Scorer."""
    from duanka.scoring.rules import RuleSet
    from duanka.training import workflow
    from duanka.training.dataset import load_posts
    from duanka.training.thresholds import PolicySet

    frame = pd.DataFrame(columns=["id", "text", "label", "group", "source", "_file"])
    sources = {"files": files, "frame": frame, "mlflow_run_id": None, "background": (), "rows": streamed.rows}
    holdout_frame = load_posts(holdout) if holdout else None
    rule_set, policy_set = RuleSet.load(rules), PolicySet.load(policies)
    return workflow.finish_run(streamed.result, sources, holdout, holdout_frame, rule_set, policy_set, lambda m: None)


def train_spark(
    spark: SparkSession,
    data: str,
    holdout: str | Path | None = None,
    config: TrainConfig | None = None,
    *,
    input_format: str | None = None,
    reg_params: Sequence[float] | None = None,
    max_iter: int = 50,
    rules: str | Path | None = None,
    policies: str | Path | None = None,
    progress: Progress | None = None,
) -> SparkTraining:
    """Train on ``data`` with Spark (see the module docstring); nothing is written.

    Args:
        spark: the session whose executors count, featurize and fit.
        data: labeled Parquet (any path Spark reads), or a local CSV/JSON lines file or directory.
        holdout: the reported test set, scored on the driver by the Scorer (None to skip).
        config: shared settings (seed, vocabulary, normal weights) and ``config.stream`` (held-out share,
            vocabulary sample and count tables, refit).
        input_format: ``parquet``, ``json`` or ``csv`` (default: from the suffix).
        reg_params: Spark ML regParams tried (default: ``config.stream.alpha_grid``, the same penalty per row).
        max_iter: L-BFGS iterations at most per fit.
        rules, policies: as for ``duanka train`` (default: shipped).
        progress: called with a line of text at each step.

    Raises:
        DataError: bad rows (file, row and cause, up to 20), a label with no rows, too few groups.
        ConfigError: settings this trainer cannot use.
    """
    config = config or TrainConfig()
    options = _Options(tuple(reg_params or config.stream.alpha_grid), max_iter)
    _check_settings(config, options)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="duanka-spark-train-") as directory:
        frame, has_group, files = _labeled_frame(spark, data, input_format, Path(directory))
        frame = _spread(frame)
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
            )
            streamed, reg_param = _train(spark, frame, has_group, config, options, data, progress)
    streamed.result.timings["train_total_s"] = time.perf_counter() - started
    run = _train_run(streamed, files, holdout, rules, policies)
    if not files:  # data the driver cannot hash: say where it came from instead of hashing nothing
        run.info = replace(run.info, training_data_sha256=f"not hashed: {data}")
    return SparkTraining(
        run, streamed.rows, streamed.held_out_rows, reg_param, streamed.epochs, streamed.epoch_macro_f1,
        dict(streamed.result.timings),
    )  # fmt: skip


def train_spark_artifact(spark: SparkSession, data: str, output: str | Path, **options: Any) -> SparkTraining:
    """:func:`train_spark`, then the artifact written to ``output`` by the workflow's ``write_model``."""
    from duanka.training.workflow import write_model

    trained = train_spark(spark, data, **options)
    write_model(trained.run, output)
    _say(options.get("progress"), f"artifact written to {trained.run.artifact_dir}")
    return trained
