"""``duanka spark monitor``: the monitor's window statistics computed on a cluster, merged on the driver.

Each task reads its partition of ``duanka spark score`` output (the ``duanka`` struct and the kept columns, the
text among them) with the same :func:`duanka.adapters.monitor.post_of` and
:class:`~duanka.monitoring.stats.WindowStats` as one process, and returns its statistics as one JSON string per
window; the driver merges them (counts add; see :meth:`WindowStats.merge`). Which posts' text is read depends on
a hash of the text, not on the partitioning, so the cluster reads the same posts one process would.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from duanka.adapters.monitor import MonitorOptions, post_of, window_name
from duanka.adapters.spark import RESULT_COLUMN, _resolve_model, _ship_artifact, worker_artifact
from duanka.errors import DataError
from duanka.monitoring.stats import TextView, WindowStats

__all__ = ["monitor_dataframe"]

_VIEWS: dict[str, TextView] = {}


def _worker_view(artifact_name: str | None, model: str | None) -> TextView:
    """The TextView of this Python worker (the shipped artifact's vocabulary), built on first use."""
    key = artifact_name or model or ""
    if key not in _VIEWS:
        coverage = None
        if model is not None:
            from duanka.scoring.artifact import read_artifact

            coverage = read_artifact(worker_artifact(artifact_name, model)).model.coverage
        _VIEWS[key] = TextView(coverage)
    return _VIEWS[key]


def _stats_of_batches(
    batches: Iterable[Any], *, artifact_name: str | None, model: str | None, options: MonitorOptions, rate: float,
    name: str,
) -> Iterator[Any]:  # fmt: skip
    """The ``mapInArrow`` function: one row ``(window, stats JSON)`` per window seen in the partition."""
    import pyarrow as pa

    view = _worker_view(artifact_name, model)
    windows: dict[str, WindowStats] = {}
    for batch in batches:
        posts: dict[str, list[Any]] = {}
        for row in batch.to_pylist():
            result = row.pop(RESULT_COLUMN, None) or {}
            line = {**row, **result}
            window = window_name(name, line, None, options.by)
            if window not in windows:
                windows[window] = WindowStats(name=window, text_rate=rate)
            try:
                posts.setdefault(window, []).append(post_of(line, None, options, {}))
            except (ValueError, KeyError, TypeError):
                windows[window].add_error()
        for window, found in posts.items():
            windows[window].add(found, view)
    names = list(windows)
    yield pa.RecordBatch.from_arrays(
        [pa.array(names, pa.string()), pa.array([windows[n].to_json() for n in names], pa.string())],
        names=["window", "stats"],
    )


def monitor_dataframe(
    df: Any, model: str | None = None, options: MonitorOptions | None = None, name: str = "all"
) -> list[WindowStats]:
    """The window statistics of a scored DataFrame (``duanka spark score`` output), merged on the driver.

    Args:
        df: a DataFrame with the ``duanka`` struct column and, to read text, the text column kept.
        model: artifact directory or ``models:/`` URI, for the vocabulary coverage (None: no coverage).
        options: ``by`` cuts windows by a column, ``text_column`` names the text, ``text_rate`` the sample
            (default 1.0 here: a cluster has the cores to read every post).
        name: the window's name when ``by`` is not given.

    Raises:
        DataError: the DataFrame has no ``duanka`` column, or no ``by`` column.
    """
    options = options or MonitorOptions()
    for column in (RESULT_COLUMN, options.by):
        if column is not None and column not in df.columns:
            raise DataError(f"no column {column!r} in the DataFrame (columns: {', '.join(df.columns)})")
    directory = str(_resolve_model(model)) if model else None
    artifact_name = _ship_artifact(df.sparkSession, Path(directory)) if directory else None
    rate = options.text_rate if options.text_rate is not None else 1.0
    work = functools.partial(
        _stats_of_batches, artifact_name=artifact_name, model=directory, options=options, rate=rate, name=name
    )
    merged: dict[str, WindowStats] = {}
    for row in df.mapInArrow(work, "window string, stats string").collect():
        stats = WindowStats.from_json(row["stats"])
        merged[row["window"]] = merged[row["window"]].merge(stats) if row["window"] in merged else stats
    return [merged[n].finished() for n in sorted(merged)]
