"""The reference profile an artifact carries: the window statistics of its validation rows, written at training.

``duanka monitor`` compares traffic with it: how the model's risk and decisions were distributed on the rows it
was validated on (out-of-fold), and what that text looked like (length, normalization steps, vocabulary coverage,
trade terms, the n-grams of its risky posts). Old artifacts have none; the monitor then says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duanka.monitoring.stats import TextView, WindowStats
from duanka.scoring.artifact import verified_bytes

__all__ = ["REFERENCE_FILE", "read_reference", "reference_profile"]

REFERENCE_FILE = "monitor_reference.json"


def _decisions(risk: np.ndarray, review: float, block: float) -> list[str]:
    return np.where(risk >= block, "block", np.where(risk >= review, "review", "pass")).tolist()


def reference_profile(
    texts: Sequence[str],
    risk: np.ndarray,
    predicted: Sequence[str],
    risky: Sequence[bool],
    policies: dict[str, dict[str, Any]],
    coverage: Callable[[str], tuple[int, int, int, int]] | None,
) -> WindowStats:
    """The statistics of the validation rows: ``risk`` out-of-fold (as the decisions saw it), ``predicted`` the
    out-of-fold labels, ``risky`` the true labels' riskiness (risky rows are the reference's signal posts, whose
    n-grams new slang is compared with), ``policies`` each policy's ``review`` and ``block`` thresholds."""
    stats = WindowStats(name="reference (validation rows)")
    stats.rows = len(texts)
    risk = np.asarray(risk, dtype=np.float64)
    for name, policy in sorted(policies.items()):
        stats.add_scores([name] * len(texts), _decisions(risk, policy["review"], policy["block"]), risk)
    stats.labels.update(predicted)
    stats.sources["model"] = len(texts)
    view = TextView(coverage)
    for text, is_risky in zip(texts, risky):
        stats.add_text(text, bool(is_risky), view)
    return stats.finished()


def read_reference(directory: str | Path, manifest: dict[str, Any]) -> WindowStats | None:
    """The artifact's reference profile (hash checked), or None for an artifact written without one."""
    if REFERENCE_FILE not in manifest.get("files", {}):
        return None
    return WindowStats.from_json(verified_bytes(Path(directory), manifest, REFERENCE_FILE).decode("utf-8"))
