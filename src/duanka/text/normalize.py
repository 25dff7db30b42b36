"""The one text normalization used by training, rules and scoring, with a map back to the original text.

Steps, in order (each documented in ``resources/README.md``):

1. per character: Unicode NFKC (full-width to half-width, circled digits to digits), lower case,
   traditional to simplified Chinese (``resources/t2s.tsv``); zero-width, format, control and
   combining characters are dropped, line breaks and tabs become spaces;
2. separators inserted between Chinese characters (``收*卡``, ``收 卡``, ``收.卡``, ``收📱卡``) are removed,
   other runs of white space collapse to one space;
3. near-forms and homophones used for evasion are mapped to their plain form
   (``resources/near_forms.tsv``: ``薇信``/``V信``/``vx`` → ``微信``, ``扣扣`` → ``qq``, ``咔`` → ``卡`` ...).
   Chinese numerals stay as they are (readable, and part of the features); only the financial forms
   (``壹贰叁肆``) become the common ones.

Every normalized character remembers the span of original characters it came from, so a match found
in normalized text can be shown to a moderator in the text they actually read.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from functools import lru_cache
from typing import Any

from duanka.text import lexicon
from duanka.text.chars import is_han

__all__ = ["Normalized", "normalize", "normalize_lazily", "normalize_with_offsets"]

# Characters evaders put between the characters of a word; symbols and emoji count too (see _is_filler).
_FILLER_CHARS = frozenset("*.·•・/\\|丨-_~^+=#&'\"`,，、。:：;；!！?？…")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
_SPACE = " "


def _is_han(ch: str) -> bool:
    return ch != "丨" and is_han(ch)  # 丨 is a Chinese character, but evaders use it as a separator stroke


def _is_latin(ch: str) -> bool:
    return "a" <= ch <= "z"


def _is_filler(ch: str) -> bool:
    if ch in _FILLER_CHARS or ch == _SPACE:
        return True
    category = unicodedata.category(ch)
    return category in ("So", "Sk", "Sm") or (category.startswith("P") and ch not in "()[]{}《》「」【】<>%")


@lru_cache(maxsize=1)
def _char_near_forms() -> dict[str, str]:
    return {variant: canonical for variant, canonical in lexicon.near_forms() if len(variant) == 1}


@lru_cache(maxsize=1)
def _near_forms() -> tuple[re.Pattern[str], dict[str, str]]:
    # Variants are brought through step 1 first so they meet the text as step 1 leaves it (a traditional
    # or full-width spelling of a variant is then covered too); longest variant first.
    table: dict[str, str] = {}
    for variant, canonical in lexicon.near_forms():
        if len(variant) > 1:
            mapped = _map_chars_plain(variant)
            if mapped != canonical:
                table[mapped] = canonical
    return re.compile("|".join(_near_form_alternatives(table, literal_first=True))), table


def _near_form_alternatives(table: dict[str, str], literal_first: bool) -> list[str]:
    """One regex branch per variant, longest first; Latin variants match only as whole letter runs.

    With ``literal_first`` the "no letter before" check comes after the first character
    (``v(?<![a-z]v)x`` instead of ``(?<![a-z])vx``: the same matches), so every branch starts with a literal
    and ``re`` can skip ahead to the characters that can start a match.
    """
    alternatives = []
    for variant in sorted(table, key=len, reverse=True):
        first, rest = re.escape(variant[0]), re.escape(variant[1:])
        if _is_latin(variant[0]):
            pattern = f"{first}(?<![a-z]{first}){rest}" if literal_first else f"(?<![a-z]){first}{rest}"
        else:
            pattern = first + rest
        if _is_latin(variant[-1]):
            pattern += r"(?![a-z])"
        alternatives.append(pattern)
    return alternatives


_CHAR_CACHE: dict[str, str] = {}


def _map_char(ch: str) -> str:
    """Step 1 for one character: what it becomes (possibly several characters, possibly none)."""
    mapped = _CHAR_CACHE.get(ch)
    if mapped is not None:
        return mapped
    t2s = lexicon.t2s()
    near = _char_near_forms()
    out = []
    for part in unicodedata.normalize("NFKC", ch).lower():
        if part in "\n\r\t\v\f\u2028\u2029" or part.isspace():
            out.append(_SPACE)
            continue
        if unicodedata.category(part) in _DROP_CATEGORIES:
            continue
        simplified = t2s.get(part, part)
        out.append(near.get(simplified, simplified))
    mapped = "".join(out)
    if len(_CHAR_CACHE) < 200_000:  # bounded: a hostile stream of rare characters cannot grow it forever
        _CHAR_CACHE[ch] = mapped
    return mapped


def _map_chars_plain(text: str) -> str:
    return "".join(_map_char(ch) for ch in text)


class Normalized:
    """Normalized text and, per normalized character, the original span ``[starts[i], ends[i])``.

    The offset map (``starts``, ``ends``) is built on first use: most posts are scored without a rule
    or term match and without their evidence being read, and never need it.
    """

    __slots__ = ("_ends", "_piece_ends", "_plan", "_starts", "text")

    def __init__(
        self, text: str, starts: tuple[int, ...] | None = None, ends: tuple[int, ...] | None = None, *, plan: Any = None
    ) -> None:
        if (starts is None or ends is None) and plan is None:
            raise TypeError("Normalized needs starts and ends, or the plan to build them from")
        self.text = text
        self._starts = starts
        self._ends = ends
        self._plan = plan
        self._piece_ends: list[int] | None = None

    def _build(self) -> None:
        starts, ends = _offsets(*self._plan)
        self._starts, self._ends = starts, ends  # two threads may both build it: same values either way

    @property
    def starts(self) -> tuple[int, ...]:
        if self._starts is None:
            self._build()
        return self._starts  # type: ignore[return-value]

    @property
    def ends(self) -> tuple[int, ...]:
        if self._ends is None:
            self._build()
        return self._ends  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalized):
            return NotImplemented
        return (self.text, self.starts, self.ends) == (other.text, other.starts, other.ends)

    def __hash__(self) -> int:
        return hash((self.text, self.starts, self.ends))

    def __repr__(self) -> str:
        return f"Normalized(text={self.text!r}, starts={self.starts!r}, ends={self.ends!r})"

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalized span ``[start, end)`` to the span of original text it came from."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span [{start}, {end}) is outside the normalized text of length {len(self.text)}")
        if self._starts is None:  # map not built: trace the two positions back instead of building all of it
            mapped, _length, drops, replaced, _drops_after = self._plan
            if mapped is None and not replaced:  # the common case: only separators were dropped
                return _undrop(drops, start), _undrop(drops, end - 1) + 1
            return self._origin(start)[0], self._origin(end - 1)[1]
        return self.starts[start], self.ends[end - 1]

    def _origin(self, position: int) -> tuple[int, int]:
        """``(starts[position], ends[position])`` traced back through the steps recorded in the plan."""
        _mapped, _length, drops, replaced, drops_after = self._plan
        before = _undrop(drops_after, position)  # in the text as the near-form step left it
        shift = 0
        for begin, finish, replacement in replaced:  # spans in the text before that step
            at = begin + shift
            if before < at:
                break
            if before < at + len(replacement):  # inside a replacement: it covers its whole source
                return self._piece(_undrop(drops, begin))[0], self._piece(_undrop(drops, finish - 1))[1]
            shift += len(replacement) - (finish - begin)
        return self._piece(_undrop(drops, before - shift))

    def _piece(self, position: int) -> tuple[int, int]:
        """The original character a position of the step-1 text came from, as ``(index, index + 1)``."""
        mapped = self._plan[0]
        if mapped is None:
            return position, position + 1
        if self._piece_ends is None:
            self._piece_ends = list(itertools.accumulate(map(len, mapped)))
        index = bisect.bisect_right(self._piece_ends, position)
        return index, index + 1


def normalize_lazily(text: str) -> Normalized:
    """Normalize ``text``; the offset map is built only when ``starts``, ``ends`` or ``to_original`` is used.

    Same text and (once built) the same offsets as :func:`normalize_with_offsets`.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    # Step 1: character mapping (most characters map to exactly one).
    get = _CHAR_CACHE.get
    mapped = list(map(get, text))
    if None in mapped:
        mapped = [m if m is not None else _map_char(ch) for m, ch in zip(mapped, text)]
    flat = "".join(mapped)
    # No empty piece and as many characters as pieces: every piece is one character.
    one_to_one = len(flat) == len(text) and "" not in mapped
    # Step 2: drop separator runs between Chinese characters, collapse the remaining white space.
    drops = _separator_drops(flat)
    if drops:
        flat = _cut(flat, drops, "")
    # Step 3: near-forms and homophones.
    pattern, table = _near_forms()
    replaced: list[tuple[int, int, str]] = []
    drops_after: list[tuple[int, int]] = []
    if table and pattern.search(flat):
        pieces = []
        cursor = 0
        for match in pattern.finditer(flat):
            begin, finish = match.span()
            replacement = table[match.group()]
            replaced.append((begin, finish, replacement))
            pieces.append(flat[cursor:begin])
            pieces.append(replacement)
            cursor = finish
        pieces.append(flat[cursor:])
        flat = "".join(pieces)
        # A replacement can make new Chinese neighbours (日jie 只 -> 日结 只): separators once more.
        drops_after = _separator_drops(flat)
        if drops_after:
            flat = _cut(flat, drops_after, "")
    return Normalized(flat, plan=(None if one_to_one else mapped, len(text), drops, replaced, drops_after))


def normalize_with_offsets(text: str) -> Normalized:
    """Normalize ``text`` and keep, for every output character, the original span it came from."""
    normalized = normalize_lazily(text)
    normalized._build()
    return normalized


def _offsets(
    mapped: list[str] | None,
    length: int,
    drops: list[tuple[int, int]],
    replaced: list[tuple[int, int, str]],
    drops_after: list[tuple[int, int]],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The offset map of a text from what :func:`normalize_lazily` recorded while normalizing it."""
    if mapped is None:
        starts: list[int] = list(range(length))
        ends: list[int] = list(range(1, length + 1))
    else:
        starts, ends = [], []
        for index, piece in enumerate(mapped):
            if len(piece) == 1:
                starts.append(index)
                ends.append(index + 1)
            elif piece:
                starts.extend([index] * len(piece))
                ends.extend([index + 1] * len(piece))
    if drops:
        starts, ends = _cut(starts, drops, []), _cut(ends, drops, [])
    if replaced:
        out_starts: list[int] = []
        out_ends: list[int] = []
        cursor = 0
        for begin, finish, replacement in replaced:
            out_starts.extend(starts[cursor:begin])
            out_ends.extend(ends[cursor:begin])
            out_starts.extend([starts[begin]] * len(replacement))
            out_ends.extend([ends[finish - 1]] * len(replacement))
            cursor = finish
        out_starts.extend(starts[cursor:])
        out_ends.extend(ends[cursor:])
        starts, ends = out_starts, out_ends
        if drops_after:
            starts, ends = _cut(starts, drops_after, []), _cut(ends, drops_after, [])
    return tuple(starts), tuple(ends)


def _undrop(drops: list[tuple[int, int]], position: int) -> int:
    """The position in the longer text of ``position`` in the text that ``drops`` (sorted, disjoint) were cut from."""
    for begin, finish in drops:
        if begin > position:
            break
        position += finish - begin
    return position


def _cut(sequence: Any, drops: list[tuple[int, int]], empty: Any) -> Any:
    """``sequence`` (a str or list) without the sorted, disjoint ranges ``drops``."""
    pieces = []
    cursor = 0
    for begin, finish in drops:
        pieces.append(sequence[cursor:begin])
        cursor = finish
    pieces.append(sequence[cursor:])
    if isinstance(empty, str):
        return empty.join(pieces)
    return list(itertools.chain.from_iterable(pieces))


_FILLER_RUN = re.compile(r"[ fp]+")
_SENTENCE_PUNCTUATION = frozenset("，。！？,!?;；:：、…")


def _char_class(ch: str) -> str:
    """h: Chinese, l: Latin letter, ' ': space, p: sentence punctuation, f: other filler, o: anything else."""
    if ch == _SPACE:
        return " "
    if _is_han(ch):
        return "h"
    if _is_latin(ch):
        return "l"
    if _is_filler(ch):
        return "p" if ch in _SENTENCE_PUNCTUATION else "f"
    return "o"


class _ClassTable(dict):  # type: ignore[type-arg]
    """Code point -> class letter for ``str.translate``; classes are worked out on first sight and cached."""

    def __missing__(self, code: int) -> str:
        cls = _char_class(chr(code))
        if len(self) < 200_000:  # bounded: a hostile stream of rare characters cannot grow it forever
            self[code] = cls
        return cls


_CLASSES = _ClassTable()


def _separator_drops(text: str) -> list[tuple[int, int]]:
    """The ranges of ``text`` that step 2 removes, in order and disjoint."""
    classes = text.translate(_CLASSES)
    drops: list[tuple[int, int]] = []
    for run in _FILLER_RUN.finditer(classes):
        i, j = run.span()
        kinds = run.group()
        before = classes[i - 1] if i > 0 else ""
        after = classes[j] if j < len(classes) else ""
        has_space = " " in kinds
        if before == "h" and after == "h":
            # 收*卡, 收 卡, 收📱卡: but keep sentence punctuation that is not inside a word (。，！？)
            if "p" not in kinds:
                drops.append((i, j))
        elif {before, after} == {"h", "l"} and not has_space and "p" not in kinds:
            drops.append((i, j))  # v*信, 加-v
        elif has_space:
            # collapse white space; drop it at either end of the text
            seen_space = False
            for k in range(i, j):
                if kinds[k - i] == " ":
                    if seen_space or not before or not after:
                        drops.append((k, k + 1))
                    seen_space = True
    return drops


def normalize(text: str) -> str:
    """Return the normalized form of ``text`` (see the module docstring for the steps)."""
    return normalize_lazily(text).text


# ---------------------------------------------------------------- what each step changed (for monitoring)
STEPS = ("width", "traditional", "invisible", "near_form", "separator")
"""The normalization steps whose work :func:`normalization_steps` counts, in the order of its tuple.

``width``: NFKC made the character an ASCII letter or digit (full-width ``ｖｘ``, circled ``①``); ``traditional``: a
traditional character became simplified; ``invisible``: a zero-width, format, control or combining character was
dropped; ``near_form``: a near-form or homophone became its plain form (one count per replaced spelling);
``separator``: symbols removed from between the characters of a word (``收*卡``, ``收📱卡``); a space between
Chinese characters is removed too but not counted: spaces between words are ordinary writing.
"""
_STEP_LETTERS = {"width": "w", "traditional": "t", "invisible": "i", "near_form": "n"}


def _char_step(ch: str) -> str:
    """The step-1 change one character undergoes, as a letter of ``_STEP_LETTERS`` ('.' for none)."""
    parts = unicodedata.normalize("NFKC", ch).lower()
    if parts and all(unicodedata.category(p) in _DROP_CATEGORIES for p in parts):
        return "i"
    t2s, near = lexicon.t2s(), _char_near_forms()
    if any(near.get(t2s.get(p, p), t2s.get(p, p)) != t2s.get(p, p) for p in parts):
        return "n"
    if any(t2s.get(p, p) != p for p in parts):
        return "t"
    if parts != ch.lower() and parts.isascii() and parts.isalnum():
        return "w"  # full-width or circled letters and digits (ｖｘ, ①); full-width punctuation is ordinary Chinese
    return "."


class _StepTable(dict):  # type: ignore[type-arg]
    """Code point -> step letter for ``str.translate``, worked out on first sight and cached (bounded)."""

    def __missing__(self, code: int) -> str:
        letter = _char_step(chr(code))
        if len(self) < 200_000:
            self[code] = letter
        return letter


_STEP_TABLE = _StepTable()


def normalization_steps(text: str, normalized: Normalized | None = None) -> tuple[int, int, int, int, int]:
    """How much of ``text`` each normalization step changed, as counts in :data:`STEPS` order.

    Counts characters of the original text, but ``near_form``, which counts replaced spellings (a one-character
    near-form such as ``咔`` counts once, as does a spelling such as ``薇信``). White space collapsing and lower
    casing are not counted: they are not evasion. ``normalized``: ``normalize_lazily(text)`` when the caller has it.
    """
    normalized = normalized if normalized is not None else normalize_lazily(text)
    mapped, _length, drops, replaced, _after = normalized._plan
    letters = text.translate(_STEP_TABLE)
    separator = 0
    if drops:
        flat = text if mapped is None else "".join(mapped)
        classes = flat.translate(_CLASSES)
        last = len(classes)
        for begin, finish in drops:  # a run between two non-space characters, not white space being collapsed
            if begin > 0 and finish < last and classes[begin - 1] != " " and classes[finish] != " ":
                separator += finish - begin - classes.count(" ", begin, finish)  # spaces between words are ordinary
    return (
        letters.count("w"),
        letters.count("t"),
        letters.count("i"),
        letters.count("n") + len(replaced),
        separator,
    )
