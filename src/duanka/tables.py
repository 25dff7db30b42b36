"""Read CSV, JSONL and Parquet files row by row, turning every broken row into a record instead of a crash.

Both the labeled-data loader and ``duanka score --input`` read through here, so a row is numbered and a
broken row is described the same way everywhere. Only the standard library is imported for CSV and
JSONL; pyarrow is imported for Parquet files alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duanka.errors import DataError

__all__ = ["FORMATS", "Record", "clean_text", "iter_records", "sha256_file", "table_format"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


@dataclass
class Record:
    """One input row: its 1-based number among data rows, the file line it ended on, and values or an error."""

    row: int
    line: int | None
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"row {self.row}" + (f" (line {self.line})" if self.line is not None else "")


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (data digests, artifact hashes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_format(path: str | Path) -> str:
    """The format of ``path`` from its suffix, or a DataError naming the ones that are understood."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}; use one of {known}")
    return FORMATS[suffix]


def clean_text(value: str) -> tuple[str, list[str]]:
    """Replace what cannot be written back as UTF-8 (lone surrogates, undecodable bytes) and NUL characters."""
    notes = []
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # undecodable bytes (read with surrogateescape) and lone surrogates from JSON escapes
        value = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
        notes.append("invalid_utf8")
    if "\x00" in value:
        value = value.replace("\x00", "")
        notes.append("nul_removed")
    return value, notes


def iter_records(path: str | Path) -> Iterator[Record]:
    """Yield every data row of ``path`` as a Record; raise DataError only if the file cannot be opened."""
    path = Path(path)
    kind = table_format(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if kind in ("csv", "tsv"):
        yield from _iter_csv(path, delimiter="," if kind == "csv" else "\t")
    elif kind == "jsonl":
        yield from _iter_jsonl(path)
    else:
        yield from _iter_parquet(path)


def _clean_values(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    cleaned = {}
    for key, value in values.items():
        if isinstance(value, str):
            value, value_notes = clean_text(value)
            notes.extend(n for n in value_notes if n not in notes)
        cleaned[key] = value
    return cleaned, notes


def _iter_csv(path: Path, delimiter: str) -> Iterator[Record]:
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        # NUL bytes stop the csv module; keep them visible as U+FFFD so the row is still read.
        lines = (line.replace("\x00", "\ufffd") for line in text)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: the file is empty (no header row)") from None
        except csv.Error as exc:
            raise DataError(f"{path}: line 1: unreadable header ({exc})") from None
        header = [clean_text(name)[0].strip() for name in header]
        row = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row += 1
                yield Record(row, reader.line_num, error=f"unreadable CSV row ({exc})")
                continue
            if not fields:  # a blank line
                continue
            row += 1
            if len(fields) != len(header):
                yield Record(
                    row,
                    reader.line_num,
                    error=f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}",
                )
                continue
            values, notes = _clean_values(dict(zip(header, fields)))
            yield Record(row, reader.line_num, values, notes=notes)


def _iter_jsonl(path: Path) -> Iterator[Record]:
    row = 0
    with path.open("rb") as raw:
        for line_number, line in enumerate(raw, start=1):
            decoded = line.decode("utf-8", "surrogateescape").strip().lstrip("\ufeff")
            if not decoded:
                continue
            row += 1
            try:
                values = json.loads(decoded)
            except json.JSONDecodeError as exc:
                yield Record(row, line_number, error=f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(values, dict):
                yield Record(row, line_number, error=f"expected a JSON object, found {type(values).__name__}")
                continue
            values, notes = _clean_values(values)
            yield Record(row, line_number, values, notes=notes)


def _iter_parquet(path: Path) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=2048):
        for values in batch.to_pylist():
            row += 1
            values, notes = _clean_values(values)
            yield Record(row, None, values, notes=notes)
