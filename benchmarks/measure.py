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
    "batch_pass",
    "cold_summary",
    "decision_summary",
    "latency",
    "latency_pass",
    "pin_to_one_cpu",
    "probe",
    "quality",
    "stratified_sample",
    "throughput",
    "warm_up",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


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
    """``duanka.training.evaluate.metrics`` of a contender's probabilities on ``frame``."""
    from duanka.training.evaluate import metrics

    proba = predictor.predict_proba(frame["text"].tolist())
    return metrics(frame["label"].to_numpy(), proba).to_dict()


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


def warm_up(predictor: Predictor, texts: list[str]) -> None:
    """One batch pass and a few single posts, so lazy initialization is not timed."""
    predictor.predict_proba(texts)
    for text in texts[:20]:
        predictor.predict_proba([text])


def batch_pass(predictor: Predictor, texts: list[str]) -> float:
    """Seconds to score all ``texts`` in one call."""
    gc.collect()
    started = time.perf_counter()
    predictor.predict_proba(texts)
    return time.perf_counter() - started


def latency_pass(predictor: Predictor, texts: list[str], count: int) -> np.ndarray:
    """Seconds of each of ``count`` single-post calls, cycling through ``texts``."""
    gc.collect()
    times = np.empty(count)
    for i in range(count):
        text = [texts[i % len(texts)]]
        started = time.perf_counter()
        predictor.predict_proba(text)
        times[i] = time.perf_counter() - started
    return times


def throughput(seconds: list[float], posts: int) -> dict[str, Any]:
    """Posts per second from the batch passes: the median pass, with every pass kept."""
    median = statistics.median(seconds)
    return {
        "posts": posts,
        "batch_s": seconds,
        "batch_s_median": median,
        "posts_per_s": posts / median,
        "posts_per_s_best": posts / min(seconds),
    }


def latency(passes: list[np.ndarray]) -> dict[str, Any]:
    """p50, p99 and mean single-post latency in ms: per pass, then the median over passes."""

    def median_of(fn: Any) -> float:
        return statistics.median(float(fn(times)) * 1000 for times in passes)

    return {
        "posts": len(passes[0]),
        "passes": len(passes),
        "p50_ms": median_of(lambda t: np.percentile(t, 50)),
        "p99_ms": median_of(lambda t: np.percentile(t, 99)),
        "mean_ms": median_of(np.mean),
    }


def cold_summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Medians of the figures of several probe runs."""
    summary: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    summary["runs"] = len(runs)
    return summary


def probe(
    kind: str, directory: Path, texts_path: Path, env_overrides: dict[str, str | None] | None = None
) -> dict[str, float]:
    """Cold start and peak memory of one fresh ``benchmarks.probe`` process (see that module), plus ``startup_s``
    (spawn to the probe's first line, by the wall clock) and ``spawn_to_first_post_s``; ``env_overrides`` sets (or,
    with None, removes) environment variables of the probe."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for name, value in (env_overrides or {}).items():  # None removes the variable
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    command = [sys.executable, "-m", "benchmarks.probe", kind, str(directory), str(texts_path)]
    spawned = time.time()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"probe for {kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    # the interpreter's own start-up (and finding the probe module), which no timer inside the probe sees
    report["startup_s"] = max(0.0, report.pop("started_at") - spawned)
    report["spawn_to_first_post_s"] = report["startup_s"] + report["cold_start_s"]
    return report
