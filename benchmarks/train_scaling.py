"""`duanka train` time and memory by size, and a hashed out-of-core model: ``python -m benchmarks.train_scaling``.

Training files of several sizes are built from ``data/posts.csv``: copy 0 is the file itself, copy ``k`` is
every row rewritten by ``duanka.training.augment.obfuscated_copy`` with seed ``k``, in new groups and with a copy
marker; rows whose normalized text repeats are dropped, as ``duanka data check`` demands. Each size is
trained by ``duanka train`` in a fresh process under ``/usr/bin/time -v`` (wall time, peak resident memory)
and evaluated on ``data/holdout.csv``. ``--sgd`` also trains the larger-data path, ``HashingVectorizer``
features and ``SGDClassifier(loss="log_loss").partial_fit`` over chunks, on the rows of the smallest size, and
reports its holdout quality beside the duanka model's. Results go to ``benchmarks/results/train_scaling.md``/``.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import save_report

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
POSTS = REPO_ROOT / "data" / "posts.csv"
HOLDOUT = REPO_ROOT / "data" / "holdout.csv"


def replicated(rows: int, path: Path) -> None:
    """Write ``rows`` labeled rows built from ``data/posts.csv`` (see the module docstring) to ``path``."""
    import pandas as pd

    from duanka.labels import LABELS
    from duanka.text.normalize import normalize
    from duanka.training.augment import obfuscated_copy

    base = pd.read_csv(POSTS, dtype=str, keep_default_na=False)
    frame, k = base.iloc[:0], 0
    while len(frame) < rows:
        copy = base.copy() if k == 0 else obfuscated_copy(base, seed=k, labels=LABELS)
        if k:
            copy["id"] = copy["id"] + f"-r{k}"
            copy["group"] = copy["group"] + f"-r{k}"
            copy["text"] = f"第{k}批 " + copy["text"]
        frame = pd.concat([frame, copy], ignore_index=True)
        frame = frame[~frame["text"].map(normalize).duplicated()]
        k += 1
    frame.head(rows).to_csv(path, index=False)


def train_once(data: Path, work: Path) -> dict[str, Any]:
    """``duanka train`` on ``data`` in a fresh process: wall s, peak RSS MB, training s, holdout macro-F1."""
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "duanka.cli",
        "train",
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
    holdout = re.search(r"^holdout: macro-F1 ([\d.]+)", done.stdout, re.MULTILINE)
    return {
        "wall_s": round(seconds, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak_kb / 1024),
        "train_s": float(trained.group(1)) if trained else None,
        "holdout_macro_f1": float(holdout.group(1)) if holdout else None,
    }


def sgd_holdout(
    train_path: Path, chunk: int = 1000, epochs: int = 5, alpha: float = 1e-6, seed: int = 0
) -> dict[str, Any]:
    """Hashed words ∪ chars and ``SGDClassifier(loss="log_loss").partial_fit`` on ``train_path``, on the holdout.

    ``alpha``, ``epochs`` and ``chunk`` are fixed, not tuned: a first measure of the path's quality cost.
    """
    import numpy as np
    import pandas as pd
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import SGDClassifier

    from duanka.labels import LABELS
    from duanka.text.normalize import normalize
    from duanka.training.evaluate import metrics
    from duanka.training.features import JiebaTokenizer

    words = HashingVectorizer(
        tokenizer=JiebaTokenizer(hmm=False), token_pattern=None, lowercase=False, ngram_range=(1, 2), n_features=2**20
    )
    chars = HashingVectorizer(analyzer="char", lowercase=False, ngram_range=(1, 4), n_features=2**20)

    def featurize(texts: list[str]) -> Any:  # stateless: each chunk alone, so any worker can do it
        normalized = [normalize(t) for t in texts]
        return hstack([words.transform(normalized), chars.transform(normalized)]).tocsr()

    train = pd.read_csv(train_path, dtype=str, keep_default_na=False)
    holdout = pd.read_csv(HOLDOUT, dtype=str, keep_default_na=False)
    counts = train["label"].value_counts()
    weights = {label: len(train) / (len(LABELS) * counts[label]) for label in LABELS}
    model = SGDClassifier(loss="log_loss", alpha=alpha, class_weight=weights, random_state=seed)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    chunks = [featurize(train["text"].iloc[i : i + chunk].tolist()) for i in range(0, len(train), chunk)]
    labels = [train["label"].iloc[i : i + chunk].to_numpy() for i in range(0, len(train), chunk)]
    for _ in range(epochs):
        for index in rng.permutation(len(chunks)):
            model.partial_fit(chunks[index], labels[index], classes=list(LABELS))
    seconds = time.perf_counter() - started
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(featurize(holdout["text"].tolist()))[:, [classes.index(label) for label in LABELS]]
    result = metrics(holdout["label"].tolist(), proba)
    return {
        "rows": len(train),
        "chunk": chunk,
        "epochs": epochs,
        "alpha": alpha,
        "train_s": round(seconds, 1),
        "holdout_macro_f1": round(result.macro_f1, 4),
        "holdout_normal_fpr": round(result.normal_fpr, 4),
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        "# `duanka train` at growing sizes",
        "",
        f"- date: {results['date']}; machine: {results['machine']}",
        "- each size trained in a fresh process (`/usr/bin/time -v`): default config, 4-fold CV over C in (10, 30),",
        "  holdout evaluation and MLflow logging included in wall time; no registration",
        "- CPU s (user + system) is the figure to trust on a shared machine: wall time grows with the load average",
        "",
        "| rows | wall s | CPU s | training s | peak RSS MB | holdout macro-F1 | load average after |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        lines.append(
            f"| {size['rows']:,} | {size['wall_s']:.0f} | {size['cpu_s']:.0f} | {size['train_s']:.0f} "
            f"| {size['peak_rss_mb']:,} | {size['holdout_macro_f1']:.3f} | {size['load_after']:.2f} |"
        )
    fit = results.get("fit")
    if fit:
        lines += [
            "",
            f"Least-squares line through the sizes: CPU s ≈ {fit['s_intercept']:.0f} + {fit['s_per_1k']:.1f} "
            f"per 1,000 rows; peak MB ≈ {fit['mb_intercept']:.0f} + {fit['mb_per_1k']:.1f} per 1,000 rows. "
            f"Extrapolated: 1M rows ≈ {fit['at_1m_s'] / 60:.0f} CPU-min and {fit['at_1m_mb'] / 1024:.1f} GB; "
            f"10M rows ≈ {fit['at_10m_s'] / 3600:.1f} CPU-h and {fit['at_10m_mb'] / 1024:.0f} GB.",
        ]
    sgd = results.get("sgd")
    if sgd:
        lines += [
            "",
            "## The larger-data path, measured at one size",
            "",
            f"`HashingVectorizer` (jieba words 1-2 ∪ chars 1-4, 2^20 each) + `SGDClassifier(loss='log_loss', "
            f"alpha={sgd['alpha']:g}).partial_fit` over chunks of {sgd['chunk']:,} rows, {sgd['epochs']} epochs, on "
            f"{sgd['rows']:,} rows: holdout macro-F1 **{sgd['holdout_macro_f1']:.3f}** (normal FPR "
            f"{sgd['holdout_normal_fpr']:.3f}) in {sgd['train_s']:.0f} s, against the duanka model's "
            f"{results['sizes'][0]['holdout_macro_f1']:.3f} on the same rows (the first size above).",
        ]
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
    from benchmarks.spark_bench import machine

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000,10000,20000", help="comma-separated row counts")
    parser.add_argument("--sgd", action="store_true", help="also measure the hashed SGD path on posts.csv")
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    sizes = []
    for rows in (int(n) for n in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="duanka-train-scaling-") as tmp:
            data = Path(tmp) / "posts.csv"
            replicated(rows, data)
            print(f"duanka train on {rows:,} rows ...", file=sys.stderr, flush=True)
            sizes.append({"rows": rows, **train_once(data, Path(tmp)), "load_after": os.getloadavg()[0]})
            print(f"  {sizes[-1]}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": sizes,
        "fit": linear_fit(sizes),
    }
    if args.sgd:  # on the rows of the smallest size, so the duanka model beside it saw the same rows
        with tempfile.TemporaryDirectory(prefix="duanka-train-scaling-") as tmp:
            data = Path(tmp) / "posts.csv"
            replicated(sizes[0]["rows"], data)
            results["sgd"] = sgd_holdout(data)
    save_report(results, report(results), Path(args.output_dir), "train_scaling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
