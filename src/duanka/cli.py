"""The ``duanka`` command: thin sub-commands over the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from duanka import defaults
from duanka._version import __version__
from duanka.errors import DuankaError


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
    from duanka.training.dataset import near_duplicates, validate_posts

    report = validate_posts(args.file, encoding=args.encoding)
    print(report.format())
    ok = report.ok
    if args.against:
        other = validate_posts(args.against, encoding=args.encoding)
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

    from duanka.training.augment import augment_frame, obfuscated_copy
    from duanka.training.dataset import load_posts

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
    from duanka.training.config import load_config

    config = load_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    if args.engine is not None:
        config.engine = args.engine
    _check_writable(Path(args.output))
    say = _Progress(args.quiet)
    holdout = None if args.holdout in ("", "none") else args.holdout
    data = args.data or [defaults.DATA]
    if args.no_tracking:
        from duanka.training.workflow import train_artifact

        trained = train_artifact(
            data,
            holdout,
            args.output,
            config,
            rules=args.rules,
            progress=say,
            background=args.background or (),
            policies=args.policies,
        )
        print(f"artifact {trained.artifact_dir} (model_version {trained.model_version}; not tracked in MLflow)")
        _print_quality(trained)
        return 0

    import logging

    from duanka.adapters.tracking import train_tracked

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # mlflow sets its own level on import
    tracked = train_tracked(
        data,
        holdout,
        args.output,
        config,
        experiment=args.experiment,
        model_name=args.model_name,
        register=not args.no_register,
        promote=args.promote,
        tracking_uri=args.tracking_uri,
        rules=args.rules,
        progress=say,
        background=args.background or (),
        policies=args.policies,
    )
    print(f"run {tracked.run_id} in {tracked.tracking_uri} (experiment {args.experiment})")
    print(f"artifact {tracked.artifact_dir} (model_version {tracked.model_version})")
    _print_quality(tracked.trained)
    _print_promotion(tracked, args.model_name, args.output)
    return 0


def _print_promotion(tracked: Any, model_name: str, output: str) -> None:
    if tracked.registered_version:
        before = tracked.champion_before
        champion = f"champion was v{before['version']}" if before else "no champion before"
        verdict = "promoted to champion" if tracked.promoted else "stays challenger"
        print(
            f"registered {model_name} v{tracked.registered_version} as challenger; {champion}; "
            f"{verdict}: {tracked.promotion_reason}"
        )
    if not tracked.published:
        print(
            f"{output} left unchanged (the model services load); the challenger is in {tracked.artifact_dir}; "
            "use --promote to publish it anyway"
        )


def _check_writable(output: Path) -> None:
    try:
        output.resolve().parent.mkdir(parents=True, exist_ok=True)
        probe = output.resolve().parent / f".duanka-write-test-{time.time_ns()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DuankaError(f"{output}: output is not writable ({exc.strerror or exc})") from None


def _print_quality(trained: Any) -> None:
    result = trained.result
    print(
        f"C={result.C:g}, normal weight {result.normal_weight:g}; "
        f"thresholds review {trained.thresholds['review']:.4f}, block {trained.thresholds['block']:.4f}"
    )
    print(_metrics_line("validation (out-of-fold)", trained.validation))
    for level, d in (trained.validation.decisions or {}).items():
        print(
            f"  {level} on validation: precision {d.precision:.4f}, recall {d.recall:.4f}, normal rate "
            f"{d.normal_rate:.4f}; precision at 1% prevalence {d.precision_at_1pct:.3f}, "
            f"at 0.1% {d.precision_at_0_1pct:.3f}"
        )
    print(_metrics_line("rules only, validation", trained.rules_validation))
    if trained.holdout is not None:
        print(_metrics_line("holdout", trained.holdout))
        print(_metrics_line("rules only, holdout", trained.rules_holdout))
    print(f"training took {result.timings.get('train_total_s', 0):.1f}s")


def _metrics_line(name: str, values: Any) -> str:
    if values is None:
        return f"{name}: -"
    f1 = ", ".join(f"{label} {m.f1:.4f}" for label, m in values.labels.items())
    return (
        f"{name}: macro-F1 {values.macro_f1:.4f} | F1 {f1} | normal FPR {values.normal_fpr:.4f} | "
        f"risk ROC-AUC {values.risk_roc_auc:.4f}, recall@P0.99 {values.risk_recall_at_p99:.4f}"
    )


# ---------------------------------------------------------------- score
def _load_scorer(args: argparse.Namespace) -> Any:
    from duanka.scoring.scorer import Scorer, is_model_uri

    options = {"rules": args.rules, "blocklist": args.blocklist, "allowlist": args.allowlist, "strict": args.strict}
    if is_model_uri(args.model):
        from duanka.adapters.serving import load_scorer  # imports MLflow: only for URIs

        return load_scorer(args.model, **options)
    return Scorer.load(args.model, **options)


def cmd_score(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input is None):
        raise DuankaError("give either a TEXT to score or --input FILE")
    scorer = _load_scorer(args)
    scorer.policy_thresholds(args.policy)  # an unknown policy fails before any file is read
    if args.text is not None:
        print(
            json.dumps(
                scorer.score(args.text, policy=args.policy).to_dict(),
                ensure_ascii=False,
                indent=None if args.compact else 2,
            )
        )
        return 0
    from duanka.adapters.file_scoring import FileSummary, OutputClosed, score_records, write_scored

    show = sys.stderr.isatty() and not args.quiet
    started = time.perf_counter()

    def progress(summary: FileSummary) -> None:
        if show:
            rate = summary.rows / max(time.perf_counter() - started, 1e-9)
            print(f"\r  {summary.rows} rows, {rate:,.0f} rows/s", end="", file=sys.stderr, flush=True)

    summary = FileSummary()
    options = {"text_column": args.text_column, "id_column": args.id_column, "encoding": args.encoding}
    options["keep"] = tuple(args.keep or ())
    lines = score_records(scorer, args.input, on_batch=progress, summary=summary, policy=args.policy, **options)
    try:
        write_scored(iter(lines), args.output, summary)
    except KeyboardInterrupt as stop:
        print(f"\ninterrupted: {summary.format()} (the output holds the first {summary.written} rows)", file=sys.stderr)
        return _interrupted_code(stop)
    except OutputClosed:
        _silence_stdout()
        raise
    if show:
        print(file=sys.stderr)
    print(summary.format(), file=sys.stderr)
    if summary.all_failed:
        print(
            f"duanka: error: every one of the {summary.rows} rows failed; see the `error` of each line", file=sys.stderr
        )
        return 1
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again on a closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------- spark
def cmd_spark_score(args: argparse.Namespace) -> int:
    from duanka.adapters.spark import score_files, spark_session

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
            policy=args.policy,
            also_keep=args.keep or (),
        )
    seconds = time.perf_counter() - started
    print(f"{summary.format()}; written to {args.output} ({args.format}) in {seconds:.1f}s", file=sys.stderr)
    return 0


def cmd_spark_train(args: argparse.Namespace) -> int:
    from duanka.adapters.spark import spark_session
    from duanka.adapters.spark_train import train_spark_artifact
    from duanka.training.config import load_config

    config = load_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    _check_writable(Path(args.output))
    holdout = None if args.holdout in ("", "none") else args.holdout
    with spark_session(args.master) as spark:
        trained = train_spark_artifact(
            spark,
            args.data,
            args.output,
            holdout=holdout,
            config=config,
            input_format=args.input_format,
            reg_params=args.reg_params,
            max_iter=args.max_iter,
            rules=args.rules,
            policies=args.policies,
            progress=_Progress(args.quiet),
        )
    run = trained.run
    print(f"artifact {run.artifact_dir} (model_version {run.model_version}; not tracked in MLflow)")
    print(f"regParam {trained.reg_param:g} ({trained.iterations} L-BFGS iterations outside the held-out groups)")
    _print_quality(run)
    return 0


def cmd_spark_monitor(args: argparse.Namespace) -> int:
    from duanka.adapters.monitor import MonitorOptions, build_report, save_stats
    from duanka.adapters.monitor_html import write_html
    from duanka.adapters.spark import spark_session
    from duanka.adapters.spark_monitor import monitor_dataframe

    options = MonitorOptions(by=args.by, text_column=args.text_column, text_rate=args.text_sample)
    model = None if args.model in ("", "none") else args.model
    with spark_session(args.master) as spark:
        json_input = args.input.rstrip("/").endswith((".json", ".jsonl"))
        df = spark.read.json(args.input) if json_input else spark.read.parquet(args.input)
        windows = monitor_dataframe(df, model, options, name=Path(args.input).name)
    save_stats(windows, args.save_stats)
    report = build_report(windows, model, [])
    Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    write_html(report, args.html)
    for window in report["windows"]:
        print(f"{window['name']}: {window['verdict']}" + "".join(f"\n  {r}" for r in window["reasons"]))
    print(f"statistics: {args.save_stats}; report: {args.html} (JSON: {args.json})", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- rules
def cmd_rules_check(args: argparse.Namespace) -> int:
    from duanka.scoring.rules import RuleSet, TermLists

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


# ---------------------------------------------------------------- review
def cmd_review_export(args: argparse.Namespace) -> int:
    from duanka.adapters.review.queue import RANDOM_SHARE, export_queue, load_scored, write_queue

    scorer = _load_scorer(args)
    scorer.policy_thresholds(args.policy)
    scored = load_scored(
        args.input,
        scorer=scorer,
        policy=args.policy,
        posts=args.posts,
        text_column=args.text_column,
        id_column=args.id_column,
    )
    queue = export_queue(
        scored,
        args.budget,
        random_size=args.random,
        seed=args.seed,
        thresholds=scorer.policies or None,
        similarity=args.similarity,
    )
    written = write_queue(queue, args.output)
    reasons = queue["reason"].str.split("+").explode().value_counts()
    left = int((scored["decision"] == "review").sum()) - int(queue["reason"].str.startswith("review").sum())
    print(
        f"{args.output}: {len(queue)} rows of budget {args.budget} from {len(scored)} scored posts "
        f"({', '.join(f'{k} {v}' for k, v in reasons.items())}; seed {args.seed})"
    )
    if left > 0:
        print(f"  {left} review post(s) not in the queue: near-duplicates of queued ones, or over the budget")
    wanted = round(args.budget * RANDOM_SHARE) if args.random is None else args.random
    drawn = int(queue["sample_count"].sum())
    if drawn < wanted:
        print(
            f"  random sample: {drawn} of {wanted} posts: review rows filled the budget, so `duanka review report` "
            "can estimate little; raise --budget"
        )
    for path in written[1:]:
        print(f"  Label Studio labeling config: {path}")
    return 0


def cmd_review_import(args: argparse.Namespace) -> int:
    from duanka.adapters.review.feedback import import_feedback

    summary = import_feedback(args.file, args.output, today=args.date, accept_unexported=args.accept_unexported)
    print(f"{args.output}: " + summary.format())
    return 0


def cmd_review_report(args: argparse.Namespace) -> int:
    from duanka.adapters.review.estimates import estimate_rates, review_summary
    from duanka.adapters.review.feedback import read_reviews

    reviews = read_reviews(args.file)
    estimates = estimate_rates(reviews)
    census = review_summary(reviews)
    if args.json:
        payload = {
            "file": args.file,
            "policies": {
                policy: {**census.get(policy, {}), "rates": [e.to_dict() for e in estimates.get(policy, [])]}
                for policy in sorted(set(census) | set(estimates))
            },
        }
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    print(f"{args.file}: {len(reviews)} queue rows")
    for policy in sorted(set(census) | set(estimates)):
        counts = census.get(policy, {})
        print(
            f"policy {policy}: {counts.get('labeled', 0)}/{counts.get('rows', 0)} rows labeled; "
            f"review rows: {counts.get('review_rows_risky', 0)}/{counts.get('review_rows_labeled', 0)} risky"
        )
        for estimate in estimates.get(policy, []):
            print(estimate.format())
        if policy not in estimates:
            print("  no random sample for this policy: no rates can be estimated")
    return 0


# ---------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    from duanka.adapters.http_app import serve

    options = {"rules": args.rules, "blocklist": args.blocklist, "allowlist": args.allowlist, "strict": args.strict}
    limits = {"max_body_bytes": args.max_body_bytes}
    serve(args.model, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log,
          scorer_options=options, **limits)  # fmt: skip
    return 0


def cmd_review_backend(args: argparse.Namespace) -> int:
    from duanka.adapters.review.backend import serve as serve_backend

    options = {"rules": args.rules, "blocklist": args.blocklist, "allowlist": args.allowlist, "strict": args.strict}
    serve_backend(args.model, args.feedback, host=args.host, port=args.port, policy=args.policy,
                  accept_unexported=args.accept_unexported, scorer_options=options)  # fmt: skip
    return 0


# ---------------------------------------------------------------- monitor
def cmd_monitor(args: argparse.Namespace) -> int:
    from duanka.adapters.monitor import MonitorOptions, build_report, read_stats, read_windows, save_stats
    from duanka.adapters.monitor_html import write_html

    model = None if args.model in ("", "none") else args.model
    if args.from_stats:
        windows, problems = read_stats(args.inputs), []
    else:
        columns = (args.text_column, args.id_column)
        options = MonitorOptions(args.posts or [], args.reviews, args.by, *columns, args.text_sample)
        windows, problems = read_windows(args.inputs, model, options)
    if args.save_stats:
        save_stats(windows, args.save_stats)
    report = build_report(windows, model, problems)
    Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    write_html(report, args.html)
    if args.mlflow:
        from duanka.adapters.tracking import log_monitor_report

        print(f"logged to MLflow run {log_monitor_report(report, args.tracking_uri)}", file=sys.stderr)
    for window in report["windows"]:
        print(f"{window['name']}: {window['verdict']}" + "".join(f"\n  {r}" for r in window["reasons"]))
    print(f"report: {args.html} (JSON: {args.json})", file=sys.stderr)
    levels = ("ok", "watch", "alert")
    worst = max((levels.index(w["verdict"]) for w in report["windows"]), default=0)
    return 3 if args.fail_on and worst >= levels.index(args.fail_on) else 0


# ---------------------------------------------------------------- parser
def _add_scorer_options(parser: argparse.ArgumentParser) -> None:
    """The options :func:`_load_scorer` reads, for every command that loads a Scorer."""
    parser.add_argument("--model", default=defaults.ARTIFACT_DIR, help="artifact directory or MLflow model URI")
    parser.add_argument("--rules", help="rules file (default: the artifact's snapshot)")
    parser.add_argument("--blocklist", help="terms that always block, one a line")
    parser.add_argument("--allowlist", help="terms that always pass, one a line")
    parser.add_argument("--strict", action="store_true", help="fail instead of falling back to rules")


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
    check.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL files (utf-8; e.g. gb18030)")
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
    train.add_argument(
        "--data",
        action="append",
        help=f"labeled file; repeat to train on several (default {defaults.DATA}); each is logged as a dataset",
    )
    train.add_argument(
        "--background",
        action="append",
        metavar="FILE",
        help="your own traffic (CSV/JSONL/Parquet with `text`), presumed normal; weighted by "
        "background_weight, at most background_sample rows (config); repeatable",
    )
    train.add_argument("--holdout", default=defaults.HOLDOUT, help="the reported test set ('none' to skip)")
    train.add_argument("--output", default=defaults.ARTIFACT_DIR)
    train.add_argument("--config", help="TOML or YAML file of hyperparameters")
    train.add_argument("--seed", type=int)
    train.add_argument(
        "--engine",
        choices=("default", "stream"),
        help="default: the whole file in memory, cross-validated; stream: chunks from disk, memory flat in the rows "
        "(README, Training at scale); overrides the config's engine",
    )
    train.add_argument("--experiment", default=defaults.EXPERIMENT)
    train.add_argument("--model-name", default=defaults.MODEL_NAME, help="registered model name")
    train.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or ./mlruns)")
    train.add_argument("--no-register", action="store_true", help="log the run but do not register the model")
    train.add_argument(
        "--no-tracking", action="store_true", help="train and write the artifact without MLflow (nothing logged)"
    )
    train.add_argument(
        "--promote",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or forbid) the champion alias instead of the holdout macro-F1 gate",
    )
    train.add_argument("--rules", help="rules file to evaluate beside the model (default: shipped rules)")
    train.add_argument("--policies", help="policy file of surfaces to resolve on validation (default: shipped)")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=cmd_train)

    score = commands.add_parser("score", help="score one text or a CSV/JSONL/Parquet file")
    score.add_argument("text", nargs="?")
    score.add_argument("--input", help="file to score, one JSON line out per row")
    score.add_argument("--output", help="JSONL output (default: stdout)")
    score.add_argument("--text-column", default="text")
    score.add_argument("--id-column", default="id")
    score.add_argument("--encoding", default="utf-8", help="text encoding of a CSV/JSONL input (utf-8; e.g. gb18030)")
    _add_scorer_options(score)
    score.add_argument("--policy", help="the surface whose thresholds decide (default: default)")
    score.add_argument("--compact", action="store_true", help="one-line JSON for a single text")
    score.add_argument("--keep", nargs="+", help="input columns to copy into each line (text, a date: for monitor)")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(func=cmd_score)

    review = commands.add_parser("review", help="review queue: export, import labels, report rates").add_subparsers(
        dest="review_command", required=True
    )
    export = review.add_parser("export", help="pick the posts worth a reviewer's time (CSV or Label Studio JSON)")
    export.add_argument("--input", required=True, help="`duanka score` JSONL output, or a posts file to score now")
    export.add_argument("--output", required=True, help="queue.csv, or queue.json for Label Studio")
    export.add_argument("--budget", type=int, required=True, help="the most rows the queue may have")
    export.add_argument("--random", type=int, help="posts drawn at random from pass/block (default 20%% of budget)")
    export.add_argument("--seed", type=int, default=0, help="seed of the random draw (written into the queue)")
    export.add_argument("--posts", help="the file that was scored, when the JSONL lines carry no text")
    export.add_argument("--policy", help="policy to score a posts file under (default: default)")
    export.add_argument("--similarity", type=float, default=0.9, help="near-duplicate cosine threshold (0.9)")
    export.add_argument("--text-column", default="text")
    export.add_argument("--id-column", default="id")
    _add_scorer_options(export)
    export.set_defaults(func=cmd_review_export)
    review_import = review.add_parser("import", help="append reviewed labels to a feedback file, with provenance")
    review_import.add_argument("file", help="the labeled queue CSV, or a Label Studio JSON / JSON_MIN export")
    review_import.add_argument("--output", default="data/feedback.csv", help="feedback file (data/feedback.csv)")
    review_import.add_argument("--date", help="review date for rows that carry none (default: today)")
    review_import.add_argument(
        "--accept-unexported",
        action="store_true",
        help="add labeled tasks that duanka review export never wrote (provenance `unexported`)",
    )
    review_import.set_defaults(func=cmd_review_import)
    report = review.add_parser("report", help="false-block and miss rates from the random sample, per policy")
    report.add_argument("file", help="the labeled queue CSV, or a Label Studio export")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_review_report)
    backend = review.add_parser("backend", help="Label Studio ML backend: pre-annotations, annotations to feedback")
    backend.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    backend.add_argument("--port", type=int, default=9090, help="port (9090, Label Studio's default)")
    backend.add_argument("--feedback", default="data/feedback.csv", help="feedback file annotations are added to")
    backend.add_argument("--policy", help="policy of the predictions' decisions (default: default)")
    backend.add_argument("--accept-unexported", action="store_true", help="record tasks review export never wrote")
    _add_scorer_options(backend)
    backend.set_defaults(func=cmd_review_backend)
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
    spark_score.add_argument("--model", default=defaults.ARTIFACT_DIR, help="artifact directory or MLflow model URI")
    spark_score.add_argument("--partitions", type=int, help="repartition the input to N partitions")
    spark_score.add_argument(
        "--master", help="Spark master (default: spark-submit's --master, or local[*] outside spark-submit)"
    )
    spark_score.add_argument("--evidence", choices=("typed", "json", "none"), default="typed")
    spark_score.add_argument("--policy", help="the surface whose thresholds decide (default: default)")
    spark_score.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fail when the model is unusable (default) instead of scoring with rules alone",
    )
    spark_score.add_argument("--keep", nargs="+", help="more columns to copy to the output (text, a date: for monitor)")
    spark_score.set_defaults(func=cmd_spark_score)

    spark_train = spark.add_parser("train", help="train on Spark: counts, features and the fit on the executors")
    spark_train.add_argument("--data", required=True, help="labeled Parquet (any path Spark reads), or local CSV/JSONL")
    spark_train.add_argument("--holdout", default=defaults.HOLDOUT, help="reported test set ('none' to skip)")
    spark_train.add_argument("--output", required=True, help="artifact directory")
    spark_train.add_argument("--config", help="TOML/YAML config (its [stream] table: held-out share, vocabulary)")
    spark_train.add_argument("--seed", type=int)
    spark_train.add_argument("--input-format", choices=("parquet", "json", "csv"), help="default: from the suffix")
    spark_train.add_argument(
        "--reg-params", type=float, nargs="+", help="Spark ML regParams tried (default: stream.alpha_grid)"
    )
    spark_train.add_argument("--max-iter", type=int, default=50, help="L-BFGS iterations at most per fit (50)")
    spark_train.add_argument("--rules", help="rules file (default: shipped)")
    spark_train.add_argument("--policies", help="policy file (default: shipped)")
    spark_train.add_argument("--master", help="Spark master (default: spark-submit's, or local[*])")
    spark_train.add_argument("--quiet", action="store_true")
    spark_train.set_defaults(func=cmd_spark_train)

    spark_monitor = spark.add_parser("monitor", help="monitor statistics of `spark score` output, merged on the driver")
    spark_monitor.add_argument("--input", required=True, help="`duanka spark score` output (Parquet or JSON)")
    spark_monitor.add_argument("--model", default=defaults.ARTIFACT_DIR, help="artifact: vocabulary and reference")
    spark_monitor.add_argument("--by", help="cut windows by this column (kept with `spark score --keep`)")
    spark_monitor.add_argument("--text-column", default="text")
    spark_monitor.add_argument("--text-sample", type=float, help="share of posts whose text is read (default 1.0)")
    spark_monitor.add_argument("--save-stats", default="monitor_stats.json", help="statistics out")
    spark_monitor.add_argument("--html", default="monitor.html")
    spark_monitor.add_argument("--json", default="monitor.json")
    spark_monitor.add_argument("--master", help="Spark master (default: spark-submit's, or local[*])")
    spark_monitor.set_defaults(func=cmd_spark_monitor)

    rules = commands.add_parser("rules", help="validate rules").add_subparsers(dest="rules_command", required=True)
    rules_check = rules.add_parser("check", help="validate a rules file and run its examples")
    rules_check.add_argument("file", nargs="?", help="rules file (default: the shipped rules)")
    rules_check.add_argument("--blocklist")
    rules_check.add_argument("--allowlist")
    rules_check.set_defaults(func=cmd_rules_check)

    monitor = commands.add_parser("monitor", help="drift, decision rates and new slang over windows of scored traffic")
    monitor.add_argument("inputs", nargs="+", help="`duanka score` JSONL or `duanka spark score` output, a window each")
    monitor.add_argument("--model", default=defaults.ARTIFACT_DIR, help="artifact directory: reference and vocabulary")
    monitor.add_argument("--posts", nargs="+", help="the files scored, one per input, when lines carry no text")
    monitor.add_argument("--reviews", help="feedback file of `duanka review import`: reviewer labels joined on post id")
    monitor.add_argument("--by", help="cut the inputs into windows by this column's value (a date)")
    monitor.add_argument("--text-column", default="text")
    monitor.add_argument("--id-column", default="id")
    monitor.add_argument(
        "--text-sample", type=float, help="share of posts whose text is read (default: all under 64 MB, else 0.05)"
    )
    monitor.add_argument("--html", default="monitor.html", help="report page (monitor.html)")
    monitor.add_argument("--json", default="monitor.json", help="the same report for machines (monitor.json)")
    monitor.add_argument("--save-stats", help="also write the windows' mergeable statistics to this JSON file")
    monitor.add_argument("--from-stats", action="store_true", help="inputs are saved statistics: merge by window name")
    monitor.add_argument("--mlflow", action="store_true", help="log window metrics to MLflow (duanka-monitor)")
    monitor.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or ./mlruns)")
    monitor.add_argument("--fail-on", choices=("watch", "alert"), help="exit 3 on a verdict this bad or worse")
    monitor.set_defaults(func=cmd_monitor)

    serve = commands.add_parser("serve", help="serve the Scorer over HTTP (POST /score, /score/batch; GET /ready)")
    _add_scorer_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes, one per core (1)")
    serve.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="larger bodies get 413 (8 MiB)")
    serve.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    serve.set_defaults(func=cmd_serve)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"duanka: warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: output written so far is flushed and kept, the summary printed, an MLflow run
    marked FAILED by its context manager; the exit code is 143 (128 + SIGTERM)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _interrupted_code(stop: BaseException) -> int:
    return 143 if isinstance(stop, Terminated) else 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``duanka`` console script."""
    import logging
    import signal
    import warnings

    signal.signal(signal.SIGTERM, _on_sigterm)

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
    except BrokenPipeError:
        _silence_stdout()
        print("duanka: error: standard output was closed (broken pipe)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print("duanka: interrupted" + (" (SIGTERM)" if isinstance(stop, Terminated) else ""), file=sys.stderr)
        return _interrupted_code(stop)


if __name__ == "__main__":
    sys.exit(main())
