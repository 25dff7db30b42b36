"""Reviewed labels back as training data: read a labeled queue or a Label Studio export, append it to a feedback
file with provenance, never twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from duanka.adapters.review.labelstudio import is_label_studio_csv, plain, record_rows, task_row
from duanka.adapters.review.schema import FEEDBACK_COLUMNS, QUEUE_COLUMNS, REVIEWER_COLUMNS
from duanka.errors import DataError
from duanka.files.readers import iter_records
from duanka.files.spreadsheet import restore
from duanka.labels import LABELS
from duanka.text.normalize import normalize
from duanka.training.dataset import validate_posts

__all__ = ["ImportSummary", "import_feedback", "read_reviews"]


def read_reviews(path: str | Path) -> pd.DataFrame:
    """A labeled queue, one row per task: the queue's columns with ``review_label``, ``reviewer``,
    ``review_date``, ``review_note``.

    Reads the queue CSV filled in by hand, or a Label Studio export as Label Studio writes it: ``JSON`` (tasks
    with ``annotations``), ``JSON_MIN`` (one record per annotation) or ``CSV`` (the same records as rows); the
    records of one task are grouped back into one row. Rows without a label have ``review_label`` empty; rows
    whose annotators disagree have it empty and ``review_note`` saying who chose what. ``_where`` names each
    row (``row 3``, ``task 17``, ``task 17 (records 3, 4)``).

    Raises:
        DataError: unreadable file, unknown format, a task not in the shape Label Studio writes (nothing is
            read), or no ``text`` column.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        frame = _label_studio_frame(path, _json_export(path))
    else:
        records = list(iter_records(path))
        bad = [r.where for r in records if r.error]
        if bad:
            raise DataError(f"{path}: unreadable rows: {', '.join(bad[:8])}")
        if records and is_label_studio_csv(list(records[0].values)):
            frame = _label_studio_frame(path, record_rows([r.values for r in records], "row"))
        else:
            # a queue CSV was written for a spreadsheet: take back the quote that neutralised formula-like cells
            frame = pd.DataFrame([{k: restore(v) for k, v in r.values.items()} for r in records])
            frame["_where"] = [r.where for r in records]
    if frame.empty or "text" not in frame.columns:
        raise DataError(f"{path}: no `text` column: not a review queue")
    for column in QUEUE_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    for column in REVIEWER_COLUMNS:
        frame[column] = frame[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
        frame[column] = frame[column].astype(str).str.strip()
    return frame


def _json_export(path: Path) -> list[dict[str, Any]]:
    """The rows of a Label Studio JSON export (tasks with ``data``) or JSON_MIN export (records without)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(found, list):
        raise DataError(f"{path}: a Label Studio export is a JSON list of tasks")
    full = [isinstance(task, dict) and "data" in task for task in found]
    if all(full):
        return [task_row(task, k) for k, task in enumerate(found, 1)]
    if not any(full):
        return record_rows(found, "record")
    mixed = "a JSON export's tasks all have `data`, a JSON_MIN export's records none; this file mixes them"
    return [{"_where": f"task {full.index(False) + 1}", "text": None, "_problem": mixed}]


def _label_studio_frame(path: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    malformed = [f"{path}: {row['_where']}: {row['_problem']}" for row in rows if row.get("_problem")]
    if malformed:
        raise DataError(
            f"{path}: {len(malformed)} task(s) or record(s) not in the shape Label Studio exports; "
            "nothing was imported:\n" + "\n".join(malformed[:20])
        )
    return pd.DataFrame(rows)


@dataclass
class ImportSummary:
    """What one ``duanka review import`` did."""

    read: int = 0
    labeled: int = 0
    added: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    output_rows: int = 0

    def format(self) -> str:
        lines = [
            f"read {self.read} queue rows, {self.labeled} labeled: {self.added} added, "
            f"{self.duplicates} already in the feedback file, {len(self.conflicts)} conflicting, "
            f"{len(self.disagreements)} with disagreeing annotators; feedback file now {self.output_rows} rows"
        ]
        lines += [f"  conflict: {c}" for c in self.conflicts[:20]]
        lines += [f"  skipped: {d}" for d in self.disagreements[:20]]
        return "\n".join(lines)


def _feedback_id(key: str) -> str:
    return "fb-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def import_feedback(
    path: str | Path, output: str | Path, *, today: str | None = None, accept_unexported: bool = False
) -> ImportSummary:
    """Append the labeled rows of a reviewed queue to a feedback file (CSV), with provenance, without duplicates.

    Each labeled row becomes ``id``/``group`` ``fb-<digest of the normalized text>`` (a group of its own, so it
    never collides with a group of ``data/posts.csv``), ``source=feedback``, ``review_date`` (the annotation's,
    else ``today``), ``reviewer``, the ``model_version`` that scored it, its policy, the model's decision, label
    and risk, the ``queue_id``, the post's own ``post_id``, the reviewed file's name and ``provenance``. A post
    already in the feedback file (same normalized text) is skipped; with a different label it is reported as a
    conflict and the earlier label kept. A queue id or post id seen before with another text (a task imported
    twice, edited between) is a conflict too. A labeled task with no queue id was never exported by
    ``duanka review export``: the import is refused unless ``accept_unexported`` (then ``provenance`` says
    ``unexported``). The result is validated with :func:`duanka.training.dataset.validate_posts` (what
    ``duanka data check`` runs) before anything is written, and written atomically.

    Raises:
        DataError: a label outside the three, empty text, a task never exported (without ``accept_unexported``),
            or a result that ``duanka data check`` rejects.
    """
    path, output = Path(path), Path(output)
    today = today or dt.date.today().isoformat()
    reviews = read_reviews(path)
    summary = ImportSummary(read=len(reviews))
    before, known, known_posts = _existing_feedback(output)
    problems, unexported, new_rows = [], [], []
    for record in reviews.to_dict(orient="records"):
        where = f"{path}: {record['_where']}" + (f" ({record['queue_id']})" if record.get("queue_id") else "")
        if record["review_note"].startswith("annotators disagree"):
            summary.disagreements.append(f"{where}: {record['review_note']}")
            continue
        if not record["review_label"]:
            continue
        summary.labeled += 1
        key, problem = _checked_record(record, known, known_posts, summary, where)
        if problem:
            problems.append(problem)
        elif key is not None and not plain(record.get("queue_id")) and not accept_unexported:
            unexported.append(where)
        elif key is not None:
            known[key] = record["review_label"]
            known_posts.update(dict.fromkeys(_post_keys(record), key))
            provenance = "queue" if plain(record.get("queue_id")) else "unexported"
            new_rows.append(_feedback_row(record, key, path, today, provenance))
    if problems:
        raise DataError("\n".join(problems))
    if unexported:
        raise DataError(
            f"{path}: {len(unexported)} labeled task(s) were never exported by `duanka review export` (no queue_id); "
            "nothing was imported. Pass --accept-unexported to add them (recorded as provenance `unexported`):\n"
            + "\n".join(unexported[:20])
        )
    return _append(summary, before, new_rows, output, path)


def _checked_record(
    record: dict[str, Any], known: dict[str, str], known_posts: dict[str, str], summary: ImportSummary, where: str
) -> tuple[str | None, str | None]:
    """(normalized text to add, None), (None, a problem), or (None, None) for a duplicate or conflict (counted)."""
    label, text = record["review_label"], record.get("text")
    if not isinstance(text, str) or not text.strip():
        return None, f"{where}: empty text"
    if label not in LABELS:
        return None, f"{where}: unknown label {label!r} (labels are {', '.join(LABELS)})"
    key = normalize(text)
    clash = next((k for k in _post_keys(record) if k in known_posts and known_posts[k] != key), None)
    if clash:
        kind, value = clash.split(":", 1)
        summary.conflicts.append(f"{where}: {kind} {value} was imported before with another text; kept that")
        return None, None
    if key in known:
        if known[key] == label:
            summary.duplicates += 1
        else:
            summary.conflicts.append(f"{where}: labeled {label}, the feedback file says {known[key]}; kept that")
        return None, None
    return key, None


def _post_keys(record: dict[str, Any]) -> list[str]:
    """The ids that name one post across imports: its queue row and its own id."""
    keys = []
    for kind, column in (("queue id", "queue_id"), ("post id", "id")):
        value = plain(record.get(column))
        if value not in (None, ""):
            keys.append(f"{kind}:{value}")
    return keys


def _append(
    summary: ImportSummary, before: pd.DataFrame | None, new_rows: list[dict[str, Any]], output: Path, path: Path
) -> ImportSummary:
    summary.added = len(new_rows)
    added = pd.DataFrame(new_rows, columns=list(FEEDBACK_COLUMNS))
    merged = added if before is None else pd.concat([before, added.astype(str)], ignore_index=True)
    summary.output_rows = len(merged)
    if new_rows or before is None:
        _write_validated(merged, output, path)
    return summary


def _existing_feedback(output: Path) -> tuple[pd.DataFrame | None, dict[str, str], dict[str, str]]:
    """The feedback file as it is (None when there is none), its labels by normalized text, and its normalized
    texts by queue id and post id (files written before those columns existed have none).

    Raises:
        DataError: the file exists but ``duanka data check`` rejects it.
    """
    if not output.is_file():
        return None, {}, {}
    existing = validate_posts(output)
    if not existing.ok:
        raise DataError(f"{output}: the feedback file is invalid already:\n" + "\n".join(existing.errors))
    frame = existing.frame
    keys = [normalize(text) for text in frame["text"]]
    known = dict(zip(keys, frame["label"]))
    known_posts: dict[str, str] = {}
    for kind, column in (("queue id", "queue_id"), ("post id", "post_id")):
        if column in frame.columns:
            known_posts.update({f"{kind}:{v}": k for v, k in zip(frame[column], keys) if str(v) not in ("", "nan")})
    return pd.read_csv(output, dtype=str, keep_default_na=False), known, known_posts


def _feedback_row(record: dict[str, Any], key: str, path: Path, today: str, provenance: str) -> dict[str, Any]:
    """One feedback row with its provenance; ``key`` is the normalized text the id and group are derived from."""
    return {
        "id": _feedback_id(key),
        "text": record["text"],
        "label": record["review_label"],
        "group": _feedback_id(key),
        "source": "feedback",
        "review_date": record["review_date"] or today,
        "reviewer": record["reviewer"],
        "model_version": plain(record.get("model_version")) or "",
        "policy": plain(record.get("policy")) or "",
        "model_decision": plain(record.get("decision")) or "",
        "model_label": plain(record.get("model_label")) or "",
        "risk": plain(record.get("risk")),
        "queue_id": plain(record.get("queue_id")) or "",
        "reviewed_file": path.name,
        "post_id": plain(record.get("id")) if record.get("id") not in (None, "") else "",
        "provenance": provenance,
    }


def _write_validated(merged: pd.DataFrame, output: Path, source: Path) -> None:
    """Write the feedback file atomically, after ``duanka data check``'s validation of the staged result."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{output.name}-", suffix=".csv", dir=output.parent)
    os.close(handle)
    try:
        merged.to_csv(staging, index=False)
        report = validate_posts(staging)
        if not report.ok:
            raise DataError(
                f"{output}: the import of {source} would make it invalid:\n"
                + "\n".join(e.replace(staging, str(output)) for e in report.errors)
            )
        os.replace(staging, output)
    finally:
        Path(staging).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ report
