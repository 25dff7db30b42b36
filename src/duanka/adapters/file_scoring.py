"""Score a table file row by row: exactly one output line per input row, in order, broken rows as errors."""

from __future__ import annotations

import itertools
import json
import signal
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from duanka.errors import DataError, DuankaError
from duanka.files.readers import Record, batched, iter_records
from duanka.scoring.scorer import Scorer

__all__ = ["BATCH_SIZE", "FileSummary", "OutputClosed", "record_problem", "score_records", "write_scored"]

BATCH_SIZE = 256
RESULT_FIELDS = ("label", "probabilities", "risk", "decision", "source", "evidence", "model_version", "degraded")
RESULT_FIELDS += ("truncated", "notes", "policy")


@dataclass
class FileSummary:
    """What scoring a file did: rows read, rows scored, rows in error, decisions and sources of the scored ones."""

    rows: int = 0
    errors: int = 0
    written: int = 0  # output lines written so far (by :func:`write_scored`)
    decisions: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    # lines scored and not yet yielded by score_records: write_scored writes them when interrupted
    pending: deque[dict[str, Any]] = field(default_factory=deque, repr=False, compare=False)

    @property
    def scored(self) -> int:
        return self.rows - self.errors

    @property
    def all_failed(self) -> bool:
        """True when the file had rows and not one of them could be scored."""
        return self.rows > 0 and self.scored == 0

    def format(self) -> str:
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items())) or "-"
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items())) or "-"
        return (
            f"read {self.rows} rows: scored {self.scored}, errors {self.errors}; "
            f"decisions: {decisions}; sources: {sources}"
        )


def record_problem(record: Record, text_column: str) -> str | None:
    """Why ``record`` cannot be scored (its reading error, a missing or non-string text), or None."""
    if record.error:
        return record.error
    if text_column not in record.values:
        return f"no {text_column!r} field"
    text = record.values[text_column]
    if not isinstance(text, str):
        return f"text is {'null' if text is None else type(text).__name__}, not a string"
    return None


def score_records(
    scorer: Scorer,
    path: str | Path,
    *,
    text_column: str = "text",
    id_column: str = "id",
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[FileSummary], None] | None = None,
    encoding: str = "utf-8",
    policy: str | None = None,
    summary: FileSummary | None = None,
    keep: tuple[str, ...] = (),
) -> Iterator[dict[str, Any]]:
    """Yield one JSON-ready line per row of ``path``: ``row``, ``id`` and the result, or ``row``, ``id``, ``error``.

    Args:
        encoding: text encoding of a CSV/TSV/JSONL file.
        summary: counts of what was yielded so far, updated in place (pass one to read it after an
            interruption); it is also passed to ``on_batch`` after each batch and is the generator's return value.
        policy: the surface whose thresholds decide (default ``default``).
        keep: input columns copied into each line (``text``, a date: what ``duanka monitor`` reads).

    Raises:
        DataError: the file cannot be opened at all (missing, unknown type, empty, duplicated column, GBK
            read as UTF-8).
    """
    summary = summary if summary is not None else FileSummary()
    clashes = sorted(set(keep) & {"row", "id", "error", *RESULT_FIELDS})
    if clashes:
        raise DataError(f"cannot keep column(s) {', '.join(clashes)}: the output's own fields have these names")
    for batch in batched(iter_records(path, encoding), batch_size):
        lines: list[dict[str, Any]] = []
        texts, ids, slots = [], [], []
        for record in batch:
            data_id = record.values.get(id_column) if record.values else None
            line: dict[str, Any] = {"row": record.row, "id": data_id}
            for column in keep:
                line[column] = record.values.get(column) if record.values else None
            problem = record_problem(record, text_column)
            if problem is not None:
                line["error"] = f"{path}: {record.where}: {problem}"
            else:
                texts.append(record.values[text_column])
                ids.append(data_id)
                slots.append((line, record.notes))
            lines.append(line)
        for (line, notes), result in zip(slots, scorer.score_batch(texts, ids, policy=policy) if texts else []):
            payload = result.to_dict()
            payload["notes"] = [f"input: {n}" for n in notes] + payload["notes"]
            del payload["data_id"]  # the line's `id`
            line.update(payload)
            summary.decisions[result.decision] += 1
            summary.sources[result.source] += 1
        summary.pending.extend(lines)
        yield from _take_pending(summary)
        if on_batch is not None:
            on_batch(summary)
    return summary


def _take_pending(summary: FileSummary) -> Iterator[dict[str, Any]]:
    """The scored lines held in ``summary.pending``, counted as they leave."""
    while summary.pending:
        line = summary.pending.popleft()
        summary.rows += 1
        summary.errors += "error" in line
        yield line


@contextmanager
def _deferred_interrupts() -> Iterator[list[int]]:
    """SIGINT and SIGTERM noted in the yielded list instead of raised, then delivered again on leaving.

    Only in the main thread (elsewhere signals cannot be handled and nothing changes).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {kind: signal.signal(kind, lambda signum, frame: received.append(signum)) for kind in kinds}
    try:
        yield received
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
    if received:
        signal.raise_signal(received[0])  # the caller's handler: KeyboardInterrupt, the CLI's Terminated ...


class OutputClosed(DuankaError):
    """The reader of standard output went away (a broken pipe) while scored lines were being written."""


def write_scored(lines: Iterator[dict[str, Any]], output: str | None, summary: FileSummary) -> None:
    """Write scored lines as JSONL to ``output`` (``None`` or ``-``: standard output), counting ``summary.written``.

    The first line is read before the output is opened: an input refused as a whole (missing file, unreadable
    header, no text column) raises here and leaves an existing output untouched, with no empty one created.

    SIGINT and SIGTERM (in the main thread) stop it after the batch being scored: every scored line, including
    those :func:`score_records` holds in ``summary.pending``, is written and flushed, then the signal is
    delivered again to the handler that was installed before (KeyboardInterrupt for SIGINT).

    Raises:
        DuankaError: the output cannot be opened or written (:class:`OutputClosed` for a broken pipe), naming it
            and how far the file got.
    """
    with _deferred_interrupts() as stop:
        first = next(lines, None)
        if first is not None:
            lines = itertools.chain([first], lines)
        _write_lines(lines, output, summary, stop)


def _write_lines(lines: Iterator[dict[str, Any]], output: str | None, summary: FileSummary, stop: list[int]) -> None:
    """The writing part of :func:`write_scored`; a non-empty ``stop`` ends it after the scored lines are out."""
    to_stdout = output in (None, "-")
    try:
        out: TextIO = sys.stdout if to_stdout else open(output, "w", encoding="utf-8")
    except OSError as exc:
        raise DuankaError(f"{output}: cannot write the output ({exc.strerror or exc})") from None
    where = "standard output" if to_stdout else output
    try:
        try:
            for line in lines:
                out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                summary.written += 1
                if stop:
                    break
            for line in _take_pending(summary) if stop else ():
                out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                summary.written += 1
            out.flush()
        finally:
            if not to_stdout:
                out.close()
    except BrokenPipeError:
        raise OutputClosed(f"{where} was closed after {summary.rows} rows (broken pipe); {summary.format()}") from None
    except OSError as exc:
        raise DuankaError(
            f"{where}: cannot write ({exc.strerror or exc}) after {summary.rows} rows; {summary.format()}"
        ) from None
