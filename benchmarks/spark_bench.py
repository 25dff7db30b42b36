"""`duanka score` (one process) against `duanka spark score` on local[2]: ``python -m benchmarks.spark_bench``.

Both commands run end to end in fresh processes (start-up, model load, reading, scoring, writing), one after
the other; the outputs are compared row by row (label, decision, source). Results go to
``benchmarks/results/spark.md`` and ``spark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.report import save_report

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"


def build_input(path: Path, rows: int, sources: list[Path]) -> None:
    """``rows`` posts drawn in turn from the labeled files, each with a unique id."""
    import pandas as pd

    texts = pd.concat([pd.read_csv(source, usecols=["text"]) for source in sources], ignore_index=True)["text"]
    repeated = texts.iloc[[i % len(texts) for i in range(rows)]].reset_index(drop=True)
    pd.DataFrame({"id": [f"b{i:07d}" for i in range(rows)], "text": repeated}).to_parquet(path, index=False)


def ensure_model(model: Path, work: Path) -> Path:
    """``model`` when it is an artifact, else a default model trained into ``work`` (not registered)."""
    if (model / "manifest.json").is_file():
        return model
    trained = work / "model"
    print(f"no artifact at {model}: training one into {trained}", file=sys.stderr)
    run_cli(
        ["train", "--output", str(trained), "--no-register", "--quiet", "--tracking-uri", f"sqlite:///{work}/mlflow.db"]
    )
    return trained


def _tree_cpu(process: Any, seen: dict[int, float]) -> None:
    """Record the CPU seconds of ``process`` and every descendant (the JVM, Spark's Python workers) by pid."""
    import psutil

    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return
    for member in family:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        seen[member.pid] = max(seen.get(member.pid, 0.0), times.user + times.system)


def run_cli(args: list[str]) -> dict[str, Any]:
    """Run ``duanka ARGS`` in a fresh process: wall s, CPU s of its process tree (sampled), summary, load after."""
    import psutil

    seen: dict[int, float] = {}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "duanka.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    watched = psutil.Process(child.pid)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            _tree_cpu(watched, seen)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = child.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"duanka {' '.join(args)} failed ({child.returncode}):\n{stderr[-3000:]}")
    summary = [line for line in stderr.splitlines() if line.startswith(("read ", "scored "))]
    return {
        "wall_s": wall,
        "cpu_s": sum(seen.values()),
        "summary": summary[-1] if summary else "",
        "load_after": os.getloadavg()[0],
    }


def compare(jsonl: Path, parquet_dir: Path) -> dict[str, int]:
    """Rows in each output and rows whose label, decision or source differ."""
    import pandas as pd

    single = pd.read_json(jsonl, lines=True, dtype={"id": str})[["id", "label", "decision", "source"]]
    spark = pd.read_parquet(parquet_dir)
    spark = pd.DataFrame(
        {
            "id": spark["id"],
            **{name: [r[name] for r in spark["duanka"]] for name in ("label", "decision", "source")},
        }
    )
    joined = single.merge(spark, on="id", suffixes=("_one", "_spark"), how="outer", indicator=True)
    both = joined[joined["_merge"] == "both"]
    differing_rows = int(
        (
            (both["label_one"] != both["label_spark"])
            | (both["decision_one"] != both["decision_spark"])
            | (both["source_one"] != both["source_spark"])
        ).sum()
    )
    return {
        "rows_one_process": len(single),
        "rows_spark": len(spark),
        "unmatched": int((joined["_merge"] != "both").sum()),
        "rows_differing": differing_rows,
    }


def machine() -> str:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.machine(),
        )
        if Path("/proc/cpuinfo").is_file()
        else platform.machine()
    )
    return f"{model}, {os.cpu_count()} cores"


def _row(name: str, run: dict[str, Any], rows: int) -> str:
    return (
        f"| {name} | {run['wall_s']:.1f} | {rows / run['wall_s']:,.0f} | {run['cpu_s']:.1f} | "
        f"{rows / run['cpu_s']:,.0f} | {run['load_after']:.2f} |"
    )


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median wall time and CPU time of ``runs``, with the last run's summary line."""
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "load_after": max(r["load_after"] for r in runs),
        "summary": runs[-1]["summary"],
    }


def report(results: dict[str, Any]) -> str:
    one, spark = results["one_process"], results["spark"]
    rows = results["rows"]
    lines = [
        "# duanka on Spark: benchmark",
        "",
        f"- date: {results['date']}",
        f"- machine: {results['machine']}; 1-minute load average before: {results['load_before']:.2f}",
        f"- versions: {results['versions']}",
        f"- input: {rows:,} rows of Parquet (posts.csv and holdout.csv texts in turn), model {results['model']}",
        "- both commands end to end in a fresh process: start-up, model load, read, score, write",
        f"- {results['rounds']} interleaved rounds, medians; CPU s sums the sampled CPU time of the command's process "
        "tree (the JVM and Spark's Python workers included)",
        "",
        "| command | wall s | rows/s | CPU s | rows per CPU-s | highest load average after |",
        "|---|---:|---:|---:|---:|---:|",
        _row("`duanka score --input … --output out.jsonl`", one, rows),
        _row(f"`duanka spark score --master {results['master']}`", spark, rows),
        "",
        f"Speed-up of Spark on {results['master']} over one process: **{one['wall_s'] / spark['wall_s']:.2f}x** "
        f"(wall time); CPU per row, Spark against one process: {spark['cpu_s'] / one['cpu_s']:.2f}x.",
        "",
        "Every round (wall s, CPU s, 1-minute load average after; the machine may be shared):",
        "",
        *(
            f"- round {i}: one process {one_run['wall_s']:.1f} s / {one_run['cpu_s']:.1f} CPU-s (load "
            f"{one_run['load_after']:.2f}); Spark {spark_run['wall_s']:.1f} s / {spark_run['cpu_s']:.1f} CPU-s "
            f"(load {spark_run['load_after']:.2f}): {one_run['wall_s'] / spark_run['wall_s']:.2f}x"
            for i, (one_run, spark_run) in enumerate(zip(results["runs"]["one_process"], results["runs"]["spark"]), 1)
        ),
        "",
        f"Agreement: {results['agreement']['rows_differing']} rows differ in label, decision or source "
        f"({results['agreement']['unmatched']} rows unmatched by id) over {rows:,} rows.",
        "",
        "Summaries printed by the commands:",
        "",
        f"- `duanka score`: {one['summary']}",
        f"- `duanka spark score`: {spark['summary']}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--model", default="models/duanka", help="artifact directory (trained when missing)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the median is reported")
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="duanka-spark-bench-") as tmp:
        work = Path(tmp)
        model = ensure_model((REPO_ROOT / args.model).resolve(), work)
        data = work / "posts.parquet"
        build_input(data, args.rows, [REPO_ROOT / "data" / "posts.csv", REPO_ROOT / "data" / "holdout.csv"])
        load_before = os.getloadavg()[0]
        common = ["--input", str(data), "--model", str(model)]
        commands = {
            "one_process": ["score", *common, "--output", str(work / "one.jsonl"), "--quiet"],
            "spark": ["spark", "score", *common, "--output", str(work / "spark"), "--master", args.master],
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
        for round_number in range(1, args.rounds + 1):  # interleaved, so a busier machine hits both alike
            for name, command in commands.items():
                print(f"round {round_number}: {name} on {args.rows:,} rows ...", file=sys.stderr, flush=True)
                runs[name].append(run_cli(command))
                print(f"  {runs[name][-1]['wall_s']:.1f}s wall, {runs[name][-1]['cpu_s']:.1f} CPU-s", file=sys.stderr)
        agreement = compare(work / "one.jsonl", work / "spark")
        manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))

    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_before,
        "versions": ", ".join(
            f"{name} {version(name)}" for name in ("duanka", "pyspark", "pyarrow", "scikit-learn", "jieba")
        )
        + f", python {platform.python_version()}",
        "rows": args.rows,
        "master": args.master,
        "model": manifest.get("model_version"),
        "rounds": args.rounds,
        "runs": runs,
        "one_process": median_run(runs["one_process"]),
        "spark": median_run(runs["spark"]),
        "agreement": agreement,
    }
    save_report(results, report(results), Path(args.output_dir), "spark")
    return 0


if __name__ == "__main__":
    sys.exit(main())
