"""Score Spark DataFrames with duanka: one Scorer per Python worker, typed results in a ``duanka`` struct column."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duanka.adapters.file_scoring import FileSummary
from duanka.defaults import ARTIFACT_DIR
from duanka.errors import DataError, DuankaError
from duanka.labels import LABELS

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

    from duanka.scoring.scorer import Scorer

__all__ = [
    "EVIDENCE_MODES",
    "FORMATS",
    "RESULT_COLUMN",
    "local_session",
    "result_type",
    "score_dataframe",
    "score_files",
    "score_texts",
    "spark_session",
    "summarize",
    "worker_artifact",
]

RESULT_COLUMN = "duanka"
EVIDENCE_MODES = ("typed", "json", "none")
FORMATS = ("parquet", "json", "csv")
SUMMARY_FIELDS = ("label", "risk", "decision", "source", "error")
INSTALL_HINT = "pyspark is not installed: pip install 'duanka[spark]' (and a Java 17 runtime)"

# Python workers are reused across tasks (spark.python.worker.reuse, on by default): the Scorer loaded by
# the first task of a worker serves every later task of that worker.
_SCORERS: dict[tuple[str, bool], Scorer] = {}


def _pyspark_types() -> Any:
    try:
        from pyspark.sql import types
    except ImportError:
        raise DuankaError(INSTALL_HINT) from None
    return types


# ---------------------------------------------------------------- result schema
def result_type(evidence: str = "typed") -> StructType:
    """The Spark type of the ``duanka`` column: the fields of ``ScoreResult.to_dict()`` (less ``data_id``) + ``error``.

    ``evidence`` is ``typed`` (struct of arrays), ``json`` (one JSON string) or ``none`` (no evidence field).
    """
    _check_evidence(evidence)
    t = _pyspark_types()
    string, integer, double, boolean = t.StringType(), t.IntegerType(), t.DoubleType(), t.BooleanType()

    def struct(*fields: tuple[str, DataType]) -> StructType:
        return t.StructType([t.StructField(name, kind, nullable=True) for name, kind in fields])

    match = struct(("term", string), ("start", integer), ("end", integer), ("text", string))
    rule = struct(
        ("id", string),
        ("label", string),
        ("description", string),
        ("weight", double),
        ("escalate", boolean),
        ("matches", t.ArrayType(match)),
    )
    term = struct(("list", string), ("term", string), ("start", integer), ("end", integer), ("text", string))
    feature = struct(("feature", string), ("weight", double), ("start", integer), ("end", integer))
    typed_evidence = struct(("rules", t.ArrayType(rule)), ("terms", t.ArrayType(term)), ("model", t.ArrayType(feature)))
    fields: list[tuple[str, DataType]] = [
        ("label", string),
        ("risk", double),
        ("decision", string),
        ("source", string),
        ("degraded", boolean),
        ("truncated", boolean),
        ("model_version", string),
        ("probabilities", struct(*((label, double) for label in LABELS))),
    ]
    if evidence != "none":
        fields.append(("evidence", typed_evidence if evidence == "typed" else string))
    fields += [("notes", t.ArrayType(string)), ("policy", string), ("error", string)]
    return struct(*fields)


def _arrow_type(kind: DataType) -> pa.DataType:
    """The Arrow type Spark expects for ``kind`` (written here because Spark 3.5 refuses nested structs)."""
    import pyarrow as pa

    t = _pyspark_types()
    simple = {
        t.StringType: pa.string(),
        t.IntegerType: pa.int32(),
        t.LongType: pa.int64(),
        t.DoubleType: pa.float64(),
        t.BooleanType: pa.bool_(),
    }
    if type(kind) in simple:
        return simple[type(kind)]
    if isinstance(kind, t.ArrayType):
        return pa.list_(_arrow_type(kind.elementType))
    if isinstance(kind, t.StructType):
        return pa.struct([pa.field(f.name, _arrow_type(f.dataType)) for f in kind.fields])
    raise TypeError(f"no Arrow type for {kind}")


def _check_evidence(evidence: str) -> None:
    if evidence not in EVIDENCE_MODES:
        raise ValueError(f"evidence must be one of {', '.join(EVIDENCE_MODES)}, not {evidence!r}")


# ---------------------------------------------------------------- scoring, on the workers
def score_texts(
    scorer: Scorer,
    texts: Sequence[Any],
    evidence: str = "typed",
    policy: str | None = None,
    errors: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """One payload per text, in order: ``ScoreResult.to_dict()`` for strings, ``{"error": ...}`` for anything else.

    The payload is shaped for ``result_type(evidence)``: with ``json`` the evidence is a JSON string, with
    ``none`` it is left out. ``errors`` (one per text, or None) are reading errors: such a row is not scored
    and carries its error.
    """
    payloads: list[dict[str, Any]] = [{} for _ in texts]
    for i, text in enumerate(texts):
        if errors is not None and errors[i] is not None:
            payloads[i] = {"error": errors[i]}
        elif not isinstance(text, str):
            kind = "null" if text is None else type(text).__name__
            payloads[i] = {"error": f"text is {kind}, not a string"}
    valid = [i for i, text in enumerate(texts) if not payloads[i]]
    results = scorer.score_batch([texts[i] for i in valid], policy=policy) if valid else []
    for i, result in zip(valid, results):
        payload = result.to_dict()
        del payload["data_id"]  # the kept columns identify the row
        if evidence == "json":
            payload["evidence"] = json.dumps(payload["evidence"], ensure_ascii=False)
        elif evidence == "none":
            del payload["evidence"]
        payloads[i] = payload
    return payloads


def _worker_scorer(artifact_name: str | None, model: str, strict: bool) -> Scorer:
    """The Scorer of this Python worker, loaded from the shipped artifact on first use."""
    key = (artifact_name or model, strict)
    if key not in _SCORERS:
        from duanka.scoring.scorer import Scorer

        _SCORERS[key] = Scorer.load(worker_artifact(artifact_name, model), strict=strict)
    return _SCORERS[key]


def worker_artifact(artifact_name: str | None, model: str) -> str:
    """Where a Python worker finds the artifact: the copy shipped with the job (``SparkFiles``), else ``model``."""
    if artifact_name is None:
        return model
    from pyspark import SparkFiles

    return SparkFiles.get(artifact_name)


def _score_arrow_batches(
    batches: Iterable[pa.RecordBatch],
    *,
    artifact_name: str | None,
    model: str,
    strict: bool,
    text_col: str,
    keep: tuple[str, ...],
    evidence: str,
    result_arrow: pa.DataType,
    policy: str | None = None,
    error_col: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: kept columns passed through, plus the ``duanka`` struct."""
    import pyarrow as pa

    scorer = _worker_scorer(artifact_name, model, strict)
    for batch in batches:
        errors = batch.column(error_col).to_pylist() if error_col else None
        payloads = score_texts(scorer, batch.column(text_col).to_pylist(), evidence, policy, errors)
        columns = [batch.column(name) for name in keep]
        columns.append(pa.array(payloads, type=result_arrow))
        yield pa.RecordBatch.from_arrays(columns, names=[*keep, RESULT_COLUMN])


# ---------------------------------------------------------------- the driver side
def _resolve_model(model: str | Path) -> Path:
    """A local artifact directory; ``models:/`` and ``runs:/`` URIs are downloaded here, on the driver."""
    from duanka.scoring.scorer import is_model_uri

    if is_model_uri(model):
        from duanka.adapters.serving import download_artifact_dir

        # kept until the process ends: the directory is staged for the executors from here
        return download_artifact_dir(str(model), tempfile.mkdtemp(prefix="duanka-spark-model-"))
    return Path(model)


def _stage_artifact(directory: Path) -> Path:
    """A copy of ``directory`` named after its manifest's digest, so two artifacts never share a SparkFiles name."""
    digest = hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()[:16]
    staged = Path(tempfile.gettempdir()) / "duanka-spark" / f"duanka-{digest}"
    if not staged.is_dir():
        staged.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=staged.parent))
        shutil.copytree(directory, staging / "artifact")
        try:
            os.replace(staging / "artifact", staged)
        except OSError:  # another job staged the same artifact first
            pass
        shutil.rmtree(staging, ignore_errors=True)
    return staged


def _ship_artifact(spark: SparkSession, directory: Path) -> str | None:
    """Add the artifact directory to the job's files once; None when there is no directory to ship."""
    if not (directory / "manifest.json").is_file():
        return None
    staged = _stage_artifact(directory)
    context = spark.sparkContext
    if not any(str(added).rstrip("/").endswith("/" + staged.name) for added in context.listFiles):
        context.addFile(str(staged), recursive=True)
    return staged.name


def _spread(df: DataFrame, partitions: int | None) -> DataFrame:
    """Deal the rows out evenly: to ``partitions``, or to at least as many partitions as cores.

    Always a round-robin shuffle, because a partition count says nothing about rows: a Parquet file with one
    row group is read as one full partition and empty ones, a ``multiLine`` CSV as one partition. Moving the
    text costs microseconds a row, scoring it about half a millisecond.
    """
    if partitions is not None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {partitions}")
        return df.repartition(partitions)
    cores = df.sparkSession.sparkContext.defaultParallelism
    return df.repartition(max(df.rdd.getNumPartitions(), cores))


def score_dataframe(
    df: DataFrame,
    model: str | Path = ARTIFACT_DIR,
    text_col: str = "text",
    keep: Sequence[str] = ("id",),
    evidence: str = "typed",
    strict: bool = True,
    partitions: int | None = None,
    policy: str | None = None,
    error_col: str | None = None,
) -> DataFrame:
    """Score ``df[text_col]`` with the duanka artifact ``model``; one output row per input row.

    Args:
        df: any DataFrame with a ``text_col`` column.
        model: artifact directory, or ``models:/…``/``runs:/…`` URI (downloaded and verified here, on the driver;
            executors never talk to MLflow). The directory travels to the executors with ``SparkContext.addFile``.
        text_col: the column to score; null or non-string values give a row whose ``duanka.error`` says so.
        keep: columns copied to the output beside ``duanka`` (an id, a date partition ...).
        evidence: ``typed`` (struct of arrays), ``json`` (a JSON string) or ``none`` (no evidence field).
        strict: fail here, before the job starts, when the model is unusable, instead of scoring with rules alone.
        partitions: deal the rows out to this many partitions; by default to as many as the input has, and at
            least as many as cores (round-robin, so skewed or single-partition inputs are balanced).
        policy: the surface whose thresholds decide (``duanka.scoring.policy``); unknown names fail here, on the driver.
        error_col: a string column of reading errors: a row with one is not scored and carries it as ``duanka.error``.

    Returns:
        A DataFrame of the ``keep`` columns and a ``duanka`` struct column typed by :func:`result_type`.
    """
    _check_evidence(evidence)
    keep = tuple(keep)
    _check_columns(df, (text_col, *keep, *([error_col] if error_col else [])), keep)
    from duanka.scoring.scorer import Scorer

    directory = _resolve_model(model)
    Scorer.load(directory, strict=strict).policy_thresholds(policy)  # fail before the job, not in a thousand tasks
    artifact_name = _ship_artifact(df.sparkSession, directory)
    t = _pyspark_types()
    duanka_type = result_type(evidence)
    schema = t.StructType([*(df.schema[name] for name in keep), t.StructField(RESULT_COLUMN, duanka_type)])
    score = functools.partial(
        _score_arrow_batches,
        artifact_name=artifact_name,
        model=str(directory),
        strict=strict,
        text_col=text_col,
        keep=keep,
        evidence=evidence,
        result_arrow=_arrow_type(duanka_type),
        policy=policy,
        error_col=error_col,
    )
    selected = _spread(df.select(*dict.fromkeys((*keep, text_col, *([error_col] if error_col else [])))), partitions)
    with warnings.catch_warnings():
        # pyspark checks the pandas version for every Arrow UDF; mapInArrow never converts to pandas
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        return selected.mapInArrow(score, schema)


def _check_columns(df: DataFrame, needed: Sequence[str], keep: Sequence[str]) -> None:
    missing = [name for name in needed if name not in df.columns]
    if missing:
        raise DataError(
            f"no column {', '.join(map(repr, missing))} in the DataFrame (columns: {', '.join(df.columns)})"
        )
    if RESULT_COLUMN in keep:
        raise DataError(f"cannot keep a column named {RESULT_COLUMN!r}: the results are written there")


# ---------------------------------------------------------------- sessions
def _is_local(master: str | None) -> bool:
    return master is None or master.startswith("local")


def local_session(
    master: str | None = "local[2]", app_name: str = "duanka", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The active SparkSession, or a new one on ``master``.

    When duanka starts the session itself on a local master (and neither ``spark-submit`` nor the user chose
    the workers' Python), ``PYSPARK_PYTHON`` is set to this interpreter, so the workers import the same
    duanka, pandas and scikit-learn as the driver. ``master=None`` keeps what ``spark-submit`` was given
    (``local[*]`` outside ``spark-submit``); ``conf`` adds Spark settings to a new session.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise DuankaError(INSTALL_HINT) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if _is_local(master) and not under_submit and "PYSPARK_PYTHON" not in os.environ:
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


@contextmanager
def spark_session(master: str | None = None, app_name: str = "duanka") -> Iterator[SparkSession]:
    """``local_session`` as a context manager that stops the session only if it started it."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise DuankaError(INSTALL_HINT) from None
    started = SparkSession.getActiveSession() is None
    session = local_session(master, app_name)
    try:
        yield session
    finally:
        if started:
            session.stop()


# ---------------------------------------------------------------- files, for `duanka spark score`
def _input_format(path: str, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    suffix = Path(path.rstrip("/")).suffix.lower().lstrip(".")
    guessed = {"parquet": "parquet", "json": "json", "jsonl": "json", "ndjson": "json", "csv": "csv"}.get(suffix)
    if guessed is None:
        raise DataError(f"{path}: cannot tell the format from the name; give --input-format parquet, json or csv")
    return guessed


# CSV and JSON lines are read on the driver by duanka's own reader, exactly as `duanka score` reads them (one row
# per input row, broken rows as errors naming the file, row, line and cause), staged as Parquet row groups and
# shipped to the executors with addFile; Spark's own readers drop, merge or invent rows around a broken quote
# and read a JSON number as a string.
ROW_COLUMN = "row"
_TEXT, _ERROR = "__duanka_text", "__duanka_error"
_STAGE_ROWS = 4096  # records per staged row group, at most
_STAGE_CHARS = 32_000_000  # ... and characters of text per row group, at most


@dataclass
class _Staged:
    """CSV or JSON lines records staged as one Parquet file: where, how many row groups, which columns were seen."""

    path: Path
    groups: int
    columns: set[str]


def _local_files(path: str) -> list[Path]:
    """The local files behind ``path``: the file itself, or a directory's visible files in name order."""
    if "://" in path and not path.startswith("file://"):
        raise DataError(
            f"{path}: CSV and JSON lines inputs are read on the driver, as `duanka score` reads them (one row per "
            "input row); give a local path, or convert the input to Parquet"
        )
    local = Path(path.removeprefix("file://"))
    if local.is_dir():
        files = sorted(f for f in local.iterdir() if f.is_file() and not f.name.startswith(("_", ".")))
        if not files:
            raise DataError(f"{path}: the directory holds no data files")
        return files
    if not local.exists():
        raise DataError(f"{path}: no such file")
    return [local]


def _stage_records(path: str, fmt: str, text_col: str, keep: Sequence[str], directory: Path) -> _Staged:
    """Read every record of the CSV/JSON lines input ``path`` into a Parquet file in ``directory``.

    Columns: ``row``, the ``keep`` columns as strings (other JSON values as JSON text), the text to score and
    the reading error, worded as ``duanka score`` words it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from duanka.adapters.file_scoring import record_problem
    from duanka.files.readers import iter_records

    files = _local_files(path)
    schema = pa.schema([(ROW_COLUMN, pa.int64()), *((c, pa.string()) for c in keep), (_TEXT, pa.string())])
    schema = schema.append(pa.field(_ERROR, pa.string()))
    staged = _Staged(directory / f"duanka-records-{uuid.uuid4().hex}.parquet", 0, set())
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    chars = 0
    with pq.ParquetWriter(staged.path, schema) as writer:

        def flush() -> None:
            if columns[ROW_COLUMN]:
                writer.write_table(pa.table(columns, schema=schema))
                staged.groups += 1
                for values in columns.values():
                    values.clear()

        for file in files:
            name = path if len(files) == 1 else str(file)
            for record in iter_records(file, kind="csv" if fmt == "csv" else "jsonl"):
                staged.columns.update(record.values)
                problem = record_problem(record, text_col)
                columns[ROW_COLUMN].append(record.row)
                for column in keep:
                    columns[column].append(_as_string(record.values.get(column)))
                columns[_TEXT].append(None if problem else record.values[text_col])
                columns[_ERROR].append(f"{name}: {record.where}: {problem}" if problem else None)
                chars += len(record.values[text_col]) if not problem else 0
                if len(columns[ROW_COLUMN]) >= _STAGE_ROWS or chars >= _STAGE_CHARS:
                    flush()
                    chars = 0
        flush()
    return staged


def _as_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _read_staged_groups(ids: Iterable[pa.RecordBatch], *, name: str) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function over row-group numbers: the staged records of those row groups."""
    import pyarrow.parquet as pq
    from pyspark import SparkFiles

    parquet = pq.ParquetFile(SparkFiles.get(name))
    for batch in ids:
        for group in batch.column(0).to_pylist():
            yield from parquet.read_row_group(group).to_batches()


def _staged_frame(spark: SparkSession, staged: _Staged, keep: Sequence[str]) -> DataFrame:
    """The staged records as a DataFrame, read by the executors from the file shipped with addFile."""
    t = _pyspark_types()
    string = t.StringType()
    schema = t.StructType(
        [
            t.StructField(ROW_COLUMN, t.LongType()),
            *(t.StructField(c, string) for c in keep),
            t.StructField(_TEXT, string),
            t.StructField(_ERROR, string),
        ]
    )
    spark.sparkContext.addFile(str(staged.path))
    groups = spark.range(staged.groups, numPartitions=max(1, min(staged.groups, spark.sparkContext.defaultParallelism)))
    read = functools.partial(_read_staged_groups, name=staged.path.name)
    return groups.mapInArrow(read, schema)


def _read(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """A Parquet input, read by Spark (its rows are typed: nothing to resynchronise)."""
    return spark.read.parquet(path)


def _write(df: DataFrame, path: str, fmt: str) -> None:
    if fmt == "csv":
        from pyspark.sql import functions as F

        # CSV has no structs: the fields a reader filters on as columns, the whole result as JSON
        flat = df.select(
            *(c for c in df.columns if c != RESULT_COLUMN),
            *(F.col(f"{RESULT_COLUMN}.{name}").alias(name) for name in SUMMARY_FIELDS),
            F.to_json(F.col(RESULT_COLUMN)).alias(RESULT_COLUMN),
        )
        flat.write.mode("overwrite").csv(path, header=True, escape='"')
    elif fmt == "json":
        df.write.mode("overwrite").json(path)
    else:
        df.write.mode("overwrite").parquet(path)


def _written_fields(spark: SparkSession, path: str, fmt: str, schema: StructType) -> DataFrame:
    """decision, source and error of every written row, read back from the output (so nothing is scored twice)."""
    if fmt == "csv":
        return spark.read.csv(path, header=True, escape='"', multiLine=True).select(*SUMMARY_FIELDS[2:])
    written = spark.read.parquet(path) if fmt == "parquet" else spark.read.schema(schema).json(path)
    return written.select(*(f"{RESULT_COLUMN}.{name}" for name in SUMMARY_FIELDS[2:]))


def summarize(fields: DataFrame) -> FileSummary:
    """Rows, decisions, sources and errors from a frame of ``decision, source, error`` columns."""
    summary = FileSummary()
    for row in fields.groupBy("decision", "source", "error").count().collect():
        summary.rows += row["count"]
        if row["error"] is not None:
            summary.errors += row["count"]
        else:
            summary.decisions[row["decision"]] += row["count"]
            summary.sources[row["source"]] += row["count"]
    return summary


def score_files(
    spark: SparkSession,
    input_path: str,
    output_path: str,
    *,
    output_format: str = "parquet",
    input_format: str | None = None,
    text_col: str = "text",
    id_col: str | None = "id",
    model: str | Path = ARTIFACT_DIR,
    partitions: int | None = None,
    evidence: str = "typed",
    strict: bool = True,
    on_note: Callable[[str], None] = lambda message: None,
    policy: str | None = None,
    also_keep: Sequence[str] = (),
) -> FileSummary:
    """Read ``input_path`` (Parquet, JSON lines or CSV with a header), score it, write ``output_path``, summarize.

    The output holds the id column (when the input has one), the ``also_keep`` columns (the text and a date, for
    ``duanka spark monitor``) and the ``duanka`` struct; CSV, which has no structs, gets ``label, risk, decision,
    source`` as columns and the whole result as a JSON string. CSV and JSON lines are read on the driver by
    duanka's reader, so the rows, ids and errors are those of ``duanka score``: one output row per input row,
    with a ``row`` column (the row's number in its file), kept columns as strings.
    """
    if output_format not in FORMATS:
        raise DataError(f"output format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    fmt = _input_format(input_path, input_format)
    options = {"model": model, "evidence": evidence, "strict": strict, "partitions": partitions, "policy": policy}
    if fmt != "parquet":
        with tempfile.TemporaryDirectory(prefix="duanka-spark-read-") as directory:
            keep_options = {"text_col": text_col, "id_col": id_col, "also_keep": also_keep, "on_note": on_note}
            scored = _score_staged(spark, input_path, fmt, Path(directory), keep_options, options)
            _write(scored, output_path, output_format)
            return summarize(_written_fields(spark, output_path, output_format, scored.schema))
    df = _read(spark, input_path, fmt)
    keep: tuple[str, ...] = ()
    if id_col:
        if id_col in df.columns:
            keep = (id_col,)
        else:
            on_note(f"{input_path}: no {id_col!r} column; output rows carry no id")
    missing = [name for name in also_keep if name not in df.columns]
    if missing:
        names = ", ".join(map(repr, missing))
        raise DataError(f"{input_path}: no column {names} to keep (columns: {', '.join(df.columns)})")
    keep = tuple(dict.fromkeys((*keep, *also_keep)))
    scored = score_dataframe(df, text_col=text_col, keep=keep, **options)
    _write(scored, output_path, output_format)
    return summarize(_written_fields(spark, output_path, output_format, scored.schema))


def _score_staged(
    spark: SparkSession,
    input_path: str,
    fmt: str,
    directory: Path,
    keep_options: dict[str, Any],
    options: dict[str, Any],
) -> DataFrame:
    """Score a CSV/JSON lines input read on the driver (:func:`_stage_records`) and staged in ``directory``."""
    text_col, id_col, also_keep = keep_options["text_col"], keep_options["id_col"], keep_options["also_keep"]
    wanted = tuple(dict.fromkeys((*([id_col] if id_col else []), *also_keep)))
    clash = [name for name in wanted if name in (ROW_COLUMN, RESULT_COLUMN, _TEXT, _ERROR)]
    if clash:
        names = ", ".join(map(repr, clash))
        raise DataError(f"cannot keep column(s) {names}: the output's own columns have these names")
    staged = _stage_records(input_path, fmt, text_col, wanted, directory)
    missing = [name for name in also_keep if name not in staged.columns]
    if missing:
        names = ", ".join(map(repr, missing))
        raise DataError(f"{input_path}: no column {names} to keep (columns: {', '.join(sorted(staged.columns))})")
    keep = wanted
    if id_col and id_col not in staged.columns:
        keep_options["on_note"](f"{input_path}: no {id_col!r} column; output rows carry no id")
        keep = tuple(name for name in wanted if name != id_col)
    frame = _staged_frame(spark, staged, wanted)
    return score_dataframe(frame, text_col=_TEXT, keep=(ROW_COLUMN, *keep), error_col=_ERROR, **options)
