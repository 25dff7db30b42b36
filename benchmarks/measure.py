"""Measurements: speed on one core, cold start and peak memory in a fresh process, quality, sampling."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.contenders import Predictor

__all__ = [
    "REPO_ROOT",
    "cold_start",
    "decision_summary",
    "latency",
    "pin_to_one_cpu",
    "quality",
    "stratified_sample",
    "throughput",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
QUALITY_KEYS = (
    "macro_f1",
    "card_trading_f1",
    "recruitment_lure_f1",
    "normal_f1",
    "normal_fpr",
    "card_trading_recall",
    "recruitment_lure_recall",
)


def pin_to_one_cpu() -> int | None:
    """Keep this process (and those it starts) on its first allowed CPU; None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def stratified_sample(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """``n`` rows of ``frame`` with the label shares kept (largest remainder), in file order."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    counts = frame["label"].value_counts()
    exact = counts * n / len(frame)
    quota = exact.astype(int).clip(lower=1)
    for label in (exact - exact.astype(int)).sort_values(ascending=False).index:
        if quota.sum() >= n:
            break
        quota[label] += 1
    parts = [frame[frame["label"] == label].sample(int(k), random_state=seed) for label, k in quota.items()]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def quality(predictor: Predictor, frame: pd.DataFrame) -> dict[str, Any]:
    """``duanka.evaluate.metrics`` of a contender's probabilities on ``frame``."""
    from duanka.evaluate import metrics

    proba = predictor.predict_proba(frame["text"].tolist())
    return metrics(frame["label"].to_numpy(), proba)


def decision_summary(scorer: Any, frame: pd.DataFrame) -> dict[str, float]:
    """For a ``Scorer``: how its decisions (not its argmax label) treat risky and normal rows."""
    from duanka.labels import NORMAL

    decisions = np.asarray([r.decision for r in scorer.score_batch(frame["text"].tolist())])
    risky = frame["label"].to_numpy() != NORMAL
    flagged = decisions != "pass"
    return {
        "risky_flagged_recall": float(flagged[risky].mean()) if risky.any() else 0.0,
        "risky_blocked_recall": float((decisions == "block")[risky].mean()) if risky.any() else 0.0,
        "normal_flagged_rate": float(flagged[~risky].mean()) if (~risky).any() else 0.0,
        "normal_blocked_rate": float((decisions == "block")[~risky].mean()) if (~risky).any() else 0.0,
    }


def throughput(predictor: Predictor, texts: list[str], repeats: int) -> dict[str, Any]:
    """Posts per second scoring all ``texts`` in one batch: one warm-up pass, median of ``repeats``."""
    predictor.predict_proba(texts)
    seconds = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        predictor.predict_proba(texts)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "posts": len(texts),
        "batch_s": seconds,
        "batch_s_median": median,
        "posts_per_s": len(texts) / median,
    }


def latency(predictor: Predictor, texts: list[str], posts: int, repeats: int) -> dict[str, Any]:
    """Single-post latency over at least ``posts`` calls (cycling through ``texts``), after a warm-up.

    p50 and p99 are medians over ``repeats`` passes.
    """
    count = max(posts, len(texts))
    for text in texts[:20]:
        predictor.predict_proba([text])
    p50s, p99s, means = [], [], []
    for _ in range(repeats):
        gc.collect()
        times = np.empty(count)
        for i in range(count):
            text = [texts[i % len(texts)]]
            started = time.perf_counter()
            predictor.predict_proba(text)
            times[i] = time.perf_counter() - started
        p50s.append(float(np.percentile(times, 50)) * 1000)
        p99s.append(float(np.percentile(times, 99)) * 1000)
        means.append(float(times.mean()) * 1000)
    return {
        "posts": count,
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "mean_ms": statistics.median(means),
    }


def cold_start(kind: str, directory: Path, texts_path: Path, repeats: int) -> dict[str, Any]:
    """Load time and peak memory of a fresh ``benchmarks.probe`` process; medians over ``repeats`` runs."""
    runs = [_probe_once(kind, directory, texts_path) for _ in range(repeats)]
    keys = runs[0].keys()
    summary: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in keys}
    summary["runs"] = len(runs)
    return summary


def _probe_once(kind: str, directory: Path, texts_path: Path) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "benchmarks.probe", kind, str(directory), str(texts_path)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"probe for {kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
