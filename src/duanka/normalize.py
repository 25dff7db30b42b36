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

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from duanka import lexicon

__all__ = ["Normalized", "normalize", "normalize_with_offsets"]

# Characters evaders put between the characters of a word; symbols and emoji count too (see _is_filler).
_FILLER_CHARS = frozenset("*.·•・/\\|丨-_~^+=#&'\"`,，、。:：;；!！?？…")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
_SPACE = " "


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F
    ) and ch != "丨"


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


@dataclass(frozen=True)
class Normalized:
    """Normalized text and, per normalized character, the original span ``[starts[i], ends[i])``."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalized span ``[start, end)`` to the span of original text it came from."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span [{start}, {end}) is outside the normalized text of length {len(self.text)}")
        return self.starts[start], self.ends[end - 1]


def normalize_with_offsets(text: str) -> Normalized:
    """Normalize ``text`` and keep, for every output character, the original span it came from."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    # Step 1: character mapping (most characters map to exactly one: a fast path without inner loops).
    get = _CHAR_CACHE.get
    mapped = [get(ch) for ch in text]
    if None in mapped:
        mapped = [m if m is not None else _map_char(ch) for m, ch in zip(mapped, text)]
    if all(len(m) == 1 for m in mapped):
        chars, starts, ends = mapped, list(range(len(text))), list(range(1, len(text) + 1))
    else:
        chars, starts, ends = [], [], []
        for index, piece in enumerate(mapped):
            for part in piece:
                chars.append(part)
                starts.append(index)
                ends.append(index + 1)
    # Step 2: drop separator runs between Chinese characters, collapse the remaining white space.
    chars, starts, ends = _apply_mask(chars, starts, ends, _separator_mask(chars))
    # Step 3: near-forms and homophones.
    flat = "".join(chars)
    pattern, table = _near_forms()
    if table and pattern.search(flat):
        out_chars: list[str] = []
        out_starts: list[int] = []
        out_ends: list[int] = []
        cursor = 0
        for match in pattern.finditer(flat):
            begin, finish = match.span()
            out_chars.extend(chars[cursor:begin])
            out_starts.extend(starts[cursor:begin])
            out_ends.extend(ends[cursor:begin])
            replacement = table[match.group()]
            span_start, span_end = starts[begin], ends[finish - 1]
            out_chars.extend(replacement)
            out_starts.extend([span_start] * len(replacement))
            out_ends.extend([span_end] * len(replacement))
            cursor = finish
        out_chars.extend(chars[cursor:])
        out_starts.extend(starts[cursor:])
        out_ends.extend(ends[cursor:])
        # A replacement can make new Chinese neighbours (日jie 只 -> 日结 只): separators once more.
        chars, starts, ends = _apply_mask(out_chars, out_starts, out_ends, _separator_mask(out_chars))
        flat = "".join(chars)
    return Normalized(flat, tuple(starts), tuple(ends))


def _apply_mask(
    chars: list[str], starts: list[int], ends: list[int], keep: list[bool]
) -> tuple[list[str], list[int], list[int]]:
    if all(keep):
        return chars, starts, ends
    return (
        [c for c, k in zip(chars, keep) if k],
        [s for s, k in zip(starts, keep) if k],
        [e for e, k in zip(ends, keep) if k],
    )


_CLASS_CACHE: dict[str, str] = {}
_FILLER_RUN = re.compile(r"[ fp]+")
_SENTENCE_PUNCTUATION = frozenset("，。！？,!?;；:：、…")


def _char_class(ch: str) -> str:
    """h: Chinese, l: Latin letter, ' ': space, p: sentence punctuation, f: other filler, o: anything else."""
    cls = _CLASS_CACHE.get(ch)
    if cls is None:
        if ch == _SPACE:
            cls = " "
        elif _is_han(ch):
            cls = "h"
        elif _is_latin(ch):
            cls = "l"
        elif _is_filler(ch):
            cls = "p" if ch in _SENTENCE_PUNCTUATION else "f"
        else:
            cls = "o"
        if len(_CLASS_CACHE) < 200_000:
            _CLASS_CACHE[ch] = cls
    return cls


def _separator_mask(chars: list[str]) -> list[bool]:
    """Which characters survive step 2."""
    classes = "".join([_char_class(ch) for ch in chars])
    keep = [True] * len(chars)
    for run in _FILLER_RUN.finditer(classes):
        i, j = run.span()
        kinds = run.group()
        before = classes[i - 1] if i > 0 else ""
        after = classes[j] if j < len(classes) else ""
        has_space = " " in kinds
        if before == "h" and after == "h":
            # 收*卡, 收 卡, 收📱卡: but keep sentence punctuation that is not inside a word (。，！？)
            if "p" not in kinds:
                keep[i:j] = [False] * (j - i)
        elif {before, after} == {"h", "l"} and not has_space and "p" not in kinds:
            keep[i:j] = [False] * (j - i)  # v*信, 加-v
        elif has_space:
            # collapse white space; drop it at either end of the text
            seen_space = False
            for k in range(i, j):
                if kinds[k - i] == " ":
                    if seen_space or not before or not after:
                        keep[k] = False
                    seen_space = True
    return keep


def normalize(text: str) -> str:
    """Return the normalized form of ``text`` (see the module docstring for the steps)."""
    return normalize_with_offsets(text).text
