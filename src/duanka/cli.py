"""The ``duanka`` command: thin sub-commands over the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from duanka import __version__
from duanka.errors import DuankaError

BATCH = 256


class _Progress:
    """Step lines with elapsed time on stderr (silent under --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data
def cmd_data_check(args: argparse.Namespace) -> int:
    from duanka.data import near_duplicates, validate_posts

    report = validate_posts(args.file)
    print(report.format())
    ok = report.ok
    if args.against:
        other = validate_posts(args.against)
        shared_groups = sorted(set(report.frame["group"]) & set(other.frame["group"]))
        pairs = near_duplicates(report.frame["text"].tolist(), other.frame["text"].tolist(), args.similarity)
        print(
            f"against {args.against}: {len(shared_groups)} shared group(s), {len(pairs)} near-duplicate pair(s) "
            f"(cosine >= {args.similarity})"
        )
        for i, j, similarity in pairs[:10]:
            print(f"  row {report.frame['_row'][i]} ~ {args.against} row {other.frame['_row'][j]} ({similarity})")
        ok = ok and not shared_groups and not pairs
    return 0 if ok else 1


def cmd_data_augment(args: argparse.Namespace) -> int:
    import pandas as pd

    from duanka.augment import augment_frame, obfuscated_copy
    from duanka.data import load_posts

    frame = load_posts(args.input)
    if args.mode == "copy":
        out = obfuscated_copy(frame, seed=args.seed)
    else:
        variants = augment_frame(frame, copies=args.copies, seed=args.seed)
        out = pd.concat([frame, variants], ignore_index=True)
    _write_table(out, args.output)
    print(f"{args.output}: {len(out)} rows ({args.mode}, seed {args.seed})")
    return 0


def _write_table(frame: Any, path: str) -> None:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise DuankaError(f"{path}: write .csv, .jsonl or .parquet")


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    import logging

    from duanka.config import load_config
    from duanka.tracking import train_tracked

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # mlflow sets its own level on import

    config = load_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    output = Path(args.output)
    try:
        output.resolve().parent.mkdir(parents=True, exist_ok=True)
        probe = output.resolve().parent / f".duanka-write-test-{time.time_ns()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DuankaError(f"{output}: output is not writable ({exc.strerror or exc})") from None
    say = _Progress(args.quiet)
    tracked = train_tracked(
        args.data,
        None if args.holdout in ("", "none") else args.holdout,
        output,
        config,
        experiment=args.experiment,
        model_name=args.model_name,
        register=not args.no_register,
        promote=args.promote,
        tracking_uri=args.tracking_uri,
        rules=args.rules,
        progress=say,
    )
    result = tracked.result
    print(f"run {tracked.run_id} in {tracked.tracking_uri} (experiment {args.experiment})")
    print(
        f"artifact {tracked.artifact_dir} (model_version {tracked.model_version}); "
        f"C={result.C:g}; thresholds review {result.thresholds['review']:.4f}, block {result.thresholds['block']:.4f}"
    )
    print(_metrics_line("validation (out-of-fold)", result.validation))
    print(_metrics_line("rules only, validation", result.rules_validation))
    if result.holdout:
        print(_metrics_line("holdout", result.holdout))
        print(_metrics_line("rules only, holdout", result.rules_holdout))
    if tracked.registered_version:
        before = tracked.champion_before
        champion = (
            f"champion was v{before['version']} (holdout macro-F1 {before.get('holdout_macro_f1')})"
            if before
            else "no champion before"
        )
        verdict = "promoted to champion" if tracked.promoted else "stays challenger"
        print(
            f"registered {args.model_name} v{tracked.registered_version} as challenger; {champion}; "
            f"{verdict}: {tracked.promotion_reason}"
        )
    print(f"training took {result.timings.get('train_total_s', 0):.1f}s")
    return 0


def _metrics_line(name: str, values: dict[str, Any] | None) -> str:
    if not values:
        return f"{name}: -"
    return (
        f"{name}: macro-F1 {values['macro_f1']:.4f} | F1 card_trading {values['card_trading_f1']:.4f}, "
        f"recruitment_lure {values['recruitment_lure_f1']:.4f}, normal {values['normal_f1']:.4f} | "
        f"normal FPR {values['normal_fpr']:.4f} | risk ROC-AUC {values['risk_roc_auc']:.4f}, "
        f"recall@P0.99 {values['risk_recall_at_p99']:.4f}"
    )


# ---------------------------------------------------------------- score
def _load_scorer(args: argparse.Namespace) -> Any:
    from duanka.scorer import Scorer

    return Scorer.load(
        args.model, rules=args.rules, blocklist=args.blocklist, allowlist=args.allowlist, strict=args.strict
    )


def cmd_score(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input is None):
        raise DuankaError("give either a TEXT to score or --input FILE")
    scorer = _load_scorer(args)
    if args.text is not None:
        print(json.dumps(scorer.score(args.text).to_dict(), ensure_ascii=False, indent=None if args.compact else 2))
        return 0
    out: TextIO
    out = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
    try:
        counts = _score_file(scorer, args, out)
    finally:
        if out is not sys.stdout:
            out.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts["decision"].items()))
    sources = ", ".join(f"{k} {v}" for k, v in sorted(counts["source"].items()))
    print(
        f"scored {counts['rows']} rows: decisions: {summary or '-'}; sources: {sources or '-'}; "
        f"errors: {counts['errors']}",
        file=sys.stderr,
    )
    return 0


def _batches(records: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score_file(scorer: Any, args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    from duanka.tables import iter_records

    counts: dict[str, Any] = {"rows": 0, "errors": 0, "decision": Counter(), "source": Counter()}
    show = sys.stderr.isatty() and not args.quiet
    started = time.perf_counter()
    for batch in _batches(iter_records(args.input), BATCH):
        lines: list[dict[str, Any] | None] = [None] * len(batch)
        texts, slots = [], []
        for position, record in enumerate(batch):
            data_id = record.values.get(args.id_column) if record.values else None
            head = {"row": record.row, "id": data_id}
            if record.error:
                lines[position] = {**head, "error": f"{args.input}: {record.where}: {record.error}"}
                continue
            if args.text_column not in record.values:
                lines[position] = {**head, "error": f"{args.input}: {record.where}: no {args.text_column!r} field"}
                continue
            text = record.values[args.text_column]
            if not isinstance(text, str):
                kind = "null" if text is None else type(text).__name__
                lines[position] = {**head, "error": f"{args.input}: {record.where}: text is {kind}, not a string"}
                continue
            texts.append(text)
            slots.append((position, head, record.notes))
        results = scorer.score_batch(texts, [head["id"] for _, head, _ in slots]) if texts else []
        for (position, head, notes), result in zip(slots, results):
            payload = result.to_dict()
            payload["notes"] = [f"input: {n}" for n in notes] + payload["notes"]
            lines[position] = {
                "row": head["row"],
                "id": head["id"],
                **{k: v for k, v in payload.items() if k != "data_id"},
            }
            counts["decision"][result.decision] += 1
            counts["source"][result.source] += 1
        for line in lines:
            counts["rows"] += 1
            if line is not None and "error" in line:
                counts["errors"] += 1
            out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        if show:
            rate = counts["rows"] / max(time.perf_counter() - started, 1e-9)
            print(f"\r  {counts['rows']} rows, {rate:,.0f} rows/s", end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)
    return counts


# ---------------------------------------------------------------- spark
def cmd_spark_score(args: argparse.Namespace) -> int:
    from duanka.spark import score_files, spark_session

    def note(message: str) -> None:
        print(f"duanka: {message}", file=sys.stderr)

    started = time.perf_counter()
    with spark_session(args.master) as spark:
        summary = score_files(
            spark,
            args.input,
            args.output,
            output_format=args.format,
            input_format=args.input_format,
            text_col=args.text_column,
            id_col=args.id_column or None,
            model=args.model,
            partitions=args.partitions,
            evidence=args.evidence,
            strict=args.strict,
            on_note=note,
        )
    seconds = time.perf_counter() - started
    decisions = ", ".join(f"{k} {v}" for k, v in sorted(summary.decisions.items()))
    sources = ", ".join(f"{k} {v}" for k, v in sorted(summary.sources.items()))
    print(
        f"scored {summary.rows} rows into {args.output} ({args.format}) in {seconds:.1f}s: "
        f"decisions: {decisions or '-'}; sources: {sources or '-'}; errors: {summary.errors}",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------- rules
def cmd_rules_check(args: argparse.Namespace) -> int:
    from duanka.rules import RuleSet, TermLists

    rules = RuleSet.load(args.file)
    failures = rules.check()
    examples = sum(len(r.examples_match) + len(r.examples_no_match) for r in rules.rules)
    for path in (args.blocklist, args.allowlist):
        if path:
            print(f"{path}: {len(TermLists.read(path))} terms")
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{rules.path}: {len(rules.rules)} rules, {examples} examples, {len(failures)} failing")
    return 0 if not failures else 1


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duanka", description=__doc__)
    parser.add_argument("--version", action="version", version=f"duanka {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="check and augment labeled files").add_subparsers(
        dest="data_command", required=True
    )
    check = data.add_parser("check", help="validate a labeled file and print its summary")
    check.add_argument("file")
    check.add_argument("--against", help="also check that FILE shares no group and no near-duplicate with this file")
    check.add_argument("--similarity", type=float, default=0.9, help="near-duplicate cosine threshold (0.9)")
    check.set_defaults(func=cmd_data_check)
    augment = data.add_parser("augment", help="write an obfuscated copy, or add obfuscated variants")
    augment.add_argument("input")
    augment.add_argument("output")
    augment.add_argument(
        "--mode",
        choices=("copy", "add"),
        default="copy",
        help="copy: rewrite every risky row in place (for evaluation); add: append variants",
    )
    augment.add_argument("--copies", type=int, default=1, help="variants per risky row with --mode add")
    augment.add_argument("--seed", type=int, default=0)
    augment.set_defaults(func=cmd_data_augment)

    train = commands.add_parser("train", help="train, track in MLflow, register, write the artifact")
    train.add_argument("--data", default="data/posts.csv")
    train.add_argument("--holdout", default="data/holdout.csv", help="the reported test set ('none' to skip)")
    train.add_argument("--output", default="models/duanka")
    train.add_argument("--config", help="TOML or YAML file of hyperparameters")
    train.add_argument("--seed", type=int)
    train.add_argument("--experiment", default="duanka")
    train.add_argument("--model-name", default="duanka", help="registered model name")
    train.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or ./mlruns)")
    train.add_argument("--no-register", action="store_true", help="log the run but do not register the model")
    train.add_argument(
        "--promote",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or forbid) the champion alias instead of the holdout macro-F1 gate",
    )
    train.add_argument("--rules", help="rules file to evaluate beside the model (default: shipped rules)")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=cmd_train)

    score = commands.add_parser("score", help="score one text or a CSV/JSONL/Parquet file")
    score.add_argument("text", nargs="?")
    score.add_argument("--input", help="file to score, one JSON line out per row")
    score.add_argument("--output", help="JSONL output (default: stdout)")
    score.add_argument("--text-column", default="text")
    score.add_argument("--id-column", default="id")
    score.add_argument("--model", default="models/duanka", help="artifact directory or MLflow model URI")
    score.add_argument("--rules", help="rules file (default: the artifact's snapshot)")
    score.add_argument("--blocklist", help="terms that always block, one a line")
    score.add_argument("--allowlist", help="terms that always pass, one a line")
    score.add_argument("--strict", action="store_true", help="fail instead of falling back to rules")
    score.add_argument("--compact", action="store_true", help="one-line JSON for a single text")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(func=cmd_score)

    spark = commands.add_parser("spark", help="score files on Spark").add_subparsers(
        dest="spark_command", required=True
    )
    spark_score = spark.add_parser("score", help="score a Parquet, JSON-lines or CSV file (or directory) on Spark")
    spark_score.add_argument("--input", required=True, help="file or directory; any path Spark can read")
    spark_score.add_argument("--output", required=True, help="output directory (overwritten)")
    spark_score.add_argument("--format", choices=("parquet", "json", "csv"), default="parquet", help="output format")
    spark_score.add_argument(
        "--input-format", choices=("parquet", "json", "csv"), help="input format (default: from the suffix)"
    )
    spark_score.add_argument("--text-column", default="text")
    spark_score.add_argument("--id-column", default="id", help="column copied to the output ('' for none)")
    spark_score.add_argument("--model", default="models/duanka", help="artifact directory or MLflow model URI")
    spark_score.add_argument("--partitions", type=int, help="repartition the input to N partitions")
    spark_score.add_argument(
        "--master", help="Spark master (default: spark-submit's --master, or local[*] outside spark-submit)"
    )
    spark_score.add_argument("--evidence", choices=("typed", "json", "none"), default="typed")
    spark_score.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fail when the model is unusable (default) instead of scoring with rules alone",
    )
    spark_score.set_defaults(func=cmd_spark_score)

    rules = commands.add_parser("rules", help="validate rules").add_subparsers(dest="rules_command", required=True)
    rules_check = rules.add_parser("check", help="validate a rules file and run its examples")
    rules_check.add_argument("file", nargs="?", help="rules file (default: the shipped rules)")
    rules_check.add_argument("--blocklist")
    rules_check.add_argument("--allowlist")
    rules_check.set_defaults(func=cmd_rules_check)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"duanka: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``duanka`` console script."""
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.showwarning = _show_warning
    warnings.filterwarnings("ignore", module="mlflow")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DuankaError as exc:
        print(f"duanka: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
