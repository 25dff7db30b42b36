"""The evidence gate: a post without any of the trade's terms, or without Chinese text, cannot be blocked by the model.

Card trading and its lures are about objects (cards, numbers, codes, accounts, IDs) and named activities
(跑分, 走账, 刷单 …). A post that mentions none of them (``resources/trade_terms.txt``, matched on normalized
text) is passed whatever the model's risk; a post with no Chinese character at all (English, emoji, digits)
is at most reviewed, because the model learned from Chinese posts and extrapolates badly outside them.
The gate changes decisions only: labels and probabilities stay the model's, and the result's notes say
when the gate acted. Training applies the same gate to out-of-fold risk before it chooses thresholds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from duanka.text import lexicon
from duanka.text.chars import has_han

__all__ = ["Gate", "decision_risk", "gate_for", "gated_risk", "trade_terms_in"]

_LATIN_TERM = re.compile(r"^[a-z0-9\-]+$")


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    terms = lexicon.trade_terms()
    chinese = sorted((t for t in terms if not _LATIN_TERM.match(t)), key=len, reverse=True)
    latin = sorted((t for t in terms if _LATIN_TERM.match(t)), key=len, reverse=True)
    parts = []
    if chinese:
        parts.append("|".join(map(re.escape, chinese)))
    if latin:
        parts.append(r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, latin)) + r")(?![a-z0-9])")
    return re.compile("|".join(parts))


def trade_terms_in(normalized_text: str) -> list[str]:
    """The trade terms found in a normalized text, in order (empty: no sign of the trade)."""
    return [m.group() for m in _pattern().finditer(normalized_text)]


@dataclass(frozen=True)
class Gate:
    """What the gate allows for one post: the highest decision the model may give it, and why."""

    ceiling: str  # "block", "review" or "pass"
    reason: str | None = None


_OPEN = Gate("block")
_NO_HAN = Gate("review", "no Chinese text: the model may flag it for review, never block it")
_NO_TERM = Gate("pass", "no card, number, code, account, ID or trade term: passed whatever the model's risk")


def gate_for(normalized_text: str) -> Gate:
    """The gate of one normalized post."""
    if not _pattern().search(normalized_text):
        return _NO_TERM
    if not has_han(normalized_text):
        return _NO_HAN
    return _OPEN


def decision_risk(risk: np.ndarray, normalized_texts: list[str], block: float | None = None) -> np.ndarray:
    """Risk as the gate lets decisions see it (thresholds are chosen and decisions measured on this).

    0 where no trade term is present; with ``block``, just under it where the text has no Chinese character.
    """
    return gated_risk(risk, [gate_for(text).ceiling for text in normalized_texts], block)


def gated_risk(risk: np.ndarray, ceilings: Sequence[str], block: float | None = None) -> np.ndarray:
    """:func:`decision_risk` from the posts' gate ceilings, for callers that already have them."""
    seen = np.asarray(risk, dtype=float).copy()
    seen[[c == "pass" for c in ceilings]] = 0.0
    if block is not None:
        capped = np.array([c == "review" for c in ceilings], dtype=bool)
        seen[capped] = np.minimum(seen[capped], np.nextafter(block, 0.0))
    return seen
