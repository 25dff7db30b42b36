"""Benchmark duanka against its alternatives on the same rows, on one core: ``python -m benchmarks.run``.

Contenders: the rules alone, a naive jieba + TF-IDF + logistic regression baseline, duanka's model,
duanka's full scorer (model + rules, loaded from a written artifact) and fastText. Each is trained on the
training file and measured on the holdout and on an obfuscated copy of it: quality
(``duanka.training.evaluate.metrics``), batch throughput, single-post latency, load time, cold start and peak
memory in a fresh process, artifact size and training time. Results go to ``latest.md`` and
``latest.json`` in the output directory; the Markdown is printed too.

Timed passes are interleaved (round ``r`` times every contender before round ``r + 1`` starts), so a
slowdown of the machine during the run hits every contender alike and the ratios stay meaningful.
"""

from __future__ import annotations

import os

# One core, fixed before numpy or any BLAS library is imported (the probe processes inherit this).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import importlib
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.contenders import (
    CONTENDERS,
    FASTTEXT_PARAMS,
    Predictor,
    Spec,
    Trained,
    artifact_bytes,
    load,
    train_and_save,
)
from benchmarks.measure import (
    REPO_ROOT,
    batch_pass,
    cold_summary,
    decision_summary,
    latency,
    latency_pass,
    pin_to_one_cpu,
    probe,
    quality,
    stratified_sample,
    throughput,
    warm_up,
)
from benchmarks.real_traffic import (
    DEFAULT_REAL,
    STREAM_LABELS,
    TOP,
    Scored,
    Stream,
    ad_curve,
    read_stream,
    read_texts,
    real_files,
    real_shares,
    score_texts,
)
from benchmarks.report import environment, markdown, ratios, write_results

OBFUSCATION_SEED = 20261129  # differs from every seed training augmentation uses (data/build_posts.py: 2026)
_STARTED = time.perf_counter()


@dataclass
class Context:
    """What every contender is measured with."""

    args: argparse.Namespace
    train: pd.DataFrame
    holdout: pd.DataFrame
    obfuscated: pd.DataFrame
    workdir: Path
    options: dict[str, Any]
    trained: dict[str, tuple[Trained, float, Path]] = field(default_factory=dict)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    real: dict[str, list[str]] = field(default_factory=dict)
    stream: Stream | None = None
    real_top: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)


@dataclass
class Loaded:
    """A contender ready to score, with where its artifact is."""

    spec: Spec
    predictor: Predictor
    directory: Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/posts.csv", help="training file (default: %(default)s)")
    parser.add_argument("--holdout", default="data/holdout.csv", help="holdout file (default: %(default)s)")
    parser.add_argument(
        "--output-dir",
        default=str(REPO_ROOT / "benchmarks" / "results"),
        help="where latest.md and latest.json go (default: benchmarks/results)",
    )
    parser.add_argument(
        "--sample", type=int, default=None, metavar="N", help="use only N rows of each file, stratified by label"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of every measure (default: 3)")
    parser.add_argument(
        "--latency-posts",
        type=int,
        default=500,
        help="single-post calls per latency pass; at least the holdout size is used (default: 500)",
    )
    parser.add_argument("--skip-fasttext", action="store_true", help="leave fastText out")
    parser.add_argument(
        "--real",
        type=Path,
        default=DEFAULT_REAL,
        help="folder of real third-party texts, all presumed normal (default: ../shared/real; skipped when absent)",
    )
    parser.add_argument(
        "--stream-labels",
        type=Path,
        default=STREAM_LABELS,
        help="labels of the real stream in --real (default: data/real_labels/tg_stream.csv)",
    )
    parser.add_argument("--real-sample", type=int, default=None, metavar="N", help="use only N rows of each real file")
    parser.add_argument(
        "--extra-holdout",
        action="append",
        default=None,
        help="another labeled test file to report (default: data/holdout_channel.csv when present)",
    )
    parser.add_argument("--config", default=None, help="a duanka TrainConfig file (TOML or YAML)")
    parser.add_argument("--seed", type=int, default=13, help="seed of --sample (default: 13)")
    parser.add_argument(
        "--obfuscation-seed",
        type=int,
        default=OBFUSCATION_SEED,
        help="seed of the obfuscated holdout copy (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.latency_posts < 1 or (args.sample is not None and args.sample < 3):
        parser.error("--repeats and --latency-posts must be >= 1, --sample >= 3")
    return args


def log(message: str) -> None:
    """Progress on stderr, with the time since the start."""
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- data
def load_frame(path: str, sample: int | None, seed: int, notes: list[str]) -> pd.DataFrame:
    """A labeled file through duanka's loader (validation included), sampled if asked."""
    from duanka.training.dataset import DataWarning, load_posts

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        frame = load_posts(path)
    for warning in caught:
        text = str(warning.message)
        notes.append("data: " + (text if len(text) < 200 else text[:200] + " …"))
    return stratified_sample(frame, sample, seed)


def describe(frame: pd.DataFrame, path: str) -> dict[str, Any]:
    """Rows and label counts of a frame, with the file's digest."""
    from duanka.files.readers import sha256_file
    from duanka.labels import LABELS

    counts = frame["label"].value_counts()
    return {
        "path": path,
        "sha256": sha256_file(path),
        "rows": len(frame),
        "labels": {label: int(counts.get(label, 0)) for label in LABELS},
    }


# ---------------------------------------------------------------------------------------------- phases
def unavailable(spec: Spec, args: argparse.Namespace) -> str | None:
    """Why a contender cannot run here, or None."""
    if spec.name == "fasttext" and args.skip_fasttext:
        return "--skip-fasttext"
    if spec.needs == "real":
        return None if real_files(args.real) else f"{args.real}: no real-traffic folder"
    if spec.needs == "stream":
        found = read_stream(args.real, args.stream_labels) is not None
        return None if found else f"{args.real}: no labelled stream (tg_stream.csv and {args.stream_labels})"
    if spec.needs:
        try:
            importlib.import_module(spec.needs)
        except ImportError as exc:
            return f"module {spec.needs!r} is not importable ({exc}); pip install '.[bench]'"
    return None


def trained_for(spec: Spec, ctx: Context) -> tuple[Trained, float, Path]:
    """Train and save a contender, or reuse the run of the contender it shares an artifact with."""
    if spec.shares is not None:
        return ctx.trained[spec.shares]
    directory = ctx.workdir / spec.name
    log(f"{spec.name}: training on {len(ctx.train)} rows")
    trained, save_s = train_and_save(spec.kind, ctx.train, directory, ctx.workdir, ctx.options)
    ctx.trained[spec.name] = (trained, save_s, directory)
    return trained, save_s, directory


def prepare(spec: Spec, ctx: Context) -> tuple[dict[str, Any], Loaded]:
    """Train, save, load back from disk and evaluate one contender (quality; speed comes later)."""
    trained, save_s, directory = trained_for(spec, ctx)
    started = time.perf_counter()
    predictor = load(spec.kind, directory)
    load_s = time.perf_counter() - started
    log(f"{spec.name}: trained in {trained.train_s:.1f}s, loaded from disk in {load_s:.2f}s; evaluating")
    entry: dict[str, Any] = {
        "title": spec.title,
        "status": "ok",
        "shares_training_with": spec.shares,
        "train_s": trained.train_s,
        "save_s": save_s,
        "load_s": load_s,
        "artifact_bytes": artifact_bytes(directory),
        "info": trained.info,
        "quality": {"clean": quality(predictor, ctx.holdout), "obfuscated": quality(predictor, ctx.obfuscated)},
    }
    for name, frame in ctx.extra.items():
        entry["quality"][name] = quality(predictor, frame)
    if ctx.real:
        trained_on = set(trained.info.get("background_files", [])) if isinstance(trained.info, dict) else set()
        entry["real"] = {}
        for name, texts in ctx.real.items():
            shares = real_shares(predictor, texts, name)
            # the top rows are third-party text: they go to the git-ignored real_top_rows.json, never latest.json
            ctx.real_top.setdefault(spec.name, {})[name] = shares.pop("top", [])
            entry["real"][name] = {**shares, "trained_on": name in trained_on}
        log(f"{spec.name}: real traffic scored ({sum(len(t) for t in ctx.real.values())} rows)")
    if ctx.stream is not None:
        entry["real_ads"] = real_ads(predictor, ctx)
        log(f"{spec.name}: real ads of the stream scored ({len(ctx.stream.rows(ads=True))} ads)")
    if spec.kind in ("rules", "duanka_scorer", "duanka_background"):
        entry["decisions"] = {
            "clean": decision_summary(predictor, ctx.holdout),
            "obfuscated": decision_summary(predictor, ctx.obfuscated),
        }
    return entry, Loaded(spec, predictor, directory)


def real_ads(predictor: Predictor, ctx: Context) -> dict[str, Any]:
    """The recall curve on the stream's labelled ads against all real ordinary text (the presumed-normal files and
    the stream's ordinary rows), on the whole stream and on its half B only (what a contender trained on half A's
    labels has not seen), and the share of the stream's ordinary rows each contender labels risky or acts on."""
    stream = ctx.stream
    assert stream is not None
    scored = score_texts(predictor, stream.texts)
    files = [score_texts(predictor, texts) for texts in ctx.real.values()]
    out = {}
    for half in (None, "b"):
        ordinary = Scored.join([*files, scored.take(stream.rows(ads=False, half=half))])
        out["all" if half is None else "half_b"] = ad_curve(ordinary, scored.take(stream.rows(ads=True, half=half)))
    all_ordinary = Scored.join([*files, scored.take(stream.rows(ads=False))])
    out["templates"] = ad_curve(all_ordinary, scored.take(stream.rows(ads=True, templates=True)))
    own = scored.take(stream.rows(ads=False))
    out["stream_ordinary"] = {"rows": len(own.risk), "risky": float(own.risky.mean()) if len(own.risk) else 0.0}
    if own.decisions is not None:
        out["stream_ordinary"]["flagged"] = sum(d != "pass" for d in own.decisions) / max(len(own.decisions), 1)
        out["stream_ordinary"]["blocked"] = sum(d == "block" for d in own.decisions) / max(len(own.decisions), 1)
    return out


def rotated(items: list[Loaded], round_index: int) -> list[Loaded]:
    """``items`` starting at a different one each round, so no contender always goes first."""
    k = round_index % len(items) if items else 0
    return items[k:] + items[:k]


def measure_speed(loaded: list[Loaded], texts: list[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Batch throughput and single-post latency, warm, in interleaved rounds."""
    count = max(args.latency_posts, len(texts))
    for item in loaded:
        warm_up(item.predictor, texts)
    batches: dict[str, list[float]] = {item.spec.name: [] for item in loaded}
    singles: dict[str, list[Any]] = {item.spec.name: [] for item in loaded}
    for r in range(args.repeats):
        log(f"speed round {r + 1}/{args.repeats}: batch of {len(texts)} and {count} single posts per contender")
        for item in rotated(loaded, r):
            batches[item.spec.name].append(batch_pass(item.predictor, texts))
        for item in rotated(loaded, r):
            singles[item.spec.name].append(latency_pass(item.predictor, texts, count))
    return {
        name: {"speed": throughput(batches[name], len(texts)), "latency": latency(singles[name])} for name in batches
    }


def measure_cold(loaded: list[Loaded], texts_path: Path, repeats: int) -> dict[str, dict[str, Any]]:
    """Cold start and peak memory of fresh processes, in interleaved rounds."""
    runs: dict[str, list[dict[str, float]]] = {item.spec.name: [] for item in loaded}
    for r in range(repeats):
        log(f"cold-start round {r + 1}/{repeats}: one fresh process per contender")
        for item in rotated(loaded, r):
            runs[item.spec.name].append(probe(item.spec.kind, item.directory, texts_path))
    return {name: cold_summary(found) for name, found in runs.items()}


# ---------------------------------------------------------------------------------------------- record
def notes_for(entries: dict[str, dict[str, Any]], ctx: Context) -> list[str]:
    """What a reader of the tables needs to know to read them right."""
    config = ctx.options["config"]
    converged = entries.get("naive", {}).get("info", {}).get("converged", True)
    used = entries.get("fasttext", {}).get("info", {}).get("params", FASTTEXT_PARAMS)
    fasttext_params = ", ".join(f"{k}={v}" for k, v in used.items())
    notes = [
        "duanka scorer: label = argmax of Scorer.predict_proba, i.e. the model's probabilities; rules only "
        "change the decision (escalate pass → review), so its label-level quality equals the model's by "
        "construction. The decisions table shows what the rules add.",
        "posts/s: median of the batch passes over the whole holdout; p50/p99: single-post calls, median over "
        "passes; all warm, one core, contenders interleaved round by round.",
        "load s: loading the saved artifact in the benchmark process (libraries already imported); "
        "cold start s: a fresh process, from importing the libraries to the first post scored; "
        "peak RSS: that process after scoring the whole holdout (VmHWM: ru_maxrss would include the "
        "benchmark's own size inherited through fork); medians over the repeats.",
        f"train s runs on one core; duanka's includes its {config.cv_folds}-fold group cross-validation "
        f"over C in {list(config.c_grid)}; the duanka scorer shares the model's training run and artifact "
        "(written with duanka.training.export.write_artifact).",
        "naive baseline: TfidfVectorizer(tokenizer=jieba.lcut) + LogisticRegression(), default settings, "
        "no normalization"
        + ("" if converged else " (lbfgs did not converge in its default 100 iterations)")
        + "; pickled with joblib compress=3 like duanka's artifact.",
        f"fastText: jieba words of duanka-normalized text, {fasttext_params}.",
    ]
    busy = max(ctx.options["loadavg"])
    if busy > 0.5:
        notes.append(
            f"the machine was busy (1-minute load average up to {busy:.2f} during the run): absolute speed "
            "figures are noisy; the ratios, measured round by round, hold better."
        )
    for entry in entries.values():
        if entry["status"] != "ok":
            notes.append(f"{entry['title']} {entry['status']}: {entry['note']}")
    return notes


def _loadavg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark and return its record."""
    from duanka.labels import LABELS
    from duanka.training.augment import obfuscated_copy
    from duanka.training.config import load_config

    pinned = pin_to_one_cpu()
    notes: list[str] = []
    train = load_frame(args.data, args.sample, args.seed, notes)
    holdout = load_frame(args.holdout, args.sample, args.seed, notes)
    # Every row, normal ones too: evasion spelling alone must not make a normal post look risky.
    obfuscated = obfuscated_copy(holdout, seed=args.obfuscation_seed, labels=LABELS)
    changed = int((obfuscated["text"] != holdout["text"]).sum())
    log(f"data: {len(train)} training rows, {len(holdout)} holdout rows ({changed} rewritten when obfuscated)")
    options = {
        "config": load_config(args.config),
        "progress": lambda m: log(f"duanka_model: {m}"),
        "loadavg": [_loadavg()],
        "real": args.real,
        "stream": read_stream(args.real, args.stream_labels),
    }
    extra_paths = args.extra_holdout
    if extra_paths is None:
        extra_paths = [p for p in [str(REPO_ROOT / "data" / "holdout_channel.csv")] if Path(p).is_file()]
    extra = {Path(p).stem: load_frame(p, args.sample, args.seed, notes) for p in extra_paths}
    real = {path.name: read_texts(path)[: args.real_sample] for path in real_files(args.real)}
    if real:
        log(f"real traffic: {', '.join(f'{k} {len(v)}' for k, v in real.items())} rows from {args.real}")
    else:
        notes.append(f"real traffic: {args.real} is absent here, so the real-traffic table was skipped.")
    entries: dict[str, dict[str, Any]] = {}
    loaded: list[Loaded] = []
    texts = holdout["text"].tolist()
    with tempfile.TemporaryDirectory(prefix="duanka-bench-") as tmp:
        ctx = Context(args, train, holdout, obfuscated, Path(tmp), options, extra=extra, real=real)
        ctx.stream = options["stream"] if real else None
        for spec in CONTENDERS:
            reason = unavailable(spec, args)
            if reason:
                log(f"{spec.name}: skipped ({reason})")
                entries[spec.name] = {"title": spec.title, "status": "skipped", "note": reason}
                continue
            entries[spec.name], item = prepare(spec, ctx)
            loaded.append(item)
        options["loadavg"].append(_loadavg())
        for name, figures in measure_speed(loaded, texts, args).items():
            entries[name].update(figures)
        options["loadavg"].append(_loadavg())
        texts_path = ctx.workdir / "holdout-texts.json"
        texts_path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        for name, figures in measure_cold(loaded, texts_path, args.repeats).items():
            entries[name]["cold"] = figures
        options["loadavg"].append(_loadavg())
    data = {"train": describe(train, args.data), "holdout": describe(holdout, args.holdout)}
    for name, path in zip(extra, extra_paths):
        data[name] = describe(extra[name], path)
    data["real"] = {"folder": str(args.real), "rows": {k: len(v) for k, v in real.items()}}
    if ctx.stream is not None:
        data["stream"] = {
            "rows": len(ctx.stream.texts),
            "ads": len(ctx.stream.rows(ads=True)),
            "ads_half_b": len(ctx.stream.rows(ads=True, half="b")),
            "ad_templates": len(ctx.stream.rows(ads=True, templates=True)),
            "ordinary": len(ctx.stream.rows(ads=False)),
            "labels": str(args.stream_labels.relative_to(REPO_ROOT))
            if args.stream_labels.is_relative_to(REPO_ROOT)
            else str(args.stream_labels),
        }
    data["holdout"]["obfuscated_rows_changed"] = changed
    env = environment(REPO_ROOT, pinned)
    env["machine"]["load_average_1min"] = options["loadavg"]
    return {
        "environment": env,
        "settings": {
            "repeats": args.repeats,
            "latency_posts": max(args.latency_posts, len(holdout)),
            "sample": args.sample,
            "seed": args.seed,
            "obfuscation_seed": args.obfuscation_seed,
            "train_config": options["config"].to_dict(),
        },
        "data": data,
        "contenders": entries,
        "ratios": ratios(entries),
        "notes": notes_for(entries, ctx) + notes,
        "real_top": ctx.real_top,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, write the result files, print the Markdown."""
    from threadpoolctl import threadpool_limits

    args = parse_args(argv)
    for path in (args.data, args.holdout):
        if not Path(path).is_file():
            print(f"error: {path}: no such file (pass --data / --holdout)", file=sys.stderr)
            return 2
    with threadpool_limits(limits=1):
        result = run(args)
    result["wall_s"] = time.perf_counter() - _STARTED
    real_top = result.pop("real_top")
    json_path, md_path = write_results(result, Path(args.output_dir))
    if real_top:
        # Highest-risk real rows, for reading: third-party text, so this file is git-ignored, never committed.
        top_path = Path(args.output_dir) / "real_top_rows.json"
        top_path.write_text(json.dumps(real_top, ensure_ascii=False, indent=1), encoding="utf-8")
        log(f"the {TOP} highest-risk rows of each real file, per contender: {top_path} (not for committing)")
    print(markdown(result))
    log(f"done in {result['wall_s']:.0f}s: {md_path}, {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
