"""`duanka train` time, memory and quality by size, for both engines: ``python -m benchmarks.train_scaling``.

Training files of several sizes are built from ``data/posts.csv``: copy 0 is the file itself, copy ``k`` is
every row rewritten by ``duanka.training.augment.obfuscated_copy`` with seed ``k`` and a copy marker (第k批), in the
group of the row it was rewritten from (variants of one post share a group, so no held-out or cross-validation
group has a sibling in training); rows whose normalized text repeats are dropped, as ``duanka data check`` demands.
A smaller size is the head of the largest. Each (engine, size) is trained by ``duanka train --engine E`` in a fresh
process under ``/usr/bin/time -v`` (wall time, CPU time, peak resident memory), tracked in a temporary MLflow store,
and evaluated on ``data/holdout.csv``; the default engine only up to ``--default-max-rows`` (it holds every row and
cross-validates: about an hour and 20 GB at 1M). Both engines also train on ``data/posts.csv`` itself, the quality
comparison that matters. Results go to ``benchmarks/results/train_scaling.md``/``.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import save_report

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
POSTS = REPO_ROOT / "data" / "posts.csv"
HOLDOUT = REPO_ROOT / "data" / "holdout.csv"


def replicated_frame(rows: int) -> Any:
    """``rows`` labeled rows built from ``data/posts.csv`` (see the module docstring), as a DataFrame.

    A smaller size is the head of a larger one, so one frame built for the largest size serves every size.
    """
    import pandas as pd

    from duanka.labels import LABELS
    from duanka.text.normalize import normalize
    from duanka.training.augment import obfuscated_copy

    base = pd.read_csv(POSTS, dtype=str, keep_default_na=False)
    frames, seen, total, k = [], set(), 0, 0
    while total < rows:
        copy = base.copy() if k == 0 else obfuscated_copy(base, seed=k, labels=LABELS)
        if k:
            copy["id"] = copy["id"] + f"-r{k}"
            copy["text"] = f"第{k}批 " + copy["text"]
        normalized = copy["text"].map(normalize)
        fresh = ~normalized.duplicated() & ~normalized.isin(seen)  # only the new copy is normalized
        seen.update(normalized[fresh])
        frames.append(copy[fresh])
        total += int(fresh.sum())
        k += 1
    return pd.concat(frames, ignore_index=True).head(rows)


def replicated(rows: int, path: Path) -> None:
    """Write ``rows`` labeled rows built from ``data/posts.csv`` (see the module docstring) to ``path``."""
    replicated_frame(rows).to_csv(path, index=False)


def train_once(data: Path, work: Path, engine: str = "default") -> dict[str, Any]:
    """``duanka train`` on ``data`` in a fresh process: wall s, CPU s, peak RSS MB, training s, holdout figures."""
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "duanka.cli",
        "train",
        "--engine",
        engine,
        "--data",
        str(data),
        "--holdout",
        str(HOLDOUT),
        "--output",
        str(work / "model"),
        "--no-register",
        "--quiet",
        "--tracking-uri",
        f"sqlite:///{work}/mlflow.db",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"duanka train failed on {data}:\n{done.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.split(":"))))
    cpu = sum(
        float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", done.stderr).group(1)) for kind in ("User", "System")
    )
    trained = re.search(r"training took ([\d.]+)s", done.stdout)
    holdout = re.search(r"^holdout: macro-F1 ([\d.]+).*normal FPR ([\d.]+)", done.stdout, re.MULTILINE)
    return {
        "engine": engine,
        "wall_s": round(seconds, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak_kb / 1024),
        "train_s": float(trained.group(1)) if trained else None,
        "holdout_macro_f1": float(holdout.group(1)) if holdout else None,
        "holdout_normal_fpr": float(holdout.group(2)) if holdout else None,
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        "# `duanka train` at growing sizes, both engines",
        "",
        f"- date: {results['date']}; machine: {results['machine']}",
        "- each (engine, size) trained in a fresh process (`/usr/bin/time -v`) with the default config: holdout",
        "  evaluation and MLflow logging (temporary store, no registration) included in wall time",
        "- rows beyond `data/posts.csv` are obfuscated copies of its rows in their source's group (module docstring)",
        "- CPU s (user + system) is the figure to trust on a shared machine: wall time grows with the load average",
        "",
        "| engine | rows | wall s | CPU s | training s | peak RSS MB | holdout macro-F1 | holdout normal FPR | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["runs"]:
        rows = "posts.csv " + f"{run['rows']:,}" if run.get("corpus") else f"{run['rows']:,}"
        lines.append(
            f"| {run['engine']} | {rows} | {run['wall_s']:.0f} | {run['cpu_s']:.0f} | {run['train_s']:.0f} "
            f"| {run['peak_rss_mb']:,} | {run['holdout_macro_f1']:.4f} | {run['holdout_normal_fpr']:.4f} "
            f"| {run['load_after']:.2f} |"
        )
    corpus = {run["engine"]: run for run in results["runs"] if run.get("corpus")}
    if len(corpus) == 2:
        delta = corpus["stream"]["holdout_macro_f1"] - corpus["default"]["holdout_macro_f1"]
        lines += [
            "",
            f"On `data/posts.csv` the stream engine's holdout macro-F1 is {delta:+.4f} against the default's.",
        ]
    for engine, fit in (results.get("fits") or {}).items():
        if fit:
            lines.append(
                f"\n{engine}: least-squares line through the sizes: CPU s ≈ {fit['s_intercept']:.0f} + "
                f"{fit['s_per_1k']:.2f} per 1,000 rows; peak MB ≈ {fit['mb_intercept']:.0f} + {fit['mb_per_1k']:.2f} "
                f"per 1,000 rows."
            )
    return "\n".join(lines) + "\n"


def linear_fit(sizes: list[dict[str, Any]]) -> dict[str, float] | None:
    if len(sizes) < 2:
        return None
    import numpy as np

    rows = np.array([s["rows"] for s in sizes], dtype=float)
    s_slope, s_intercept = np.polyfit(rows, [s["cpu_s"] for s in sizes], 1)
    mb_slope, mb_intercept = np.polyfit(rows, [s["peak_rss_mb"] for s in sizes], 1)
    return {
        "s_per_1k": s_slope * 1000,
        "s_intercept": s_intercept,
        "mb_per_1k": mb_slope * 1000,
        "mb_intercept": mb_intercept,
        "at_1m_s": s_intercept + s_slope * 1e6,
        "at_1m_mb": mb_intercept + mb_slope * 1e6,
        "at_10m_s": s_intercept + s_slope * 1e7,
        "at_10m_mb": mb_intercept + mb_slope * 1e7,
    }


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from benchmarks.spark_bench import machine

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,40000,100000,1000000", help="comma-separated row counts")
    parser.add_argument("--engines", default="default,stream", help="comma-separated: default, stream")
    parser.add_argument("--default-max-rows", type=int, default=40_000, help="largest size the default engine runs")
    parser.add_argument("--no-corpus", action="store_true", help="skip both engines on data/posts.csv itself")
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    sizes = [int(n) for n in args.sizes.split(",")]
    engines = args.engines.split(",")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="duanka-train-scaling-") as tmp:
        frame = replicated_frame(max(sizes))
        plan = [] if args.no_corpus else [(engine, POSTS, True) for engine in engines]
        for rows in sizes:
            data = Path(tmp) / f"posts-{rows}.csv"
            frame.head(rows).to_csv(data, index=False)
            plan += [(e, data, False) for e in engines if e == "stream" or rows <= args.default_max_rows]
        del frame
        for engine, data, corpus in plan:
            with tempfile.TemporaryDirectory(prefix="duanka-train-run-", dir=tmp) as work:
                print(f"duanka train --engine {engine} on {data.name} ...", file=sys.stderr, flush=True)
                run = train_once(data, Path(work), engine)
                rows = len(pd.read_csv(data, dtype=str, keep_default_na=False))
                runs.append({**run, "rows": rows, "corpus": corpus, "load_after": os.getloadavg()[0]})
                print(f"  {runs[-1]}", file=sys.stderr, flush=True)
    scaled = {e: [r for r in runs if r["engine"] == e and not r["corpus"]] for e in engines}
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "runs": runs,
        "fits": {engine: linear_fit(found) for engine, found in scaled.items()},
    }
    save_report(results, report(results), Path(args.output_dir), "train_scaling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
