"""Character classes and clean-up that keep offsets: what a Chinese character is, and text that UTF-8 can hold.

One definition each, used by normalization, the evidence gate, augmentation, file reading and the scorer.
"""

from __future__ import annotations

import re

__all__ = ["HAN_CLASS", "has_han", "is_han", "replace_surrogates"]

# CJK Unified Ideographs, Extension A, Compatibility Ideographs, and Extensions B onwards (supplementary planes).
HAN_RANGES: tuple[tuple[int, int], ...] = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))
HAN_CLASS = "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in HAN_RANGES)  # body of a regex [...] class
_HAN = re.compile(f"[{HAN_CLASS}]")


def is_han(ch: str) -> bool:
    """True for one Chinese character (any of :data:`HAN_RANGES`)."""
    code = ord(ch)
    return any(low <= code <= high for low, high in HAN_RANGES)


def has_han(text: str) -> bool:
    """True when the text has at least one Chinese character."""
    return _HAN.search(text) is not None


def replace_surrogates(text: str) -> tuple[str, bool]:
    """``text`` with every lone surrogate (undecodable bytes read with ``surrogateescape``, or a broken JSON
    escape) replaced by U+FFFD, so that it can be written back as UTF-8; same length, so offsets hold.

    Returns:
        (the text, whether anything was replaced).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text), True
    return text, False
