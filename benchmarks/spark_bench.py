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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

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


def run_cli(args: list[str]) -> dict[str, Any]:
    """Run ``duanka ARGS`` in a fresh process: wall seconds, the summary line and the load average after."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "duanka.cli", *args], capture_output=True, text=True, cwd=REPO_ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"duanka {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = [line for line in done.stderr.splitlines() if line.startswith("scored ")]
    return {"wall_s": wall, "summary": summary[-1] if summary else "", "load_after": os.getloadavg()[0]}


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
        "",
        "| command | wall s | rows/s | 1-min load average after |",
        "|---|---:|---:|---:|",
        f"| `duanka score --input … --output out.jsonl` | {one['wall_s']:.1f} | {rows / one['wall_s']:,.0f} "
        f"| {one['load_after']:.2f} |",
        f"| `duanka spark score --master {results['master']}` | {spark['wall_s']:.1f} | "
        f"{rows / spark['wall_s']:,.0f} | {spark['load_after']:.2f} |",
        "",
        f"Speed-up of Spark on local[2] over one process: **{one['wall_s'] / spark['wall_s']:.2f}x** (wall time).",
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
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="duanka-spark-bench-") as tmp:
        work = Path(tmp)
        model = ensure_model((REPO_ROOT / args.model).resolve(), work)
        data = work / "posts.parquet"
        build_input(data, args.rows, [REPO_ROOT / "data" / "posts.csv", REPO_ROOT / "data" / "holdout.csv"])
        load_before = os.getloadavg()[0]
        common = ["--input", str(data), "--model", str(model)]
        print(f"duanka score on {args.rows:,} rows ...", file=sys.stderr)
        one = run_cli(["score", *common, "--output", str(work / "one.jsonl"), "--quiet"])
        print(f"  {one['wall_s']:.1f}s; duanka spark score on {args.master} ...", file=sys.stderr)
        spark = run_cli(["spark", "score", *common, "--output", str(work / "spark"), "--master", args.master])
        print(f"  {spark['wall_s']:.1f}s", file=sys.stderr)
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
        "one_process": one,
        "spark": spark,
        "agreement": agreement,
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spark.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = report(results)
    (out / "spark.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
