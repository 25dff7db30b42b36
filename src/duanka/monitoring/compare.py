"""Compare windows of scored traffic with the one before and with the training reference: rates, drift, new slang.

Every alert threshold is a constant here, with its reason:

* **Risk distribution** (per policy): the population stability index (PSI) on :data:`~duanka.monitoring.stats.RISK_BINS`
  bins, with the credit-scoring convention (Siddiqi, *Credit Risk Scorecards*, 2006): below 0.1 stable, 0.1–0.25 a
  moderate shift (``watch``), 0.25 and above a major one (``alert``). Two samples of one distribution have an
  expected PSI of about ``(bins - 1) * (1/n1 + 1/n2)``; a shift is called only when the PSI is also above three
  times that noise floor, so small windows do not raise alerts by chance. Jensen–Shannon divergence (base 2,
  0–1) is reported beside it.
* **Decision rates**: a rate moved when the 99% Wilson intervals of the two windows do not overlap (``watch``),
  and by a factor of 2 or more either way as well (``alert``).
* **Normalization steps** (an evasion wave: near-forms, separators, traditional or full-width characters): the share
  of posts a step changed, among all posts and among the signal posts (where the trade's own evasion shows first),
  moved when the 99% intervals do not overlap (``watch``); it rose by a factor of 1.5 or
  more and by at least one percentage point (``alert``).
* **Post length**: PSI of the length histograms against the previous window, called (``watch``) from 0.1 and
  above the noise floor, as for risk.
* **Vocabulary coverage**: the out-of-vocabulary share of words or character n-grams rose by 5 percentage points or
  more (``watch``): the text is drifting away from what the model was trained on.
* **New slang**: character n-grams ranked by Dunning's log-likelihood ratio G² (signed: only rises count) between
  this window's signal posts (flagged, rule hits, or reviewed risky) and the previous window's (the first window:
  the training reference's risky posts), kept when G² ≥ 10.83 (p < 0.001 for one degree of freedom), in at least
  :data:`MIN_SLANG_POSTS` signal posts, and unknown to the model or weighted near zero by it (``watch``).
* **Stopped firing**: a trade term or rule that the previous window's rate says should appear in at least
  :data:`MIN_EXPECTED` posts and appears in none (``watch``).
* **Rules answering**: any post scored ``degraded`` (the model was missing or broken, rules answered): ``alert``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from duanka.intervals import wilson_interval
from duanka.monitoring.stats import RISK_BINS, WindowStats
from duanka.text.normalize import STEPS, normalize

__all__ = [
    "G2_CRITICAL",
    "PSI_ALERT",
    "PSI_WATCH",
    "Comparison",
    "compare_windows",
    "g2",
    "js_divergence",
    "psi",
    "wilson",
]

PSI_WATCH, PSI_ALERT = 0.1, 0.25
NOISE_FACTOR = 3.0
Z99 = 2.5758  # two-sided 99%
RATE_FACTOR = 2.0
STEP_FACTOR, STEP_MIN_RISE = 1.5, 0.01
OOV_RISE = 0.05
G2_CRITICAL = 10.83
MIN_SLANG_POSTS = 5
MIN_EXPECTED = 20
SLANG_LISTED = 20
EXAMPLES = 3
LEVELS = ("ok", "watch", "alert")


def wilson(k: int, n: int, z: float = Z99) -> tuple[float, float]:
    """The Wilson score interval of ``k / n`` at 99% (``(0, 1)`` when ``n`` is 0)."""
    return wilson_interval(k, n, z)


def _shares(counts: np.ndarray, smoothing: float = 0.5) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64) + smoothing  # an empty bin would make PSI infinite
    return counts / counts.sum()


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two histograms (counts), bins smoothed by half a count."""
    p, q = _shares(expected), _shares(actual)
    return float(np.sum((q - p) * np.log(q / p)))


def js_divergence(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, between 0 and 1) of two histograms (counts)."""
    p, q = _shares(a, 1e-9), _shares(b, 1e-9)
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def psi_noise(n1: int, n2: int, bins: int = RISK_BINS) -> float:
    """The PSI two samples of one distribution show by chance, about ``(bins - 1) * (1/n1 + 1/n2)``."""
    if n1 <= 0 or n2 <= 0:
        return math.inf
    return (bins - 1) * (1 / n1 + 1 / n2)


def g2(a: int, n: int, b: int, m: int) -> float:
    """Dunning's log-likelihood ratio for ``a`` of ``n`` against ``b`` of ``m``; negative when ``a/n < b/m``."""

    def term(observed: float, expected: float) -> float:
        return observed * math.log(observed / expected) if observed > 0 and expected > 0 else 0.0

    total, hits = n + m, a + b
    if n <= 0 or m <= 0 or hits == 0 or hits == total:
        return 0.0
    value = 2 * (
        term(a, n * hits / total)
        + term(n - a, n * (total - hits) / total)
        + term(b, m * hits / total)
        + term(m - b, m * (total - hits) / total)
    )
    return value if a / n >= b / m else -value


@dataclass
class Finding:
    level: str
    reason: str


@dataclass
class Comparison:
    """One window compared: its figures (``to_dict`` for JSON) and the verdict with its reasons."""

    name: str
    figures: dict[str, Any]
    findings: list[Finding]

    @property
    def verdict(self) -> str:
        return max((f.level for f in self.findings), key=LEVELS.index, default="ok")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "reasons": [f"{f.level}: {f.reason}" for f in self.findings],
            **self.figures,
        }


def _rate(k: int, n: int) -> dict[str, float]:
    low, high = wilson(k, n)
    return {"count": k, "of": n, "share": k / n if n else 0.0, "low": low, "high": high}


def _moved(now: dict[str, float], before: dict[str, float]) -> bool:
    return now["of"] > 0 and before["of"] > 0 and (now["low"] > before["high"] or now["high"] < before["low"])


def _decision_rates(window: WindowStats) -> dict[str, dict[str, dict[str, float]]]:
    rates = {}
    for policy, counts in sorted(window.decisions.items()):
        total = sum(counts.values())
        rates[policy] = {d: _rate(counts.get(d, 0), total) for d in ("pass", "review", "block")}
    return rates


def _compare_rates(rates: dict, before: dict, findings: list[Finding]) -> None:
    for policy, decisions in rates.items():
        for decision in ("review", "block"):
            now, then = decisions[decision], before.get(policy, {}).get(decision)
            if then is None or not _moved(now, then):
                continue
            ratio = (now["share"] + 1e-9) / (then["share"] + 1e-9)
            level = "alert" if ratio >= RATE_FACTOR or ratio <= 1 / RATE_FACTOR else "watch"
            findings.append(
                Finding(
                    level, f"{policy}: {decision} rate {then['share']:.2%} → {now['share']:.2%} (99% intervals apart)"
                )
            )


def _risk_drift(window: WindowStats, previous: WindowStats | None, reference: WindowStats | None) -> dict[str, Any]:
    drift = {}
    for policy, hist in sorted(window.risk.items()):
        entry: dict[str, Any] = {"histogram": hist.tolist()}
        for name, other in (("previous", previous), ("reference", reference)):
            if other is None:
                continue
            base = other.risk.get(policy, other.risk.get("default"))
            if base is None or not base.sum() or not hist.sum():
                continue
            entry[f"psi_{name}"] = psi(base, hist)
            entry[f"js_{name}"] = js_divergence(base, hist)
            entry[f"psi_noise_{name}"] = psi_noise(int(base.sum()), int(hist.sum()))
        drift[policy] = entry
    return drift


def _compare_risk(drift: dict[str, Any], findings: list[Finding]) -> None:
    for policy, entry in drift.items():
        value = entry.get("psi_previous")
        if value is None or value < max(PSI_WATCH, NOISE_FACTOR * entry["psi_noise_previous"]):
            continue
        level = "alert" if value >= PSI_ALERT else "watch"
        findings.append(
            Finding(level, f"{policy}: risk distribution shifted, PSI {value:.3f} against the previous window")
        )


def _input_figures(window: WindowStats) -> dict[str, Any]:
    n = window.text_rows
    words, known_words, grams, known_grams = (int(v) for v in window.coverage)
    return {
        "posts_read": n,
        "mean_length": window.chars / n if n else 0.0,
        "length_histogram": window.lengths.tolist(),
        "steps": {step: _rate(int(window.step_posts[i]), n) for i, step in enumerate(STEPS)},
        "signal_steps": {
            step: _rate(int(window.signal_step_posts[i]), window.signal_docs) for i, step in enumerate(STEPS)
        },
        "step_chars_per_1000": {
            step: 1000 * int(window.step_chars[i]) / window.chars if window.chars else 0.0
            for i, step in enumerate(STEPS)
        },
        "oov_words": 1 - known_words / words if words else 0.0,
        "oov_char_ngrams": 1 - known_grams / grams if grams else 0.0,
    }


def _compare_input(now: dict[str, Any], before: dict[str, Any] | None, findings: list[Finding]) -> None:
    if before is None:
        return
    for key, whose in (("steps", "posts"), ("signal_steps", "signal posts")):
        for step in STEPS:
            a, b = now[key][step], before[key][step]
            if not _moved(a, b):
                continue
            rose = a["share"] >= STEP_FACTOR * b["share"] and a["share"] - b["share"] >= STEP_MIN_RISE
            findings.append(
                Finding(
                    "alert" if rose else "watch",
                    f"{step}: share of {whose} {b['share']:.2%} → {a['share']:.2%} (99% intervals apart)",
                )
            )
    previous_lengths, lengths = np.asarray(before["length_histogram"]), np.asarray(now["length_histogram"])
    if previous_lengths.sum() and lengths.sum():
        value = psi(previous_lengths, lengths)
        now["length_psi_previous"] = value
        noise = psi_noise(int(previous_lengths.sum()), int(lengths.sum()), len(lengths))
        if value >= max(PSI_WATCH, NOISE_FACTOR * noise):
            findings.append(Finding("watch", f"post length distribution shifted, PSI {value:.3f}"))
    for key, what in (("oov_words", "words"), ("oov_char_ngrams", "character n-grams")):
        if before["posts_read"] and now["posts_read"] and now[key] - before[key] >= OOV_RISE:
            findings.append(Finding("watch", f"out-of-vocabulary {what} {before[key]:.1%} → {now[key]:.1%}"))


def _without_parts(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop an n-gram that is mostly part of a longer candidate (its posts at least 80% of the shorter one's)."""
    kept = []
    for entry in ranked:
        term = entry["term"]
        if any(
            term in other["term"] and other["term"] != term and other["posts"] >= 0.8 * entry["posts"]
            for other in ranked
        ):
            continue
        kept.append(entry)
    return kept


def _slang(
    window: WindowStats,
    earlier: list[WindowStats],
    known_weight: Callable[[str], float] | None,
    weight_floor: float,
) -> list[dict[str, Any]]:
    n = window.signal_docs
    m = sum(w.signal_docs for w in earlier)
    if n < MIN_SLANG_POSTS or m == 0:
        return []
    ranked = []
    for term, posts in window.signal_grams.counts.items():
        if posts < MIN_SLANG_POSTS:
            continue
        before = sum(w.signal_grams.get(term) for w in earlier)
        score = g2(posts, n, before, m)
        if score < G2_CRITICAL:
            continue
        weight = known_weight(term) if known_weight is not None else 0.0
        if weight > weight_floor:
            continue
        ranked.append(
            {
                "term": term,
                "g2": round(score, 2),
                "posts": posts,
                "share": posts / n,
                "earlier_share": before / m,
                "model_weight": round(weight, 4),
                "in_all_posts": window.all_grams.get(term) / window.text_rows if window.text_rows else None,
            }
        )
    ranked.sort(key=lambda e: (-e["g2"], e["term"]))
    ranked = _without_parts(ranked[: SLANG_LISTED * 5])[:SLANG_LISTED]
    if ranked:
        normalized = [(text, normalize(text)) for text in window.examples]
        for entry in ranked:
            entry["examples"] = [text for text, norm in normalized if entry["term"] in norm][:EXAMPLES]
    return ranked


def _stopped(window: WindowStats, previous: WindowStats | None) -> list[dict[str, Any]]:
    if previous is None:
        return []
    stopped = []
    for kind, counts, base, n_now, n_before in (
        ("trade term", window.term_posts, previous.term_posts, window.text_rows, previous.text_rows),
        ("rule", window.rule_posts, previous.rule_posts, window.rows - window.errors, previous.rows - previous.errors),
    ):
        if not n_before:
            continue
        for name, count in base.items():
            expected = count / n_before * n_now
            if expected >= MIN_EXPECTED and counts.get(name, 0) == 0:
                stopped.append({"kind": kind, "name": name, "expected": round(expected, 1), "seen": 0})
    return stopped


def compare_windows(
    windows: Sequence[WindowStats],
    reference: WindowStats | None = None,
    known_weight: Callable[[str], float] | None = None,
    weight_floor: float = 0.0,
) -> list[Comparison]:
    """Compare each window with the one before it (and the reference), in order.

    Args:
        windows: the windows, oldest first.
        reference: the artifact's reference profile (validation rows), when it has one.
        known_weight: a term's largest absolute weight in the model (0 when the vocabulary lacks it).
        weight_floor: terms weighted above this are known to the model and are not new slang.
    """
    comparisons = []
    reference_input = _input_figures(reference) if reference is not None and reference.text_rows else None
    previous: WindowStats | None = None
    previous_figures: dict[str, Any] | None = None
    for window in windows:
        findings: list[Finding] = []
        rates = _decision_rates(window)
        figures: dict[str, Any] = {
            "rows": window.rows,
            "errors": window.errors,
            "text_rate": window.text_rate,
            "degraded": window.degraded,
            "rates": rates,
            "labels": {k: _rate(v, window.rows - window.errors) for k, v in sorted(window.labels.items())},
            "sources": dict(sorted(window.sources.items())),
            "reviewed": dict(sorted(window.reviewed.items())),
            "risk": _risk_drift(window, previous, reference),
            "input": _input_figures(window),
            "reference_input": reference_input,
            "signal_posts": window.signal_docs,
        }
        if window.degraded:
            findings.append(Finding("alert", f"{window.degraded} posts scored by rules only (model missing or broken)"))
        if previous is not None and previous_figures is not None:
            _compare_rates(rates, previous_figures["rates"], findings)
            _compare_risk(figures["risk"], findings)
            _compare_input(figures["input"], previous_figures["input"], findings)
        # new slang rises against the previous window; the first window has only the training reference to go by
        earlier = [previous] if previous is not None else ([reference] if reference is not None else [])
        figures["slang"] = _slang(window, earlier, known_weight, weight_floor)
        if figures["slang"]:
            top = ", ".join(e["term"] for e in figures["slang"][:5])
            findings.append(Finding("watch", f"{len(figures['slang'])} new slang candidates: {top}"))
        figures["stopped"] = _stopped(window, previous)
        if figures["stopped"]:
            names = ", ".join(s["name"] for s in figures["stopped"][:5])
            findings.append(Finding("watch", f"{len(figures['stopped'])} terms or rules stopped firing: {names}"))
        if previous is None:
            figures["first"] = True
        comparisons.append(Comparison(window.name, figures, findings))
        previous, previous_figures = window, figures
    return comparisons
