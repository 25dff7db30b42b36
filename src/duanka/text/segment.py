"""Word segmentation: jieba's dictionary and algorithm, run by rjieba (native) when it gives jieba's output.

``segmenter(terms, hmm)`` returns one shared, fully initialized segmenter per process and settings: the
domain terms are added once, under a lock, before anyone can use it, so threads may share it. Without
HMM, rjieba (the Rust jieba-rs binding) cuts exactly as ``jieba.lcut(text, HMM=False)`` does (checked by
tests/test_segment.py on the corpus and on generated stress text) at about a tenth of the cost; with HMM,
or when rjieba is not installed, jieba itself runs.

rjieba's ``__init__`` builds a default dictionary at import (0.1 s and about 30 MB) that duanka never uses, since
every segmenter builds its own with the domain terms added; so its compiled module is loaded without running that
``__init__`` (:func:`_rjieba_class`): one dictionary per process instead of two, about a quarter of a cold start.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["TERM_FREQ", "Segmenter", "segmenter"]

TERM_FREQ = 20_000  # dictionary frequency given to every domain term, so it is kept whole
_BACKEND_ENV = "DUANKA_SEGMENTER"  # "jieba" forces the pure-Python segmenter (for comparisons)

_lock = threading.Lock()
_segmenters: dict[tuple[tuple[str, ...], bool, str], Segmenter] = {}


class Segmenter:
    """jieba segmentation with extra dictionary words; immutable once built, safe to share between threads.

    Args:
        terms: dictionary words to add (each with frequency ``TERM_FREQ``).
        hmm: let jieba guess words that are in no dictionary.
        backend: ``"rjieba"``, ``"jieba"`` or ``"auto"`` (rjieba when it can give jieba's output).
    """

    def __init__(self, terms: tuple[str, ...], hmm: bool = False, backend: str = "auto") -> None:
        self.terms = tuple(terms)
        self.hmm = hmm
        if backend == "auto":
            backend = os.environ.get(_BACKEND_ENV, "auto")
        if backend == "auto":
            backend = "jieba" if hmm or not _has_rjieba() else "rjieba"
        if backend not in ("jieba", "rjieba"):
            raise ValueError(f"unknown segmenter backend {backend!r} (rjieba, jieba or auto)")
        self.backend = backend
        self._impl: Any
        if backend == "rjieba":
            impl = _rjieba_class()()
            for term in self.terms:
                impl.add_word(term, TERM_FREQ, None)
            self._impl = impl
        else:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            impl = jieba.Tokenizer()
            impl.initialize()
            for term in self.terms:
                impl.add_word(term, freq=TERM_FREQ)
            self._impl = impl

    def cut(self, text: str) -> list[str]:
        """The words of ``text``, in order, white space and punctuation included."""
        if self.backend == "rjieba":
            return self._impl.cut(text, self.hmm)
        return self._impl.lcut(text, HMM=self.hmm)


def _has_rjieba() -> bool:
    """Whether rjieba is installed (found, not imported: importing it builds its unused default dictionary)."""
    return "rjieba" in sys.modules or importlib.util.find_spec("rjieba") is not None


_NATIVE = "rjieba.rjieba"  # the compiled module inside the rjieba package, which defines Jieba
_native_lock = threading.Lock()


def _rjieba_class() -> Any:
    """rjieba's ``Jieba`` class, from its compiled module, without running the package's ``__init__``.

    The module is registered under its own name, so a later ``import rjieba`` (which imports it as
    ``from .rjieba import Jieba``) finds it loaded instead of loading the library twice. Where the
    package is not laid out as expected, the ordinary import is used.
    """
    with _native_lock:  # two threads must not load the compiled module twice
        native = sys.modules.get(_NATIVE)
        if native is None and "rjieba" not in sys.modules:
            native = _load_native()
    if native is not None:
        return native.Jieba
    import rjieba

    return rjieba.Jieba


def _load_native() -> Any:
    """The compiled ``rjieba.rjieba`` module loaded from its file, or None when it cannot be found that way."""
    package = importlib.util.find_spec("rjieba")
    if package is None or not package.origin or not package.submodule_search_locations:
        return None
    folder = Path(package.origin).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"rjieba{suffix}"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(_NATIVE, path)
            if spec is None or spec.loader is None:
                return None
            module = importlib.util.module_from_spec(spec)
            sys.modules[_NATIVE] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(_NATIVE, None)
                raise
            return module if hasattr(module, "Jieba") else None
    return None


def segmenter(terms: tuple[str, ...], hmm: bool = False, backend: str = "auto") -> Segmenter:
    """The process's shared segmenter for these settings, built on first use (thread-safe).

    Args:
        terms: extra dictionary words.
        hmm: jieba's HMM for unknown words.
        backend: see :class:`Segmenter`.

    Returns:
        A ready Segmenter; the same object for the same arguments.
    """
    key = (tuple(terms), hmm, backend)
    found = _segmenters.get(key)
    if found is not None:
        return found
    with _lock:
        found = _segmenters.get(key)
        if found is None:
            found = Segmenter(key[0], hmm, backend)
            _segmenters[key] = found
    return found
