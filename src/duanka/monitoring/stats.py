"""Window statistics of scored traffic: counts and histograms only, so windows merge by addition.

A :class:`WindowStats` is what ``duanka monitor`` keeps of one window (a day, a surface): decision, label and
source counts per policy, the risk histogram per policy, and, from the posts whose text it reads, text length,
how much each normalization step changed (an evasion wave shows there first), the share of words and character
n-grams the model's vocabulary lacks, trade-term and rule hits, and the character n-grams of flagged posts (new
slang) against those of all posts. Its memory is bounded whatever the window's size: fixed histograms,
:class:`BoundedCounts` for n-grams, and a bottom-k sample of flagged posts for examples. Merging two
windows' statistics gives the statistics of their union (exactly, but for the approximate n-gram counts once
their capacity is reached), so Spark partitions and days can be merged in any order.

The reference profile written into every artifact at training is a ``WindowStats`` of the validation rows.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duanka.text import lexicon
from duanka.text.chars import HAN_CLASS
from duanka.text.normalize import STEPS, normalization_steps, normalize, normalize_lazily

__all__ = [
    "LENGTH_EDGES",
    "RISK_BINS",
    "SCHEMA",
    "SIGNAL_DECISIONS",
    "BoundedCounts",
    "Post",
    "TextView",
    "WindowStats",
    "slang_grams",
    "text_sampled",
]

SCHEMA = 1
RISK_BINS = 20  # equal-width bins on [0, 1]; PSI and Jensen–Shannon are computed on them
LENGTH_EDGES = (0, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 10**9)  # characters of the original text
SIGNAL_DECISIONS = frozenset({"review", "block"})
GRAM_SIZES = (2, 3, 4)  # character n-grams counted for new slang
TERM_CAPACITY = 50_000  # n-grams kept per counter; past twice this the least frequent are pruned
EXAMPLE_CAPACITY = 500  # flagged posts kept per window for examples (bottom-k by content hash)
EXAMPLE_CHARS = 300
_HASH_SPACE = 1 << 32
_GRAM_RUN = re.compile(f"[{HAN_CLASS}a-z0-9]+")
_ASCII = re.compile("[a-z0-9]")
SIGNAL_RATE_FACTOR = 4  # signal posts are read at four times the text rate (all of them from a rate of 0.25)


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def text_sampled(text: str, rate: float) -> bool:
    """Whether a post's text statistics are read at sampling ``rate``: by a hash of its content (stable across
    processes and Spark executors, so one process and a cluster read the same posts)."""
    return rate >= 1.0 or _hash(text) < rate * _HASH_SPACE


def slang_grams(normalized: str) -> set[str]:
    """The distinct character n-grams (:data:`GRAM_SIZES`) of a normalized text, within runs of Chinese, Latin
    letters and digits; n-grams made only of ASCII (numbers, handles, Latin words) are left out."""
    grams: set[str] = set()
    for run in _GRAM_RUN.findall(normalized):
        if run.isascii():
            continue
        length = len(run)
        if _ASCII.search(run) is None:  # all Chinese: every n-gram is kept
            for n in GRAM_SIZES:
                grams.update([run[i : i + n] for i in range(length - n + 1)])
        else:
            for n in GRAM_SIZES:
                grams.update([g for g in (run[i : i + n] for i in range(length - n + 1)) if not g.isascii()])
    return grams


class BoundedCounts:
    """Counts of strings that never hold more than ``2 * capacity`` keys (a lossy counter that merges).

    When the table passes twice its capacity, the ``capacity`` most frequent keys are kept and ``floor`` records
    the largest count dropped: a kept count is a lower bound of the true count, short by at most ``floor``, and a
    missing key's count is at most ``floor``. While the capacity is not reached the counts are exact.
    """

    __slots__ = ("capacity", "counts", "floor")

    def __init__(self, capacity: int = TERM_CAPACITY, counts: dict[str, int] | None = None, floor: int = 0) -> None:
        self.capacity = capacity
        self.counts: Counter[str] = Counter(counts or {})
        self.floor = floor

    def update(self, keys: Iterable[str]) -> None:
        self.counts.update(keys)
        if len(self.counts) > 2 * self.capacity:
            self._prune()

    def _prune(self) -> None:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        dropped = ranked[self.capacity :]
        if dropped:
            self.floor = max(self.floor, dropped[0][1])
        self.counts = Counter(dict(ranked[: self.capacity]))

    def merge(self, other: BoundedCounts) -> None:
        self.counts.update(other.counts)
        self.floor += other.floor
        if len(self.counts) > 2 * self.capacity:
            self._prune()

    def get(self, key: str) -> int:
        return self.counts.get(key, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "floor": self.floor, "counts": dict(sorted(self.counts.items()))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoundedCounts:
        return cls(int(data["capacity"]), {str(k): int(v) for k, v in data["counts"].items()}, int(data["floor"]))


@dataclass
class Post:
    """One scored post as the monitor reads it. ``text`` may be None (no text was kept); ``rules`` are the ids of
    the rules that fired; ``reviewed`` is a reviewer's label when the post was reviewed."""

    decision: str
    label: str
    risk: float
    policy: str = "default"
    source: str = "model"
    degraded: bool = False
    rules: tuple[str, ...] = ()
    text: str | None = None
    reviewed: str | None = None

    @property
    def signal(self) -> bool:
        """Flagged, or a rule fired, or a reviewer called it risky: the posts whose words new slang is sought in."""
        return self.decision in SIGNAL_DECISIONS or bool(self.rules) or self.reviewed not in (None, "normal")


class TextView:
    """What the monitor reads of a text: the model's vocabulary coverage and the trade terms (built once)."""

    def __init__(self, coverage: Any = None, terms: Iterable[str] | None = None) -> None:
        import ahocorasick

        self.coverage = coverage  # (normalized text) -> (words, known words, n-grams, known n-grams), or None
        # one-letter terms (k, q, v) fire on any Latin text: no signal of their own for monitoring
        self.terms = tuple(t for t in (terms if terms is not None else lexicon.trade_terms()) if len(t) > 1)
        self._automaton = None
        if self.terms:
            automaton = ahocorasick.Automaton()
            for term in self.terms:
                automaton.add_word(normalize(term), term)
            automaton.make_automaton()
            self._automaton = automaton

    def trade_terms(self, normalized: str) -> set[str]:
        if self._automaton is None:
            return set()
        return {term for _end, term in self._automaton.iter(normalized)}


def _length_bin(length: int) -> int:
    return int(np.searchsorted(LENGTH_EDGES, length, side="right")) - 1


@dataclass
class WindowStats:
    """The mergeable statistics of one window of scored posts (see the module docstring)."""

    name: str = ""
    rows: int = 0
    errors: int = 0
    text_rate: float = 1.0
    decisions: dict[str, Counter[str]] = field(default_factory=dict)  # policy -> decision -> posts
    risk: dict[str, np.ndarray] = field(default_factory=dict)  # policy -> RISK_BINS counts
    labels: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    rule_posts: Counter[str] = field(default_factory=Counter)
    reviewed: Counter[str] = field(default_factory=Counter)  # "reviewer label/model decision" -> posts
    text_rows: int = 0
    chars: int = 0
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(len(LENGTH_EDGES) - 1, dtype=np.int64))
    step_posts: np.ndarray = field(default_factory=lambda: np.zeros(len(STEPS), dtype=np.int64))
    step_chars: np.ndarray = field(default_factory=lambda: np.zeros(len(STEPS), dtype=np.int64))
    signal_step_posts: np.ndarray = field(default_factory=lambda: np.zeros(len(STEPS), dtype=np.int64))
    coverage: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))  # words, known, grams, known
    term_posts: Counter[str] = field(default_factory=Counter)
    signal_docs: int = 0
    signal_grams: BoundedCounts = field(default_factory=BoundedCounts)
    all_grams: BoundedCounts = field(default_factory=BoundedCounts)
    examples: dict[str, int] = field(default_factory=dict)  # flagged text -> content hash (bottom-k)

    # ------------------------------------------------------------------ adding posts
    def add_error(self, count: int = 1) -> None:
        self.rows += count
        self.errors += count

    def add_scores(self, policies: list[str], decisions: list[str], risks: Any) -> None:
        """Decision counts and risk histograms of a batch, vectorized (every row of the window passes here)."""
        risks = np.clip(np.asarray(risks, dtype=np.float64), 0.0, 1.0)
        bins = np.minimum((risks * RISK_BINS).astype(np.int64), RISK_BINS - 1)
        for policy in set(policies):
            mask = np.fromiter((p == policy for p in policies), dtype=bool, count=len(policies))
            hist = self.risk.setdefault(policy, np.zeros(RISK_BINS, dtype=np.int64))
            hist += np.bincount(bins[mask], minlength=RISK_BINS)
            self.decisions.setdefault(policy, Counter()).update(d for d, m in zip(decisions, mask) if m)

    def add(self, posts: list[Post], view: TextView) -> None:
        """Add a batch of posts: scores for all, text statistics for the sampled ones and every signal post."""
        self.rows += len(posts)
        self.add_scores([p.policy for p in posts], [p.decision for p in posts], [p.risk for p in posts])
        self.labels.update(p.label for p in posts)
        self.sources.update(p.source for p in posts)
        self.degraded += sum(p.degraded for p in posts)
        for post in posts:
            if post.rules:
                self.rule_posts.update(set(post.rules))
            if post.reviewed is not None:
                self.reviewed[f"{post.reviewed}/{post.decision}"] += 1
            if post.text is not None:
                self.add_text(post.text, post.signal, view)

    def add_text(self, text: str, signal: bool, view: TextView) -> None:
        """Text statistics of one post: all of them when sampled, the slang n-grams and example when a signal."""
        sampled = text_sampled(text, self.text_rate)
        signal = signal and text_sampled(text, self.text_rate * SIGNAL_RATE_FACTOR)
        if not (sampled or signal):
            return
        lazily = normalize_lazily(text)
        normalized = lazily.text
        grams = slang_grams(normalized)
        steps = np.asarray(normalization_steps(text, lazily), dtype=np.int64)
        if signal:  # an evasion wave shows first among the trade's own posts
            self.signal_docs += 1
            self.signal_grams.update(grams)
            self.signal_step_posts += steps > 0
            self._keep_example(text)
        if not sampled:
            return
        self.text_rows += 1
        self.all_grams.update(grams)
        self.chars += len(text)
        self.lengths[_length_bin(len(text))] += 1
        self.step_chars += steps
        self.step_posts += steps > 0
        if view.coverage is not None:
            self.coverage += np.asarray(view.coverage(normalized), dtype=np.int64)
        self.term_posts.update(view.trade_terms(normalized))

    def _keep_example(self, text: str) -> None:
        text = text[:EXAMPLE_CHARS]
        if text in self.examples:
            return
        self.examples[text] = _hash(text)
        if len(self.examples) > 2 * EXAMPLE_CAPACITY:
            self._trim_examples()

    def _trim_examples(self) -> None:
        kept = sorted(self.examples.items(), key=lambda kv: (kv[1], kv[0]))[:EXAMPLE_CAPACITY]
        self.examples = dict(kept)

    # ------------------------------------------------------------------ merging and files
    def merge(self, other: WindowStats) -> WindowStats:
        """Add ``other`` into this window (in place; returns self)."""
        if other.text_rate != self.text_rate and other.rows and self.rows:
            raise ValueError(f"cannot merge windows read at text rates {self.text_rate} and {other.text_rate}")
        if not self.rows:
            self.text_rate = other.text_rate
        for name in ("rows", "errors", "degraded", "text_rows", "chars", "signal_docs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("labels", "sources", "rule_posts", "reviewed", "term_posts"):
            getattr(self, name).update(getattr(other, name))
        for name in _ARRAYS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for policy, counts in other.decisions.items():
            self.decisions.setdefault(policy, Counter()).update(counts)
        for policy, hist in other.risk.items():
            self.risk[policy] = self.risk.get(policy, np.zeros(RISK_BINS, dtype=np.int64)) + hist
        self.signal_grams.merge(other.signal_grams)
        self.all_grams.merge(other.all_grams)
        self.examples.update(other.examples)
        self._trim_examples()
        return self

    def finished(self) -> WindowStats:
        """The statistics as they are written: the example sample cut to its capacity."""
        self._trim_examples()
        return self

    def to_dict(self) -> dict[str, Any]:
        self.finished()
        return {
            "schema": SCHEMA,
            "name": self.name,
            "rows": self.rows,
            "errors": self.errors,
            "text_rate": self.text_rate,
            "decisions": {p: dict(sorted(c.items())) for p, c in sorted(self.decisions.items())},
            "risk": {p: h.tolist() for p, h in sorted(self.risk.items())},
            **{name: dict(sorted(getattr(self, name).items())) for name in _COUNTERS},
            "degraded": self.degraded,
            "text_rows": self.text_rows,
            "chars": self.chars,
            **{name: getattr(self, name).tolist() for name in _ARRAYS},
            "signal_docs": self.signal_docs,
            "signal_grams": self.signal_grams.to_dict(),
            "all_grams": self.all_grams.to_dict(),
            "examples": sorted(self.examples, key=lambda t: (self.examples[t], t)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowStats:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"window statistics of schema {data.get('schema')!r}; this duanka reads schema {SCHEMA}")
        stats = cls(name=str(data["name"]), rows=int(data["rows"]), errors=int(data["errors"]))
        stats.text_rate = float(data["text_rate"])
        stats.decisions = {p: Counter(c) for p, c in data["decisions"].items()}
        stats.risk = {p: np.asarray(h, dtype=np.int64) for p, h in data["risk"].items()}
        for name in _COUNTERS:
            setattr(stats, name, Counter(data[name]))
        stats.degraded, stats.text_rows, stats.chars = int(data["degraded"]), int(data["text_rows"]), int(data["chars"])
        for name in _ARRAYS:
            setattr(stats, name, np.asarray(data[name], dtype=np.int64))
        stats.signal_docs = int(data["signal_docs"])
        stats.signal_grams = BoundedCounts.from_dict(data["signal_grams"])
        stats.all_grams = BoundedCounts.from_dict(data["all_grams"])
        stats.examples = {text: _hash(text) for text in data["examples"]}
        return stats

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WindowStats:
        return cls.from_dict(json.loads(text))


_COUNTERS = ("labels", "sources", "rule_posts", "reviewed", "term_posts")
_ARRAYS = ("lengths", "step_posts", "step_chars", "signal_step_posts", "coverage")
