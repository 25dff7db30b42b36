"""``duanka monitor``: read windows of scored traffic, compare them, and write the report (JSON and HTML).

Input: the JSONL of ``duanka score`` (text in the lines, or joined from ``--posts``, the file that was scored) or
the Parquet/JSON output of ``duanka spark score`` (a ``duanka`` struct column; keep the text column with
``--keep text`` to read text); optionally a feedback file from ``duanka review import`` whose labels are joined on
the post id. One input file is one window, or ``--by COLUMN`` cuts the inputs into windows by a column's value
(a date). Each window is read once, in batches, into a :class:`~duanka.monitoring.stats.WindowStats` of bounded
size; the statistics are compared by :mod:`duanka.monitoring.compare`.
"""

from __future__ import annotations

import gc
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duanka.errors import DataError
from duanka.files.readers import batched, iter_records
from duanka.monitoring.compare import compare_windows
from duanka.monitoring.reference import read_reference
from duanka.monitoring.stats import Post, TextView, WindowStats
from duanka.scoring.artifact import read_artifact

__all__ = [
    "MonitorOptions",
    "build_report",
    "post_of",
    "read_stats",
    "read_windows",
    "save_stats",
    "text_rate_for",
    "window_name",
]

try:  # 2-3x faster on scored lines; the `monitor` extra installs it
    from orjson import JSONDecodeError as _OrjsonError
    from orjson import loads as _loads

    _JSON_ERRORS: tuple[type[Exception], ...] = (json.JSONDecodeError, _OrjsonError)
except ImportError:  # pragma: no cover - the standard library parses the same JSON
    _loads = json.loads
    _JSON_ERRORS = (json.JSONDecodeError,)

BATCH = 4096
# inputs under 64 MB are read in full; larger ones at SAMPLED_TEXT_RATE (5%: 50,000 posts of a million)
AUTO_FULL_TEXT_BYTES = 64 << 20
SAMPLED_TEXT_RATE = 0.05
MAX_PROBLEMS = 20


@dataclass
class MonitorOptions:
    """How windows are read: see ``duanka monitor --help``."""

    posts: list[str] = field(default_factory=list)
    reviews: str | None = None
    by: str | None = None
    text_column: str = "text"
    id_column: str = "id"
    text_rate: float | None = None


def text_rate_for(paths: list[str], explicit: float | None) -> float:
    """The share of posts whose text is read: ``explicit``, else all of them for inputs under 64 MB, else 5%."""
    if explicit is not None:
        if not 0 < explicit <= 1:
            raise DataError(f"--text-sample must be in (0, 1], not {explicit}")
        return explicit
    size = sum(_size(Path(p)) for p in paths)
    return 1.0 if size < AUTO_FULL_TEXT_BYTES else SAMPLED_TEXT_RATE


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


# ---------------------------------------------------------------- reading scored lines
def _jsonl_lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """``(where, line)`` per line of a scored JSONL file; ``line`` is the problem text when it is not JSON."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                line = _loads(raw)
            except _JSON_ERRORS as exc:
                yield f"line {number}", f"not JSON ({getattr(exc, 'msg', exc)})"
                continue
            yield f"line {number}", line if isinstance(line, dict) else "not a JSON object"


def _arrow_lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """``(where, line)`` per row of ``duanka spark score`` output (Parquet or JSON lines; file or directory)."""
    import pyarrow.dataset as ds

    form = "json" if (path.suffix in (".json", ".jsonl") or any(path.glob("*.json"))) else "parquet"
    try:
        dataset = ds.dataset(str(path), format=form)
        number = 0
        for batch in dataset.to_batches(batch_size=BATCH):
            for row in batch.to_pylist():
                number += 1
                result = row.pop("duanka", None) or {}
                yield f"row {number}", {**row, **result}
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: cannot read as {form} ({exc})") from None


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix == ".parquet":
        return _arrow_lines(path)
    return _jsonl_lines(path)


def _with_posts(lines: Iterator, posts: str | None, text_column: str) -> Iterator[tuple[str, Any, Any]]:
    """``(where, line, record values)``: with ``posts``, the scored file's rows joined in step (one line a row)."""
    if posts is None:
        for where, line in lines:
            yield where, line, None
        return
    records = iter_records(posts)
    for (where, line), record in itertools.zip_longest(lines, records):
        if line is None or record is None:
            raise DataError(f"{posts}: has {'more' if line is None else 'fewer'} rows than the scored file")
        if isinstance(line, dict) and line.get("row") not in (None, record.row):
            raise DataError(
                f"{posts}: {record.where} meets scored {where} of row {line.get('row')}: not the file scored"
            )
        yield where, line, (record.values if not record.error else None)


def post_of(line: dict[str, Any], values: dict[str, Any] | None, options: MonitorOptions, reviews: dict) -> Post:
    """A scored line as a Post; raises ValueError naming what is missing."""
    if line.get("error"):
        raise ValueError(f"scored as an error: {str(line['error'])[:200]}")
    decision, label, risk = line.get("decision"), line.get("label"), line.get("risk")
    if not isinstance(decision, str) or not isinstance(label, str) or not isinstance(risk, (int, float)):
        raise ValueError("no decision, label and risk (is this `duanka score` output?)")
    evidence = line.get("evidence") or {}
    if isinstance(evidence, str):
        evidence = json.loads(evidence)
    hits = evidence.get("rules")
    rules = tuple(h["id"] for h in hits if isinstance(h, dict) and h.get("id")) if hits else ()
    text = line.get(options.text_column) if values is None else values.get(options.text_column)
    post_id = line.get(options.id_column, line.get("id")) if reviews else None
    return Post(
        decision,
        label,
        float(risk),
        line.get("policy") or "default",
        line.get("source") or "model",
        bool(line.get("degraded")),
        rules,
        text if isinstance(text, str) else None,
        reviews.get(str(post_id)) if post_id is not None else None,
    )


def _read_reviews(path: str | None) -> dict[str, str]:
    """Reviewer labels by post id from a feedback file (``duanka review import``): ``post_id`` or ``id``."""
    if path is None:
        return {}
    found: dict[str, str] = {}
    for record in iter_records(path):
        if record.error:
            continue
        key = record.values.get("post_id") or record.values.get("id")
        label = record.values.get("label")
        if key not in (None, "") and isinstance(label, str) and label:
            found[str(key)] = label
    return found


# ---------------------------------------------------------------- windows
@dataclass
class _Reading:
    windows: dict[str, WindowStats]
    problems: list[str]
    rate: float

    def window(self, name: str) -> WindowStats:
        found = self.windows.get(name)
        if found is None:
            found = self.windows[name] = WindowStats(name=name, text_rate=self.rate)
        return found


def window_name(default: str, line: dict[str, Any], values: dict[str, Any] | None, by: str | None) -> str:
    """The window a row belongs to: ``default`` (the input's name), or its ``by`` column's value."""
    if by is None:
        return default
    value = (values or {}).get(by, line.get(by))
    return "(no " + by + ")" if value in (None, "") else str(value)


def _read_one(
    path: Path, posts: str | None, options: MonitorOptions, reviews: dict, reading: _Reading, view: TextView
) -> None:
    rows = _with_posts(_lines(path), posts, options.text_column)
    for batch in batched(rows, BATCH):
        by_window: dict[str, list[Post]] = {}
        for where, line, values in batch:
            name = window_name(path.name, line if isinstance(line, dict) else {}, values, options.by)
            try:
                if not isinstance(line, dict):
                    raise ValueError(line)
                by_window.setdefault(name, []).append(post_of(line, values, options, reviews))
            except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                reading.window(name).add_error()
                if len(reading.problems) < MAX_PROBLEMS:
                    reading.problems.append(f"{path}: {where}: {exc}")
        for name, posts_ in by_window.items():
            reading.window(name).add(posts_, view)


def read_windows(paths: list[str], model: str | None, options: MonitorOptions) -> tuple[list[WindowStats], list[str]]:
    """Each input's statistics (or each ``--by`` value's, sorted), and the rows that could not be read.

    Raises:
        DataError: an input or posts file cannot be read at all, or a posts file is not the one scored.
    """
    if options.posts and len(options.posts) != len(paths):
        raise DataError(f"--posts names {len(options.posts)} files for {len(paths)} inputs; give one per input")
    coverage = read_artifact(model).model.coverage if model else None
    view = TextView(coverage)
    reading = _Reading({}, [], text_rate_for(paths, options.text_rate))
    reviews = _read_reviews(options.reviews)
    collecting = gc.isenabled()
    gc.disable()  # parsed lines form no reference cycles; the collector's scans cost a third of the time
    try:
        for k, path in enumerate(paths):
            _read_one(Path(path), options.posts[k] if options.posts else None, options, reviews, reading, view)
    finally:
        if collecting:
            gc.enable()
    names = list(reading.windows) if options.by is None else sorted(reading.windows)
    return [reading.windows[n].finished() for n in names], reading.problems


# ---------------------------------------------------------------- the report
class _Weights:
    """A term's largest absolute weight in the model's char vocabulary (0 when the vocabulary lacks it)."""

    def __init__(self, terms: tuple[str, ...], strength: np.ndarray) -> None:
        self.columns = {term: i for i, term in enumerate(terms)}
        self.strength = strength

    def __call__(self, term: str) -> float:
        column = self.columns.get(term)
        return 0.0 if column is None else float(self.strength[column])


def _weights(model: Any) -> tuple[_Weights | None, float]:
    """The char vocabulary's weights, and the floor under which a weight is "near zero": the 25th percentile of
    the vocabulary's weights."""
    for offset, vectorizer in zip(model._offsets, model.vectorizers):
        if vectorizer.analyzer == "char":
            strength = np.abs(model.coef[:, offset : offset + len(vectorizer.terms)]).max(axis=0)
            return _Weights(vectorizer.terms, strength), float(np.percentile(strength, 25))
    return None, 0.0


def build_report(windows: list[WindowStats], model: str | None, problems: list[str]) -> dict[str, Any]:
    """The report as JSON-ready data: the model, its reference, thresholds and one entry per window."""
    from duanka.monitoring import compare

    reference, known, floor, model_info = None, None, 0.0, None
    if model:
        artifact = read_artifact(model)
        reference = read_reference(model, artifact.manifest)
        known, floor = _weights(artifact.model)
        model_info = {"path": str(model), "model_version": artifact.manifest.get("model_version")}
    comparisons = compare_windows(windows, reference, known, floor)
    return {
        "model": model_info,
        "reference": None if reference is None else {"rows": reference.rows, "name": reference.name},
        "thresholds": {
            "psi_watch": compare.PSI_WATCH,
            "psi_alert": compare.PSI_ALERT,
            "psi_noise_factor": compare.NOISE_FACTOR,
            "interval": "Wilson 99%",
            "rate_factor_alert": compare.RATE_FACTOR,
            "step_factor_alert": compare.STEP_FACTOR,
            "step_min_rise": compare.STEP_MIN_RISE,
            "oov_rise_watch": compare.OOV_RISE,
            "slang_g2": compare.G2_CRITICAL,
            "slang_min_posts": compare.MIN_SLANG_POSTS,
            "slang_weight_floor": round(floor, 4),
            "stopped_min_expected": compare.MIN_EXPECTED,
        },
        "unreadable_rows": problems,
        "windows": [c.to_dict() for c in comparisons],
    }


# ---------------------------------------------------------------- saved statistics (Spark, or days merged later)
def save_stats(windows: list[WindowStats], path: str | Path) -> Path:
    """Write windows' statistics as one JSON list (what ``--from-stats`` and ``duanka spark monitor`` read)."""
    path = Path(path)
    path.write_text("[" + ",\n".join(w.to_json() for w in windows) + "]\n", encoding="utf-8")
    return path


def read_stats(paths: list[str]) -> list[WindowStats]:
    """Saved statistics merged by window name, in first-seen order (sorted when names are all dates or alike).

    Raises:
        DataError: a file that is not saved statistics, naming it and the cause.
    """
    merged: dict[str, WindowStats] = {}
    for path in paths:
        try:
            items = json.loads(Path(path).read_text(encoding="utf-8"))
            windows = [WindowStats.from_dict(item) for item in (items if isinstance(items, list) else [items])]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: not saved monitor statistics ({type(exc).__name__}: {exc})") from None
        for window in windows:
            if window.name in merged:
                merged[window.name].merge(window)
            else:
                merged[window.name] = window
    return [merged[name].finished() for name in sorted(merged)]
