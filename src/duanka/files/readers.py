"""Read CSV, JSONL and Parquet files row by row, turning every broken row into a record instead of a crash.

Both the labeled-data loader and ``duanka score --input`` read through here, so a row is numbered and a
broken row is described the same way everywhere. Only the standard library is imported for CSV and
JSONL; pyarrow is imported for Parquet files alone.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duanka.errors import DataError
from duanka.text.chars import is_han, replace_surrogates

__all__ = [
    "FORMATS",
    "MAX_FIELD_CHARS",
    "MAX_RECORD_CHARS",
    "Record",
    "batched",
    "check_encoding",
    "clean_text",
    "iter_records",
    "sha256_file",
    "table_format",
]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
MAX_FIELD_CHARS = 1_000_000  # a longer value is truncated (with a note), never turned into an error
# A CSV record spanning lines keeps its text up to this many characters; past it, the reader only looks for
# where the quote closes (memory stays bounded, a legal long field is still one row) and re-reads the file
# from the record's second line when the quote turns out to be broken.
MAX_RECORD_CHARS = 4_000_000
MAX_QUOTE_RESTARTS = 8  # after this many broken quotes, CSV quotes may no longer span lines (bounds the work)
_SNIFF_BYTES = 1 << 20

# The csv module's own limit (131,072 characters) would turn a long field into an error; ours truncates.
csv.field_size_limit(2**31 - 1)


@dataclass
class Record:
    """One input row: its 1-based number among data rows, the file line it starts on, and values or an error."""

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
    value, replaced = replace_surrogates(value)
    if replaced:
        notes.append("invalid_utf8")
    if "\x00" in value:
        value = value.replace("\x00", "")
        notes.append("nul_removed")
    return value, notes


def check_encoding(path: str | Path, encoding: str = "utf-8") -> str:
    """The codec to read ``path`` with; refuse a UTF-8 read of a file that is evidently GBK/GB18030.

    Args:
        path: a CSV, TSV or JSONL file.
        encoding: the encoding the caller says the file has (``utf-8`` unless told otherwise).

    Returns:
        The codec's canonical name.

    Raises:
        DataError: the encoding is unknown, or ``utf-8`` was asked for and the file's first megabyte is
            mostly invalid UTF-8 that reads cleanly as GB18030 (a GBK file scored as UTF-8 would be garbage).
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}") from None
    if codec != "utf-8":
        return codec
    with Path(path).open("rb") as handle:
        sample = handle.read(_SNIFF_BYTES)
    if len(sample) == _SNIFF_BYTES:  # do not judge a character cut at the end of the sample
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    decoded = sample.decode("utf-8", "replace")
    invalid = decoded.count("\ufffd") - sample.count("\ufffd".encode())
    if invalid == 0:
        return codec
    valid_wide = sum(1 for ch in decoded if ord(ch) > 0x7F and ch != "\ufffd")
    try:
        as_gb = sample.decode("gb18030")
    except UnicodeDecodeError:
        return codec  # not GB either: the bad rows get errors naming their byte offsets
    han = sum(1 for ch in as_gb if is_han(ch))
    if invalid > valid_wide and han:
        raise DataError(
            f"{path}: not UTF-8: the file looks GBK/GB18030-encoded ({invalid} invalid UTF-8 sequences in the first "
            f"{len(sample)} bytes, which read as Chinese in GB18030). Convert it with "
            f"`iconv -f GB18030 -t UTF-8 {Path(path).name} > utf8.{Path(path).name}` or read it with --encoding gb18030"
        )
    return codec


def iter_records(path: str | Path, encoding: str = "utf-8", kind: str | None = None) -> Iterator[Record]:
    """Yield every data row of ``path`` as a Record, numbered as a reader counts them; a broken row is a Record
    with an ``error`` naming its line and cause, and never swallows the rows after it.

    Args:
        path: CSV, TSV, JSONL or Parquet file.
        encoding: the text encoding of CSV/TSV/JSONL files (Parquet is always UTF-8).
        kind: ``csv``, ``tsv``, ``jsonl`` or ``parquet`` whatever the name (Spark part files, ``.json``);
            by default told from the suffix.

    Raises:
        DataError: the file cannot be opened, its header is unreadable or names a column twice, or it is
            evidently GBK/GB18030 while read as UTF-8.
    """
    path = Path(path)
    if kind is None:
        kind = table_format(path)
    elif kind not in FORMATS.values():
        raise DataError(f"{path}: unknown file type {kind!r}; use one of {', '.join(sorted(set(FORMATS.values())))}")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if kind == "parquet":
        yield from _iter_parquet(path)
        return
    codec = check_encoding(path, encoding)
    if kind in ("csv", "tsv"):
        yield from _iter_csv(path, "," if kind == "csv" else "\t", codec)
    else:
        yield from _iter_jsonl(path, codec)


def _clean_values(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    cleaned = {}
    for key, value in values.items():
        if isinstance(value, str):
            if len(value) > MAX_FIELD_CHARS:
                value = value[:MAX_FIELD_CHARS]
                notes.append(f"field {key!r} over {MAX_FIELD_CHARS} characters: truncated")
            value, value_notes = clean_text(value)
            notes.extend(n for n in value_notes if n not in notes)
        cleaned[key] = value
    return cleaned, notes


@dataclass
class _Line:
    number: int
    text: str
    bad_byte: int | None  # file offset of the first byte that does not decode
    end: int = 0  # file offset just after the line


def _lines(path: Path, codec: str, offset: int = 0, first_number: int = 1) -> Iterator[_Line]:
    """Physical lines from byte ``offset`` (line ``first_number``), decoded; an undecodable line is kept (escaped) and
    marked."""
    with path.open("rb") as raw:
        raw.seek(offset)
        for number, data in enumerate(raw, start=first_number):
            start = offset
            offset += len(data)
            if number == 1 and codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
                start += len(codecs.BOM_UTF8)
            try:
                yield _Line(number, data.decode(codec), None, offset)
            except UnicodeDecodeError as exc:
                errors = "surrogateescape" if codec == "utf-8" else "replace"
                yield _Line(number, data.decode(codec, errors), start + exc.start, offset)


class _Source:
    """Lines for csv.reader that remember which lines the current record took, and can be read again.

    Past MAX_RECORD_CHARS characters in one record, a line is handed to csv.reader only if it holds a quote
    character (the rest lies inside the open quoted field and cannot end it; an empty string adds nothing to
    the field) and is no longer remembered: memory stays bounded however far the quote runs, and reading again
    after a broken record seeks back to its second line.
    """

    def __init__(self, path: Path, codec: str) -> None:
        self._path, self._codec = path, codec
        self._lines: Iterator[_Line] = _lines(path, codec)
        self._pending: deque[_Line] = deque()
        self.taken: list[_Line] = []  # the record's lines (past the limit: its first line and undecodable ones)
        self.count = 0  # lines the record took
        self.overflow = False
        self._size = 0

    def __iter__(self) -> _Source:
        return self

    def __next__(self) -> str:
        line = self._pending.popleft() if self._pending else next(self._lines)
        self.count += 1
        if self.overflow:
            if line.bad_byte is not None:
                self.taken.append(line)
            return line.text if '"' in line.text else ""
        self.taken.append(line)
        self._size += len(line.text)
        self.overflow = self._size > MAX_RECORD_CHARS and self.count > 1
        return line.text

    def next_line(self) -> _Line | None:
        self.start()
        try:
            self.__next__()
        except StopIteration:
            return None
        return self.taken[0]

    def start(self) -> None:
        self.taken = []
        self.count = 0
        self.overflow = False
        self._size = 0

    def read_again_after_first(self) -> None:
        """Continue with the line after the current record's first line."""
        first = self.taken[0]
        if not self.overflow:
            self._pending.extendleft(reversed(self.taken[1:]))
            return
        self._pending.clear()
        self._lines = _lines(self._path, self._codec, first.end, first.number + 1)


def _bad_bytes(path: Path, lines: list[_Line], codec: str) -> str | None:
    for line in lines:
        if line.bad_byte is not None:
            name = "UTF-8" if codec == "utf-8" else codec
            return f"invalid {name} at byte offset {line.bad_byte} (line {line.number}); the row is not scored"
    return None


def _iter_csv(path: Path, delimiter: str, codec: str) -> Iterator[Record]:
    source = _Source(path, codec)
    reader = csv.reader(source, delimiter=delimiter, strict=True)
    header = _csv_header(path, source, reader, codec)
    row = 0
    restarts = 0
    while True:
        source.start()
        fields, problem, finished = _next_fields(source, reader, delimiter, restarts >= MAX_QUOTE_RESTARTS)
        taken = source.taken
        if finished or not taken:
            return
        first = taken[0]
        if fields is not None and not fields:  # a blank line
            continue
        if problem is None and source.count > 1 and fields is not None and len(fields) != len(header):
            problem = f"the record then has {len(fields)} fields instead of {len(header)}"
        row += 1
        if source.count > 1 and problem is not None:
            # A quote opened on this line never closed properly: only this line is the broken row, and reading
            # resumes on the next line as a reader of the file would expect.
            restarts += 1
            source.read_again_after_first()
            yield Record(
                row,
                first.number,
                _readable_part(first.text, delimiter, header),
                error=f"malformed quote: a quoted field opened on line {first.number} does not close properly "
                f"({problem}); this line is skipped and reading resumes on line {first.number + 1}",
            )
            continue
        record = _csv_record(path, row, taken, fields, problem, header, delimiter, codec)
        if source.overflow and record.error is None:
            record.notes.append(f"record over {MAX_RECORD_CHARS} characters: lines after that kept only if quoted")
        yield record


def _csv_header(path: Path, source: _Source, reader: Any, codec: str) -> list[str]:
    """The header row's column names, cleaned; refuses an unreadable, multi-line, undecodable or repeating one."""
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty (no header row)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: unreadable header ({exc})") from None
    if source.count > 1:
        raise DataError(f"{path}: line 1: the header has a quote that runs over {source.count} lines")
    if source.taken[0].bad_byte is not None:
        raise DataError(f"{path}: line 1: the header is not valid {codec} (byte offset {source.taken[0].bad_byte})")
    header = [clean_text(name)[0].strip() for name in header]
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(
                f"{path}: line 1: column {name!r} appears twice (columns {seen[name]} and {position}); "
                "rename one so it is clear which to read"
            )
        seen[name] = position
    return header


def _next_fields(
    source: _Source, reader: Any, delimiter: str, line_mode: bool
) -> tuple[list[str] | None, str | None, bool]:
    """(fields, the CSV problem if any, end of file) of the next record; in line mode a quote may not span lines."""
    try:
        if line_mode:
            line = source.next_line()
            if line is None:
                return None, None, True
            return next(csv.reader([line.text], delimiter=delimiter, strict=True), []), None, False
        return next(reader), None, False
    except StopIteration:
        return None, None, True
    except csv.Error as exc:
        return None, str(exc), False


def _csv_record(
    path: Path,
    row: int,
    taken: list[Any],
    fields: list[str] | None,
    problem: str | None,
    header: list[str],
    delimiter: str,
    codec: str,
) -> Record:
    """The record of one CSV row read on the lines ``taken``: its values, or the error that names its cause."""
    first = taken[0]
    notes: list[str] = []
    if problem is not None:
        if "unexpected end of data" in problem:
            return Record(row, first.number, error=f"malformed quote: a quoted field never closes ({problem})")
        try:  # a stray quote inside one line ("abc"def): read it leniently, as spreadsheets do
            fields = next(csv.reader([first.text], delimiter=delimiter), [])
            notes.append("stray_quote")
        except csv.Error as exc:
            return Record(row, first.number, error=f"unreadable CSV row ({exc})")
    assert fields is not None
    bad = _bad_bytes(path, taken, codec)
    if bad is not None:  # keep what could be read (the id) beside the error
        known = _clean_values(dict(zip(header, fields)))[0] if len(fields) == len(header) else {}
        return Record(row, first.number, known, error=bad)
    if len(fields) != len(header):
        return Record(
            row, first.number, error=f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}"
        )
    values, value_notes = _clean_values(dict(zip(header, fields)))
    return Record(row, first.number, values, notes=notes + value_notes)


def _readable_part(text: str, delimiter: str, header: list[str]) -> dict[str, Any]:
    """The values of a broken line read leniently, kept beside its error so the caller still has the row's id."""
    try:
        fields = next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return {}
    return _clean_values(dict(zip(header, fields)))[0] if len(fields) == len(header) else {}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            raise ValueError(f"key {key!r} appears twice in the object")
        values[key] = value
    return values


def _iter_jsonl(path: Path, codec: str) -> Iterator[Record]:
    row = 0
    for line in _lines(path, codec):
        decoded = line.text.strip().lstrip("\ufeff")
        if not decoded:
            continue
        row += 1
        bad = _bad_bytes(path, [line], codec)
        if bad is not None:  # keep what could be read (the id) beside the error
            try:
                known = json.loads(decoded)
            except ValueError:
                known = None
            yield Record(row, line.number, _clean_values(known)[0] if isinstance(known, dict) else {}, error=bad)
            continue
        try:
            values = json.loads(decoded, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            yield Record(row, line.number, error=f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        except ValueError as exc:
            yield Record(row, line.number, error=f"ambiguous JSON ({exc})")
            continue
        if not isinstance(values, dict):
            yield Record(row, line.number, error=f"expected a JSON object, found {type(values).__name__}")
            continue
        values, notes = _clean_values(values)
        yield Record(row, line.number, values, notes=notes)


def _iter_parquet(path: Path) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"{path}: column(s) {', '.join(map(repr, twice))} appear twice; rename one")
    row = 0
    for batch in parquet.iter_batches(batch_size=2048):
        for values in batch.to_pylist():
            row += 1
            values, notes = _clean_values(values)
            yield Record(row, None, values, notes=notes)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily: what every batch loop of duanka uses."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
