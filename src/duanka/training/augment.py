"""Deterministic evasion rewrites: augment training rows, build obfuscated test copies, spot tricks in text.

A rewrite applies two or three tricks that real evaders use to the domain terms of a post
(``resources/domain_terms.txt``), at least one of which survives normalization whenever one applies, so the
variant teaches the model something its source does not. Every spelling comes from the tables in
``duanka.text.lexicon`` (the same ones normalization reads); the same seed always gives the same rewrites.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from duanka.labels import RISKY_LABELS
from duanka.text import lexicon
from duanka.text.chars import HAN_CLASS
from duanka.text.normalize import normalize

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TRICKS", "augment_frame", "detect_evasion", "obfuscate", "obfuscated_copy", "trick_variants"]

# Tricks that normalization undoes (the model sees the plain form) and tricks that survive it. A rewrite is
# only used when normalization agrees with its class (see trick_variants); tests check every table entry.
UNDONE_TRICKS = ("separator", "near_form", "traditional", "fullwidth", "emoji_between", "zero_width")
SURVIVING_TRICKS = ("pinyin_initials", "pinyin_syllable", "chinese_numerals", "emoji_decoration")
TRICKS = UNDONE_TRICKS + SURVIVING_TRICKS
TERM_TRICKS = (*UNDONE_TRICKS, "pinyin_initials", "pinyin_syllable")  # the tricks that rewrite one term

_SEPARATORS = ("*", " ", ".", "/", "丨", "-", "~", "·", "_", "|")
_EMOJI = ("📱", "💳", "🔥", "💰", "✅", "👉", "❤", "⭐", "🏦", "✨", "💯")
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_DIGITS = "零一二三四五六七八九"
_FINANCIAL_CHARS = "壹贰叁肆伍柒捌玖佰仟"  # 陆 is left out of detection: 大陆
_FINANCIAL = str.maketrans("一二三四五六七八九百千", "壹贰叁肆伍陆柒捌玖佰仟")
_FULLWIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
_ALL_HAN = re.compile(f"^[{HAN_CLASS}]{{2,}}$")


@lru_cache(maxsize=1)
def _near_form_variants() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Plain form → the spellings ``near_forms.tsv`` maps back to it, longest plain form first."""
    variants: dict[str, list[str]] = {}
    for variant, canonical in lexicon.near_forms():
        if canonical.strip():
            variants.setdefault(canonical, []).append(variant)
    return tuple(sorted(((k, tuple(v)) for k, v in variants.items()), key=lambda kv: -len(kv[0])))


def trick_variants(term: str, trick: str) -> list[str]:
    """Every rewrite of ``term`` by a term trick that normalization treats as the trick's class says.

    For an undone trick the rewrite normalizes back to the term; for a surviving one it does not. The
    separator-like tricks are shown with one representative character (the rewrite picks among several).
    """
    lowered = term.lower()
    if trick == "near_form":
        pairs = [(plain, v) for plain, found in _near_form_variants() if plain in lowered for v in found]
        out = [lowered.replace(plain, v, 1) for plain, v in pairs]
    elif trick == "pinyin_initials":
        out = [lexicon.pinyin_initials()[lowered]] if lowered in lexicon.pinyin_initials() else []
    elif trick == "pinyin_syllable":
        syllables = lexicon.pinyin_syllables()
        out = [term[:i] + syllables[ch] + term[i + 1 :] for i, ch in enumerate(term) if ch in syllables]
    elif trick == "traditional":
        out = ["".join(lexicon.s2t().get(ch, ch) for ch in term)]
    elif trick == "fullwidth":
        out = ["".join(_FULLWIDTH.get(ch, ch) for ch in term.upper())]
    elif trick in ("separator", "emoji_between", "zero_width"):
        # between Chinese characters only: normalization keeps a separator inside a Latin run (q*q)
        joiner = {"separator": "*", "emoji_between": _EMOJI[0], "zero_width": _ZERO_WIDTH[0]}[trick]
        out = [joiner.join(term)] if _ALL_HAN.match(term) else []
    else:
        raise ValueError(f"unknown term trick {trick!r}; known: {', '.join(TERM_TRICKS)}")
    undone = trick in UNDONE_TRICKS
    plain = normalize(term)
    return [v for v in dict.fromkeys(out) if v != term and (normalize(v) == plain) == undone]


def _chinese_number(value: int) -> str:
    if value < 10:
        return _DIGITS[value]
    if value >= 100000:
        return "".join(_DIGITS[int(d)] for d in str(value))
    units = ["", "十", "百", "千", "万"]
    digits = str(value)
    out = []
    zero = False
    for position, digit in enumerate(digits):
        unit = units[len(digits) - position - 1]
        if digit == "0":
            zero = True
            continue
        if zero and out:
            out.append("零")
        zero = False
        out.append(_DIGITS[int(digit)] + unit)
    text = "".join(out)
    return text[1:] if text.startswith("一十") else text


def _term_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    lowered = text.lower()
    for term in lexicon.domain_terms():
        for match in re.finditer(re.escape(term), lowered):
            begin, end = match.span()
            if all(end <= s or begin >= e for s, e in spans):
                spans.append((begin, end))
    return sorted(spans)


def _rewrite_term(term: str, trick: str, rng: random.Random) -> str:
    if trick == "separator":
        return rng.choice(_SEPARATORS).join(term)
    if trick == "emoji_between":
        return rng.choice(_EMOJI).join(term)
    if trick == "zero_width":
        return rng.choice(_ZERO_WIDTH).join(term)
    return rng.choice(trick_variants(term, trick))


def obfuscate(text: str, rng: random.Random, tricks: Iterable[str] | None = None) -> str:
    """Rewrite the domain terms of ``text`` with evasion tricks drawn from ``tricks`` (default: all).

    At least one trick that survives normalization is used whenever one applies, so
    ``normalize(result)`` differs from ``normalize(text)`` for most posts.
    """
    allowed = tuple(tricks) if tricks is not None else TRICKS
    spans = _term_spans(text)
    if not spans:  # no domain term: treat one Chinese bigram as the term
        bigrams = [m.start() for m in re.finditer(f"(?=[{HAN_CLASS}]{{2}})", text)]
        if bigrams:
            start = rng.choice(bigrams)
            spans = [(start, start + 2)]
    pieces = []
    cursor = 0
    chosen_spans = spans if len(spans) <= 3 else sorted(rng.sample(spans, 3))
    for begin, end in chosen_spans:
        term = text[begin:end]
        usable = [t for t in allowed if t in TERM_TRICKS and trick_variants(term, t)]
        surviving = [t for t in usable if t in SURVIVING_TRICKS]
        if not usable:
            continue
        trick = rng.choice(surviving) if surviving and rng.random() < 0.5 else rng.choice(usable)
        pieces.append(text[cursor:begin])
        pieces.append(_rewrite_term(term, trick, rng))
        cursor = end
    pieces.append(text[cursor:])
    result = "".join(pieces)
    if "chinese_numerals" in allowed and rng.random() < 0.6:
        result = re.sub(
            r"\d{1,5}",
            lambda m: _chinese_number(int(m.group())).translate(_FINANCIAL if rng.random() < 0.3 else {}),
            result,
        )
    if "emoji_decoration" in allowed and rng.random() < 0.4:
        result = rng.choice(_EMOJI) + result + rng.choice(_EMOJI) * rng.randint(1, 3)
    return result


def augment_frame(
    frame: pd.DataFrame,
    copies: int = 1,
    seed: int = 0,
    labels: Iterable[str] = RISKY_LABELS,
    avoid: Iterable[str] = (),
) -> pd.DataFrame:
    """Obfuscated variants of the rows of ``frame`` whose label is in ``labels``.

    Each variant keeps its source's ``label`` and ``group`` (so group-aware splits keep families
    together), gets the id ``<source id>~a<k>`` and the source ``augmented``. Variants whose normalized
    text equals that of any row in ``frame``, in ``avoid`` or of an earlier variant are dropped.
    """
    import pandas as pd

    rng = random.Random(seed)
    wanted = set(labels)
    seen = {normalize(t) for t in frame["text"]} | {normalize(t) for t in avoid}
    rows = []
    for row in frame.itertuples(index=False):
        if row.label not in wanted:
            continue
        for k in range(copies):
            for _attempt in range(4):
                variant = obfuscate(row.text, rng)
                key = normalize(variant)
                if key not in seen and variant != row.text:
                    seen.add(key)
                    rows.append(
                        {
                            "id": f"{row.id}~a{k + 1}",
                            "text": variant,
                            "label": row.label,
                            "group": row.group,
                            "source": "augmented",
                        }
                    )
                    break
    extra = [c for c in frame.columns if c not in ("id", "text", "label", "group", "source", "_row")]
    result = pd.DataFrame(rows, columns=["id", "text", "label", "group", "source"])
    if extra and not result.empty:
        origin = frame.set_index("group")[extra]
        origin = origin[~origin.index.duplicated()]
        result = result.join(origin, on="group")
    return result


_SEPARATOR_BETWEEN_HAN = re.compile(f"[{HAN_CLASS}][*./\\\\|丨\\-~·_^+=#]+[{HAN_CLASS}]")


@lru_cache(maxsize=1)
def _pinyin_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    # initials that normalization maps back (wx, sfz, yhk) are near-forms, not pinyin left in the text
    initials = sorted({v for v in lexicon.pinyin_initials().values() if normalize(v) == v and v.isalpha()})
    syllables = "|".join(sorted(set(lexicon.pinyin_syllables().values()), key=len, reverse=True))
    return (
        re.compile(r"(?<![a-z])(?:" + "|".join(initials) + r")(?![a-z])"),
        re.compile(f"[{HAN_CLASS}](?:{syllables})(?![a-z])|(?<![a-z])(?:{syllables})[{HAN_CLASS}]"),
    )


@lru_cache(maxsize=1)
def _near_form_spellings() -> tuple[frozenset[str], tuple[str, ...]]:
    single = frozenset(v for v, _ in lexicon.near_forms() if len(v) == 1 and v not in _FINANCIAL_CHARS)
    longer = tuple(v for v, _ in lexicon.near_forms() if len(v) > 1)
    return single, longer


def detect_evasion(text: str) -> set[str]:
    """The evasion tricks visible in ``text`` (empty for plain text); used for data cards and reports."""
    found: set[str] = set()
    lowered = text.lower()
    if any(ch in lexicon.t2s() for ch in text):
        found.add("traditional")
    if any("\uff01" <= ch <= "\uff5e" and ch not in "，！？：；（）" for ch in text):
        found.add("fullwidth")
    if any(ch in _ZERO_WIDTH for ch in text):
        found.add("zero_width")
    if _SEPARATOR_BETWEEN_HAN.search(text):
        found.add("separator")
    if re.search(f"[{HAN_CLASS}][\U0001f300-\U0001faff\u2600-\u27bf]+[{HAN_CLASS}]", text):
        found.add("emoji_between")
    single, longer = _near_form_spellings()
    if any(ch in single for ch in text) or any(v in lowered for v in longer):
        found.add("near_form")
    if any(ch in _FINANCIAL_CHARS for ch in text):
        found.add("chinese_numerals")
    initials, syllables = _pinyin_patterns()
    if initials.search(lowered) or syllables.search(lowered):
        found.add("pinyin")
    return found


def obfuscated_copy(frame: pd.DataFrame, seed: int = 0, labels: Iterable[str] = RISKY_LABELS) -> pd.DataFrame:
    """The same rows with every row whose label is in ``labels`` rewritten by :func:`obfuscate`.

    For robustness evaluation: ids, labels and groups are kept, ``source`` becomes ``obfuscated``.
    """
    rng = random.Random(seed)
    wanted = set(labels)
    out = frame.drop(columns=["_row"], errors="ignore").copy()
    rewritten = [obfuscate(t, rng) if label in wanted else t for t, label in zip(out["text"], out["label"])]
    changed = [new != old for new, old in zip(rewritten, out["text"])]
    out["text"] = rewritten
    out.loc[changed, "source"] = "obfuscated"
    return out
