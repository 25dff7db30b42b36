"""CSV cells people open in a spreadsheet: neutralise what it would evaluate, and read it back exactly.

Posts are written by the people being moderated, and a reviewer's spreadsheet evaluates a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return (``=HYPERLINK(…)`` runs on open). Following the OWASP
guidance on CSV injection, such a cell is written with a leading ``'``, which spreadsheets show as text; reading
the file back removes exactly that quote, so a reviewed queue imports the posts as they were written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["FORMULA_STARTS", "neutralize", "restore", "write_csv_for_people"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is a string a spreadsheet would evaluate; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore(value: Any) -> Any:
    """The inverse of :func:`neutralize` (a ``'`` followed by a formula start is the quote it added)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def write_csv_for_people(frame: Any, path: str | Path) -> None:
    """Write a pandas frame as CSV with every text cell neutralised (see the module docstring)."""
    safe = frame.copy()
    for column in safe.columns:  # every column: text may sit in object or string dtypes (pandas 2 and 3)
        safe[column] = safe[column].map(neutralize)
    safe.to_csv(path, index=False)
