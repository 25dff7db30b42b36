"""Every term table duanka reads (``resources/``), read once: normalization and augmentation share these.

Tables are data, not code: ``t2s.tsv``/``s2t.tsv`` (traditional ↔ simplified), ``near_forms.tsv`` (evasion
spellings → plain form), ``pinyin.tsv`` (pinyin spellings of terms and characters), ``domain_terms.txt``
(the trade's vocabulary: jieba words and augmenter targets), ``trade_terms.txt`` (the evidence gate's
terms). ``resources/README.md`` documents each.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "domain_terms",
    "near_forms",
    "parse_yaml",
    "pinyin_initials",
    "pinyin_syllables",
    "s2t",
    "t2s",
    "trade_terms",
    "yaml_file",
]


def _lines(name: str) -> list[str]:
    text = resources.files("duanka.resources").joinpath(name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _pairs(name: str) -> list[tuple[str, str]]:
    pairs = []
    for line in _lines(name):
        left, right = line.split("\t")[:2]
        pairs.append((left, right))
    return pairs


@lru_cache(maxsize=1)
def t2s() -> dict[str, str]:
    """Traditional → simplified, one character to one (offsets stay exact)."""
    # Kept as a table rather than OpenCC (measured 2026-12-06): OpenCC's t2s agrees on 4,101 of its 4,105 characters
    # (甦 甯 礆 逕 differ), but it converts phrases, while span tracing needs one character to one, and it would add a
    # C++ library to the scoring core's install for a mapping this file already gives in one dict lookup.
    return dict(_pairs("t2s.tsv"))


@lru_cache(maxsize=1)
def s2t() -> dict[str, str]:
    """Simplified → traditional, for the augmenter's "traditional characters" trick."""
    return dict(_pairs("s2t.tsv"))


@lru_cache(maxsize=1)
def near_forms() -> tuple[tuple[str, str], ...]:
    """``(variant, canonical)`` pairs in file order: spellings that normalization maps to their plain form."""
    return tuple(_pairs("near_forms.tsv"))


@lru_cache(maxsize=1)
def _pinyin() -> tuple[dict[str, str], dict[str, str]]:
    initials, syllables = {}, {}
    for term, spelling in _pairs("pinyin.tsv"):
        (syllables if len(term) == 1 else initials)[term] = spelling
    return initials, syllables


def pinyin_initials() -> dict[str, str]:
    """Whole terms and the initials evaders write for them (收卡 → sk)."""
    return _pinyin()[0]


def pinyin_syllables() -> dict[str, str]:
    """Single characters and their pinyin syllable (卡 → ka)."""
    return _pinyin()[1]


@lru_cache(maxsize=1)
def domain_terms() -> tuple[str, ...]:
    """The trade's vocabulary in normalized form, longest first (jieba dictionary words; augmenter targets)."""
    return tuple(sorted({line.strip() for line in _lines("domain_terms.txt")}, key=len, reverse=True))


@lru_cache(maxsize=1)
def trade_terms() -> tuple[str, ...]:
    """Objects and activities of the trade, in normalized form; a post with none of them cannot be blocked."""
    return tuple(dict.fromkeys(line.strip() for line in _lines("trade_terms.txt")))


def yaml_file(path: str | Path | None, shipped: str, error: type[Exception], what: str) -> tuple[Any, str, str]:
    """Parse a user's YAML file, or the shipped ``resources/<shipped>`` when ``path`` is None.

    Returns:
        ``(data, text, where)``: the parsed YAML, its text (for snapshots and digests) and a name for messages.

    Raises:
        error: the file cannot be read or is not valid YAML; the message names the file.
    """
    if path is None:
        text = resources.files("duanka.resources").joinpath(shipped).read_text(encoding="utf-8")
        where = f"duanka/resources/{shipped}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"{path}: cannot read the {what} ({exc})") from None
        where = str(path)
    return parse_yaml(text, where, error), text, where


def parse_yaml(text: str, where: str, error: type[Exception]) -> Any:
    """Parse YAML text; ``error`` (naming ``where``) instead of a YAML traceback when it is not valid."""
    import yaml

    # libyaml's parser where PyYAML was built with it: the same documents, ten times faster (a cold start parses the
    # artifact's rules snapshot); it refuses nesting past 1,000 levels with a YAMLError
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader, C or Python
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML ({exc})") from None
    except RecursionError:  # a hostile file nested thousands deep
        raise error(f"{where}: not valid YAML (nested too deep)") from None
