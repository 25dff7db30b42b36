"""Cold start of the scorer alone, in fresh processes: ``python -m benchmarks.cold_start --runs 20``.

Each run is one ``benchmarks.probe`` process (the probe ``make bench`` uses): import, load the artifact, score
one post, then the whole holdout in one batch. The table gives the median, the fastest and the slowest run of
each phase (interpreter start-up, imports, artifact load, first post), the cold start (imports + load + first
post, the issue's figure) and peak RSS, against the targets of issue 23 (0.3 s, 150 MB). Writes
``cold_start.md`` and ``cold_start.json`` to ``--output-dir`` (default ``benchmarks/results``).

Runs are sequential and pinned to one CPU like ``make bench`` (``--no-pin`` to let them float); the load
average before and after is recorded, since another process on a 2-core machine slows a cold start visibly.

Bytecode: an installed package has its modules compiled (pip writes the ``.pyc`` files at install), but a source
checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (as this machine's environment sets) compiles every duanka module
from source in every process, about 15-20 ms of each cold start. So by default the probes share a bytecode cache
in a temporary folder (``PYTHONPYCACHEPREFIX``), filled by one unrecorded warm-up run, and measure what a deployed
worker pays; ``--no-bytecode-cache`` measures the checkout as it is.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import REPO_ROOT, pin_to_one_cpu, probe

TARGET_COLD_START_S = 0.3
TARGET_PEAK_RSS_MB = 150.0
# (key, title, unit) in table order
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("startup_s", "interpreter start-up (spawn to the probe's first line)", "s"),
    ("import_s", "imports (numpy, duanka.scoring.scorer)", "s"),
    ("artifact_load_s", "Scorer.load (read, verify, build)", "s"),
    ("first_post_s", "first post scored", "s"),
    ("cold_start_s", "cold start: imports + load + first post", "s"),
    ("cold_start_cpu_s", "CPU time of the cold start (user + system)", "s"),
    ("spawn_to_first_post_s", "spawn to first answer (start-up included)", "s"),
    ("batch_s", "then the whole holdout in one batch", "s"),
    ("rss_after_load_mb", "peak RSS after load", "MB"),
    ("rss_after_first_mb", "peak RSS after the first post", "MB"),
    ("peak_rss_mb", "peak RSS after the batch", "MB"),
)


def holdout_texts(path: Path) -> list[str]:
    """The ``text`` column of a labelled CSV file."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def summarize(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median, min and max of every figure over the runs."""
    return {
        key: {
            "median": statistics.median(run[key] for run in runs),
            "min": min(run[key] for run in runs),
            "max": max(run[key] for run in runs),
        }
        for key in runs[0]
    }


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _fmt(load: float | None) -> str:
    return "unknown" if load is None else f"{load:.2f}"


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def measure(
    kind: str, artifact: Path, texts_path: Path, count: int, bytecode_cache: Path | None
) -> list[dict[str, float]]:
    """``count`` probe runs, one after the other; with ``bytecode_cache``, after one unrecorded run that fills it."""
    overrides: dict[str, str | None] = {}
    if bytecode_cache is not None:
        overrides = {"PYTHONPYCACHEPREFIX": str(bytecode_cache), "PYTHONDONTWRITEBYTECODE": None}
        probe(kind, artifact, texts_path, overrides)
    return [probe(kind, artifact, texts_path, overrides) for _ in range(count)]


def render(record: dict[str, Any]) -> str:
    """The Markdown report of one measurement."""
    figures = record["summary"]
    cold, rss = figures["cold_start_s"]["median"], figures["peak_rss_mb"]["median"]
    lines = [
        f"# Cold start ({record['date']}, commit {record['commit']})",
        "",
        f"`python -m benchmarks.cold_start --runs {record['runs']}`: {record['runs']} fresh `benchmarks.probe` "
        f"processes, {record['kind']} on `{record['artifact']}`, {record['posts']} holdout posts in the batch; "
        f"{'pinned to one CPU' if record['pinned'] else 'not pinned'}; bytecode: {record['bytecode']}; "
        "1-minute load average "
        f"{_fmt(record['load_before'])} before, {_fmt(record['load_after'])} after (2 cores, shared).",
        "",
        "| phase | median | fastest | slowest |",
        "|---|---:|---:|---:|",
    ]
    for key, title, unit in FIGURES:
        if key in figures:
            f = figures[key]
            digits = 3 if unit == "s" else 0
            cells = [f"{f[stat]:.{digits}f} {unit}" for stat in ("median", "min", "max")]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Targets (issue 23): cold start ≤ {TARGET_COLD_START_S} s: median {cold:.3f} s, "
        f"{'met' if cold <= TARGET_COLD_START_S else 'NOT met'}; peak RSS ≤ {TARGET_PEAK_RSS_MB:.0f} MB: "
        f"median {rss:.0f} MB, {'met' if rss <= TARGET_PEAK_RSS_MB else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="fresh processes (default 20)")
    parser.add_argument("--artifact", type=Path, default=REPO_ROOT / "models" / "duanka")
    parser.add_argument("--kind", default="duanka_scorer", help="a benchmarks.contenders kind (default duanka_scorer)")
    parser.add_argument("--holdout", type=Path, default=REPO_ROOT / "data" / "holdout.csv")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the runs to one CPU")
    parser.add_argument("--no-bytecode-cache", action="store_true", help="every probe compiles duanka from source")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not (args.artifact / "manifest.json").is_file():
        parser.error(f"{args.artifact}: no artifact here (train one with `duanka train`)")
    texts = holdout_texts(args.holdout)
    pinned = None if args.no_pin else pin_to_one_cpu()
    load_before = _load_average()
    with tempfile.TemporaryDirectory() as workdir:
        texts_path = Path(workdir) / "texts.json"
        texts_path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        cache = None if args.no_bytecode_cache else Path(workdir) / "pycache"
        runs = measure(args.kind, args.artifact, texts_path, args.runs, cache)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": _commit(),
        "kind": args.kind,
        "artifact": os.path.relpath(args.artifact, REPO_ROOT),
        "posts": len(texts),
        "runs": args.runs,
        "pinned": pinned is not None,
        "bytecode": "compiled once, shared (as installed)" if not args.no_bytecode_cache else "environment as is",
        "load_before": load_before,
        "load_after": _load_average(),
        "python": platform.python_version(),
        "targets": {"cold_start_s": TARGET_COLD_START_S, "peak_rss_mb": TARGET_PEAK_RSS_MB},
        "summary": summarize(runs),
        "per_run": runs,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "cold_start.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    report = render(record)
    (args.output_dir / "cold_start.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
