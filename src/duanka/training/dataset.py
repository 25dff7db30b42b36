"""Read and validate labeled post files, summarize them, and split them by group."""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duanka.errors import DataError
from duanka.files.readers import iter_records
from duanka.labels import LABELS, RISKY_LABELS
from duanka.text.normalize import normalize

__all__ = [
    "COLUMNS",
    "DataReport",
    "DataWarning",
    "duplicate_groups",
    "group_kfold",
    "load_posts",
    "near_duplicates",
    "validate_posts",
]

COLUMNS = ("id", "text", "label", "group", "source")
REQUIRED = ("text", "label")
SHORT_TEXT = 5  # characters after normalization
# A few very short rows are what real chat looks like (收到, 666); a warning is for a file where they are a notable
# share, which usually means a broken column or a truncated export.
SHORT_SHARE = 0.02
IMBALANCE_RATIO = 10.0
MAX_LISTED = 8  # rows named per problem before "and N more"


def is_short(text: str) -> bool:
    """A very short post: fewer than ``SHORT_TEXT`` characters after normalization (收到, 666)."""
    return len(normalize(text)) < SHORT_TEXT


class DataWarning(UserWarning):
    """A labeled file is valid but has something a data scientist should look at."""


@dataclass
class DataReport:
    """What validating one file found: the rows, the problems (errors) and the cautions (warnings)."""

    path: Path
    frame: pd.DataFrame
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """Counts per label, source and genre, lengths and the share of rows that carry evasion tricks."""
        from duanka.training.augment import detect_evasion

        frame = self.frame
        if frame.empty:
            return {"rows": 0}
        lengths = frame["text"].str.len()
        evasive = frame["text"].map(lambda t: bool(detect_evasion(t)))
        risky = frame["label"].isin(RISKY_LABELS)
        summary: dict[str, Any] = {
            "rows": len(frame),
            "groups": int(frame["group"].nunique()),
            "labels": {label: int((frame["label"] == label).sum()) for label in LABELS},
            "sources": {k: int(v) for k, v in frame["source"].value_counts().items()},
            "length": {
                "min": int(lengths.min()),
                "median": float(lengths.median()),
                "p95": float(lengths.quantile(0.95)),
                "max": int(lengths.max()),
            },
            "short_rows": int(frame["text"].map(is_short).sum()),
            "obfuscated_share": round(float(evasive.mean()), 4),
            "obfuscated_share_of_risky": round(float(evasive[risky].mean()), 4) if risky.any() else 0.0,
        }
        for column in ("genre", "hard"):
            if column in frame.columns:
                summary[column] = {str(k): int(v) for k, v in frame[column].value_counts().items()}
        return summary

    def format(self) -> str:
        """The report as the text ``duanka data check`` prints."""
        lines = [f"{self.path}: {len(self.frame)} valid rows"]
        if not self.frame.empty:
            summary = self.summary()
            lines.append(f"  groups: {summary['groups']}")
            lines.append("  labels: " + ", ".join(f"{k} {v}" for k, v in summary["labels"].items()))
            lines.append("  sources: " + ", ".join(f"{k} {v}" for k, v in summary["sources"].items()))
            if "genre" in summary:
                lines.append("  genres: " + ", ".join(f"{k} {v}" for k, v in summary["genre"].items()))
            length = summary["length"]
            lines.append(
                f"  length (chars): min {length['min']}, median {length['median']:.0f}, "
                f"p95 {length['p95']:.0f}, max {length['max']}"
            )
            lines.append(f"  very short rows (under {SHORT_TEXT} characters): {summary['short_rows']}")
            lines.append(
                f"  obfuscated rows: {summary['obfuscated_share']:.1%} of all, "
                f"{summary['obfuscated_share_of_risky']:.1%} of card_trading + recruitment_lure"
            )
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        for error in self.errors:
            lines.append(f"  error: {error}")
        lines.append("  OK" if self.ok else f"  INVALID: {len(self.errors)} problem(s)")
        return "\n".join(lines)


def _rows(places: list[int] | list[str]) -> str:
    """``row 3`` / ``rows 3, 9 and 4 more``; places may carry their line (``3 (line 4)``)."""
    shown = ", ".join(str(p) for p in places[:MAX_LISTED])
    more = f" and {len(places) - MAX_LISTED} more" if len(places) > MAX_LISTED else ""
    return ("row " if len(places) == 1 else "rows ") + shown + more


def validate_posts(path: str | Path, encoding: str = "utf-8") -> DataReport:
    """Read ``path`` (CSV, JSONL or Parquet) and check every row; never raises for bad rows.

    Args:
        path: a labeled file with at least the columns ``text`` and ``label``; ``id``, ``group`` and
            ``source`` are filled in (row number, one group per row, ``unknown``) when absent.
        encoding: text encoding of a CSV/JSONL file; a GBK/GB18030 file read as UTF-8 is refused.

    Returns:
        A DataReport whose ``frame`` holds the rows that passed, in file order.

    Raises:
        DataError: the file cannot be opened, names a column twice, is evidently GBK/GB18030 read as UTF-8.
    """
    path = Path(path)
    records = list(iter_records(path, encoding))
    errors: list[str] = []
    report_warnings: list[str] = []
    if not records:
        return DataReport(path, pd.DataFrame(columns=list(COLUMNS)), [f"{path}: no data rows"], [])

    columns = list(dict.fromkeys(key for record in records for key in record.values))
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        errors.append(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'} "
            f"(expected {', '.join(COLUMNS)})"
        )
        return DataReport(path, pd.DataFrame(columns=list(COLUMNS)), errors, [])
    for optional, default in (("id", "row number"), ("group", "one group per row"), ("source", "'unknown'")):
        if optional not in columns:
            report_warnings.append(f"{path}: no {optional!r} column; using {default}")

    problems: dict[str, list[str]] = defaultdict(list)
    kept: list[dict[str, Any]] = []
    kept_rows: list[int] = []
    for record in records:
        row, problem = _checked_row(record, "group" in columns)
        if problem:
            problems[problem].append(record.where.removeprefix("row "))
        else:
            kept.append(row)
            kept_rows.append(record.row)
    for cause, rows in problems.items():
        errors.append(f"{path}: {_rows(rows)}: {cause}")

    _check_duplicates(path, kept, kept_rows, errors)

    frame = pd.DataFrame(kept)
    if frame.empty:
        frame = pd.DataFrame(columns=list(COLUMNS))
    else:
        ordered = list(COLUMNS) + [c for c in frame.columns if c not in COLUMNS]
        frame = frame[ordered]
        frame.insert(len(ordered), "_row", kept_rows)
        frame = frame.reset_index(drop=True)
        _check_balance(path, frame, report_warnings)
    return DataReport(path, frame, errors, report_warnings)


def _checked_row(record: Any, has_group: bool) -> tuple[dict[str, Any], str | None]:
    """(the row with ``id``/``group``/``source`` filled in, None), or ({}, the cause that makes it unusable)."""
    if record.error:
        return {}, f"unreadable: {record.error}"
    values = record.values
    text = values.get("text")
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return {}, "empty text"
    if not isinstance(text, str):
        return {}, f"text is not a string ({type(text).__name__})"
    if not text.strip():
        return {}, "empty text"
    label = values.get("label")
    if label not in LABELS:
        return {}, f"unknown label {label!r} (labels are {', '.join(LABELS)})"
    group = values.get("group")
    if has_group and (group is None or str(group).strip() == ""):
        return {}, "empty group"
    row = dict(values)
    row["id"] = str(values.get("id") if values.get("id") not in (None, "") else record.row)
    row["group"] = str(group) if group not in (None, "") else f"row-{record.row}"
    row["source"] = str(values.get("source") or "unknown")
    return row, None


def _check_duplicates(path: Path, rows: list[dict[str, Any]], numbers: list[int], errors: list[str]) -> None:
    by_id: dict[str, list[int]] = defaultdict(list)
    by_text: dict[str, list[int]] = defaultdict(list)
    by_norm: dict[str, list[int]] = defaultdict(list)
    labels_of: dict[int, str] = {}
    for row, number in zip(rows, numbers):
        by_id[row["id"]].append(number)
        by_text[row["text"]].append(number)
        by_norm[normalize(row["text"])].append(number)
        labels_of[number] = row["label"]
    for key, found in by_id.items():
        if len(found) > 1:
            errors.append(f"{path}: {_rows(found)}: duplicate id {key!r}")
    for found in by_text.values():
        if len(found) > 1:
            labels = sorted({labels_of[n] for n in found})
            if len(labels) > 1:
                errors.append(f"{path}: {_rows(found)}: the same text with conflicting labels ({', '.join(labels)})")
            else:
                errors.append(f"{path}: {_rows(found)}: exact duplicate text")
    exact = {tuple(v) for v in by_text.values()}
    for key, found in by_norm.items():
        if len(found) > 1 and tuple(found) not in exact:
            labels = sorted({labels_of[n] for n in found})
            cause = "conflicting labels" if len(labels) > 1 else "duplicate"
            errors.append(
                f"{path}: {_rows(found)}: {cause} after normalization (all read {key[:30]!r}"
                + (f"; labels {', '.join(labels)})" if len(labels) > 1 else ")")
            )


def _check_balance(path: Path, frame: pd.DataFrame, report_warnings: list[str]) -> None:
    counts = Counter(frame["label"])
    present = [counts.get(label, 0) for label in LABELS]
    if min(present) == 0:
        absent = [label for label in LABELS if counts.get(label, 0) == 0]
        report_warnings.append(f"{path}: no rows labeled {', '.join(absent)}")
    elif max(present) / min(present) > IMBALANCE_RATIO:
        report_warnings.append(
            f"{path}: heavy class imbalance ({', '.join(f'{k} {counts.get(k, 0)}' for k in LABELS)})"
        )
    short = frame.loc[frame["text"].map(is_short), "_row"].tolist()
    if len(short) > SHORT_SHARE * len(frame):
        report_warnings.append(
            f"{path}: {_rows(short)}: very short text (under {SHORT_TEXT} characters; {len(short)} of "
            f"{len(frame)} rows, more than {SHORT_SHARE:.0%})"
        )


def load_posts(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """Load a labeled file, raising DataError listing every problem; cautions become DataWarning.

    Returns:
        A DataFrame with columns ``id, text, label, group, source`` (plus any extra columns of the file).
    """
    report = validate_posts(path, encoding)
    if not report.ok:
        raise DataError("\n".join(report.errors))
    for message in report.warnings:
        warnings.warn(message, DataWarning, stacklevel=2)
    return report.frame.drop(columns=["_row"], errors="ignore")


def group_kfold(
    labels: np.ndarray | pd.Series, groups: np.ndarray | pd.Series, n_splits: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds in which no group is split between training and validation rows."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    labels = np.asarray(labels)
    yield from folds.split(np.zeros(len(labels)), labels, np.asarray(groups))


def near_duplicates(texts: list[str], others: list[str], threshold: float = 0.9) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, similarity)`` where ``texts[i]`` and ``others[j]`` are near-duplicates.

    Similarity is the cosine of character 3-gram counts of the normalized texts, so a row and its
    obfuscated or lightly edited copy score close to 1.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(3, 3), use_idf=False, norm="l2")
    vectorizer.fit([normalize(t) for t in texts + others])
    left = vectorizer.transform([normalize(t) for t in texts])
    right = vectorizer.transform([normalize(t) for t in others])
    similarity = (left @ right.T).tocoo()
    pairs = [
        (int(i), int(j), round(float(s), 4))
        for i, j, s in zip(similarity.row, similarity.col, similarity.data)
        if s >= threshold
    ]
    return sorted(pairs)


def duplicate_groups(texts: Sequence[str], similarity: float = 0.9, max_texts: int = 20_000) -> np.ndarray:
    """A group number per text: equal after normalization, or near-duplicates (char 3-gram cosine >= ``similarity``;
    with more than ``max_texts`` distinct texts, only equal ones are grouped, to bound the pairwise search)."""
    keys = [normalize(t) for t in texts]
    first: dict[str, int] = {}
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, key in enumerate(keys):
        if key in first:
            parent[find(i)] = find(first[key])
        else:
            first[key] = i
    unique = list(first.values())
    if 1 < len(unique) <= max_texts:
        distinct = [texts[i] for i in unique]
        for a, b, _ in near_duplicates(distinct, distinct, similarity):
            if a < b:
                parent[find(unique[b])] = find(unique[a])
    return np.array([find(i) for i in range(len(texts))])
