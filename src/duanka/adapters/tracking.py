"""MLflow runs, datasets, the registry and its aliases: ``duanka.training.workflow`` wrapped in a tracked run.

One of the two modules that import MLflow (with ``duanka.adapters.serving``, which defines the pyfunc logged here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from duanka import defaults
from duanka._version import __version__
from duanka.adapters.serving import JSON_COLUMNS, MANIFEST_DIGEST_TAG, SCALAR_COLUMNS, results_frame
from duanka.adapters.serving import tracking_uri as resolve_tracking_uri
from duanka.errors import ArtifactError, TrackingError
from duanka.files.readers import sha256_file
from duanka.files.spreadsheet import write_csv_for_people
from duanka.labels import LABELS
from duanka.scoring.artifact import read_manifest
from duanka.scoring.rules import RuleSet
from duanka.scoring.scorer import Scorer
from duanka.training.config import TrainConfig
from duanka.training.evaluate import confusion_figure, errors_table, pr_figure, top_terms
from duanka.training.model_card import MODEL_CARD
from duanka.training.workflow import TrainRun, train_model, write_model

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TrackedRun",
    "artifact_location",
    "challenger_dir",
    "champion",
    "configure_tracking",
    "registry_description",
    "train_tracked",
]

# Kept for notebooks that import them from here; defined once in duanka.defaults.
CHAMPION, CHALLENGER = "champion", "challenger"
PROMOTION_METRIC = "holdout_macro_f1"  # may not drop
FPR_METRIC = "holdout_normal_fpr"  # may not rise by more than FPR_TOLERANCE
# 0.002: one normal post in 500, about the holdout's resolution (479 normal rows); a larger rise is a change a
# platform's users would notice in the share of ordinary posts labelled risky
FPR_TOLERANCE = 0.002


def configure_tracking(tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the embedded store in ``./mlruns``.

    Raises:
        TrackingError: the tracking server cannot be reached.
    """
    uri = resolve_tracking_uri(tracking_uri)
    # Fail within seconds, not after MLflow's default minutes of retries, when a server is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    if uri == defaults.TRACKING_URI:
        Path("mlruns").mkdir(exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        mlflow.MlflowClient().search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(f"cannot reach the MLflow tracking store at {uri} ({type(exc).__name__}: {exc})") from None
    return uri


def _experiment_id(name: str, uri: str) -> str:
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri))


def artifact_location(uri: str) -> str | None:
    """Where a new experiment's artifacts go: beside the database for any SQLite store (``artifacts/`` in the
    database's folder), else the server's or MLflow's default (None). MLflow's default for a SQLite store is
    ``./mlruns`` of whatever folder the command runs in."""
    if not uri.startswith("sqlite:///"):
        return None
    database = uri[len("sqlite:///") :].split("?", 1)[0]  # absolute when it starts with "/": sqlite:////abs/db
    if not database or database == ":memory:":
        return None
    return (Path(database).resolve().parent / "artifacts").as_uri()


def champion(model_name: str = defaults.MODEL_NAME) -> Any | None:
    """The registry's current champion version of ``model_name``, or None when there is none."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass
class TrackedRun:
    """What ``duanka train`` did: the run, the artifact, the registry version and the promotion decision."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    artifact_dir: Path
    trained: TrainRun
    model_version: str
    registered_version: str | None = None
    champion_before: dict[str, Any] | None = None
    promoted: bool = False
    promotion_reason: str = ""
    published: bool = True

    @property
    def result(self) -> Any:
        """The TrainResult (the fit and its out-of-fold predictions)."""
        return self.trained.result


def challenger_dir(output: str | Path) -> Path:
    """Where a model that fails the champion gate is written: beside ``output``, never over it."""
    output = Path(output)
    return output.with_name(output.name + "-challenger")


def train_tracked(
    data: str | Path | Sequence[str | Path] = defaults.DATA,
    holdout: str | Path | None = defaults.HOLDOUT,
    output: str | Path = defaults.ARTIFACT_DIR,
    config: TrainConfig | None = None,
    *,
    experiment: str = defaults.EXPERIMENT,
    model_name: str = defaults.MODEL_NAME,
    register: bool = True,
    promote: bool | None = None,
    tracking_uri: str | None = None,
    rules: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    run_name: str | None = None,
    background: Sequence[str | Path] = (),
    policies: str | Path | None = None,
) -> TrackedRun:
    """Train with :func:`duanka.training.workflow.train_model` inside an MLflow run; log, register, gate, publish.

    The artifact goes to ``output`` only when the model becomes champion (or is not registered, or
    ``promote=True``); a challenger that fails the gate is written to :func:`challenger_dir` instead, so
    the directory services load never changes behind the gate's back.

    Args:
        data: labeled file(s); each is logged as its own MLflow dataset.
        policies: policy file whose surfaces are resolved on the validation rows (default: the shipped one);
            logged as params/metrics ``policy.<name>.*`` and ``policies.json``.
        promote: ``None`` applies the gate (champion when holdout macro-F1 >= the current champion's),
            ``True`` promotes regardless, ``False`` never promotes.

    Returns:
        A TrackedRun describing the run.
    """
    config = config or TrainConfig()
    say = progress or (lambda message: None)
    uri = configure_tracking(tracking_uri)
    experiment_id = _experiment_id(experiment, uri)
    rule_set = RuleSet.load(rules)

    with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        # MLflow's notice that a local path fits two of its dataset-source types says nothing to a duanka user.
        warnings.filterwarnings("ignore", message=r".*dataset source can be interpreted", category=UserWarning)
        run_id = run.info.run_id
        _log_run_settings(rule_set, config)
        trained = train_model(
            data,
            holdout,
            config,
            rules=rule_set,
            progress=say,
            mlflow_run_id=run_id,
            background=background,
            policies=policies,
        )
        _log_training(trained)
        tracked = TrackedRun(run_id, experiment_id, uri, Path(output), trained, trained.model_version)
        _register_and_publish(tracked, model_name if register else None, promote)
        say(f"artifact written to {tracked.artifact_dir}")
    return tracked


def _log_run_settings(rule_set: RuleSet, config: TrainConfig) -> None:
    """Tags (version, rules, git commit) and the whole training config, before anything is trained."""
    mlflow.set_tags(
        {"duanka.version": __version__, "duanka.rules": rule_set.name, "duanka.rules_sha256": rule_set.digest}
    )
    commit = _git_commit()
    if commit:
        mlflow.set_tag("mlflow.source.git.commit", commit)
    mlflow.log_params({k: str(v) for k, v in config.flat_params().items()})
    mlflow.log_dict(config.to_dict(), "config.json")


def _log_training(trained: TrainRun) -> None:
    """Inputs, chosen parameters, policies, metrics and reports of a finished training."""
    _log_inputs(trained)
    result = trained.result
    pipeline_params = {f"pipeline.{k}": v for k, v in _pipeline_params(result).items()}
    mlflow.log_params({"selected_C": result.C, "selected_normal_weight": result.normal_weight, **pipeline_params})
    _log_policies(trained)
    _log_metrics(trained)
    _log_artifacts(trained)


def _register_and_publish(tracked: TrackedRun, registered_name: str | None, promote: bool | None) -> None:
    """Log the pyfunc (registered under ``registered_name`` unless None), apply the champion gate, and publish.

    The published directory and the registry's champion never disagree after an interruption: the artifact is
    written (atomically), read back and checked, and only then does the champion alias move; SIGINT and SIGTERM
    arriving during those steps are held until both are done.
    """
    trained, output = tracked.trained, tracked.artifact_dir  # the published directory, until decided otherwise
    with tempfile.TemporaryDirectory(prefix="duanka-logged-") as staging:
        logged_dir = write_model(trained, Path(staging) / "model")
        manifest_digest = sha256_file(logged_dir / "manifest.json")  # recorded on the model version (below)
        card = (logged_dir / MODEL_CARD).read_text(encoding="utf-8")
        mlflow.log_text(card, MODEL_CARD)
        example = pd.DataFrame(
            {"text": ["兼职日结，只需身份证，加薇详聊", "今天天气不错，出去走走"], "data_id": ["a1", "a2"]}
        )
        model_info = _log_pyfunc(logged_dir, example, registered_name)
    registered = bool(registered_name) and model_info.registered_model_version is not None
    if registered:
        tracked.registered_version = str(model_info.registered_model_version)
        mlflow.MlflowClient().update_model_version(
            registered_name, tracked.registered_version, description=registry_description(card)
        )
        # models:/ downloads are checked against it (serving.download_artifact_dir)
        mlflow.MlflowClient().set_model_version_tag(
            registered_name, tracked.registered_version, MANIFEST_DIGEST_TAG, manifest_digest
        )
        _decide_promotion(tracked, registered_name, promote)
        mlflow.set_tag("duanka.promoted", str(tracked.promoted).lower())
        tracked.published = tracked.promoted
    target = output if tracked.published else challenger_dir(output)
    with _signals_held():
        tracked.artifact_dir = write_model(trained, target)
        written = read_manifest(tracked.artifact_dir).get("model_version")
        if written != tracked.model_version:
            raise ArtifactError(f"{tracked.artifact_dir}: holds {written} after writing {tracked.model_version}")
        if registered and tracked.promoted:
            mlflow.MlflowClient().set_registered_model_alias(registered_name, CHAMPION, tracked.registered_version)
    mlflow.set_tag("duanka.artifact_dir", str(tracked.artifact_dir))


# MLflow's SQL stores keep a model version's description in VARCHAR(5000) (SQLite does not enforce it, PostgreSQL
# and MySQL refuse longer text).
MAX_DESCRIPTION = 5000


def registry_description(card: str) -> str:
    """The registered version's description: the model card, whole when it fits the registry's 5,000 characters,
    else its first sections that fit and where the whole card is."""
    if len(card) <= MAX_DESCRIPTION:
        return card
    note = f"\n\n(Cut to fit the registry: the whole card is {MODEL_CARD} in the model's artifacts.)\n"
    sections = card.split("\n## ")
    while len(sections) > 1 and len("\n## ".join(sections)) + len(note) > MAX_DESCRIPTION:
        sections.pop()
    return ("\n## ".join(sections).rstrip() + note)[:MAX_DESCRIPTION]


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on them as their handlers would.

    Python-level (handlers swapped for a recorder) rather than a thread signal mask: a process-directed signal
    is delivered to any thread that does not mask it, and MLflow's client may have threads of its own.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in caught:
            handler = previous[number]
            if callable(handler):
                handler(number, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(number)


def _log_inputs(trained: TrainRun) -> None:
    """Every input file as an MLflow dataset whose source is its absolute path and whose digest is the start of its
    sha256 (the whole digest and path are params): training files (context ``training``; ``feedback`` for a file of
    reviewed labels, which is also copied into the run as ``inputs/<name>``, since the feedback file keeps
    growing after the run), the holdout and the background traffic."""
    for path in trained.data_files:
        frame = trained.data_frame[trained.data_frame["_file"] == str(path)].drop(columns=["_file"])
        digest = sha256_file(path)
        context = "feedback" if _is_feedback(path, frame) else "training"
        mlflow.log_params({f"train_file.{path.name}": str(path.resolve()), f"train_sha256.{path.name}": digest})
        if frame.empty and trained.info.training_rows:  # the stream engine never holds the rows: the file, by digest
            _log_file_dataset(path, digest, context)
        else:
            mlflow.log_input(_frame_dataset(frame, path, digest), context=context)
        if context == "feedback":
            mlflow.log_artifact(str(path), "inputs")
    if len(trained.data_files) == 1:  # the names earlier runs used, so runs stay comparable
        first = trained.data_files[0]
        mlflow.log_params({"train_file": str(first.resolve()), "train_sha256": trained.info.training_data_sha256})
    for path in trained.background_files:
        digest = sha256_file(path)
        mlflow.log_params(
            {f"background_file.{path.name}": str(path.resolve()), f"background_sha256.{path.name}": digest}
        )
        _log_file_dataset(path, digest, "background")
    if trained.background_files:
        mlflow.log_params({"background_rows": trained.result.background_rows})
    if trained.holdout_frame is not None and trained.holdout_file is not None:
        path = trained.holdout_file
        digest = sha256_file(path)
        mlflow.log_params({"holdout_file": str(path.resolve()), "holdout_sha256": digest})
        mlflow.log_input(_frame_dataset(trained.holdout_frame, path, digest), context="holdout")


# MLflow keeps a dataset digest in 36 characters; 16 hex characters of the sha256 name the file's content.
DIGEST_CHARS = 16


def _frame_dataset(frame: pd.DataFrame, path: Path, digest: str) -> Any:
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    source = resolve_dataset_source(str(path.resolve()))
    return mlflow.data.from_pandas(frame, source=source, name=path.name, targets="label", digest=digest[:DIGEST_CHARS])


def _log_file_dataset(path: Path, digest: str, context: str) -> None:
    """A file logged by source and digest alone (rows not held: the stream engine's training file, background)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    source = resolve_dataset_source(str(path.resolve()))
    mlflow.log_input(MetaDataset(source, name=path.name, digest=digest[:DIGEST_CHARS]), context=context)


def _is_feedback(path: Path, frame: pd.DataFrame) -> bool:
    """A file of reviewed labels (``duanka review import`` writes ``source=feedback``): any such row, or, when the
    rows are not held (stream engine), one among the file's first 100."""
    from itertools import islice

    from duanka.files.readers import iter_records

    if not frame.empty:
        return "source" in frame.columns and bool((frame["source"] == "feedback").any())
    head = islice(iter_records(path), 100)
    return any(not record.error and record.values.get("source") == "feedback" for record in head)


def _log_policies(trained: TrainRun) -> None:
    """Each policy's rule as params (``policy.sms.rule``), and the resolved policies as ``policies.json``."""
    mlflow.log_params(
        {
            f"policy.{name}.rule": ", ".join(f"{k}={v:g}" for k, v in policy["rule"].items()) or "training targets"
            for name, policy in trained.info.policies.items()
        }
    )
    mlflow.log_dict(trained.info.policies, "policies.json")


def _pipeline_params(result: Any) -> dict[str, Any]:
    params = {}
    for key, value in result.pipeline.get_params(deep=True).items():
        if isinstance(value, (int, float, str, bool, tuple, type(None))) and not key.endswith("__steps"):
            params[key] = str(value)[:250]
    return params


def _log_metrics(trained: TrainRun) -> None:
    result = trained.result
    values = {**trained.validation.scalars("validation"), **trained.rules_validation.scalars("rules_validation")}
    if trained.holdout is not None:
        values.update(trained.holdout.scalars("holdout"))
    if trained.rules_holdout is not None:
        values.update(trained.rules_holdout.scalars("rules_holdout"))
    values.update({f"cv_macro_f1_C_{c:g}": f for c, f in result.cv_macro_f1.items()})
    values.update({f"validation_macro_f1_normal_weight_{w:g}": f for w, f in result.label_macro_f1.items()})
    values.update({f"threshold_{k}": v for k, v in trained.thresholds.items()})
    for name, policy in trained.info.policies.items():
        values.update({f"policy.{name}.{k}": policy[k] for k in ("review", "block")})
        values.update({f"policy.{name}.validation_{k}": v for k, v in policy["validation"].items()})
    values.update({f"time_{k}": v for k, v in result.timings.items()})
    mlflow.log_metrics(values)


def _log_artifacts(trained: TrainRun) -> None:
    from sklearn.metrics import classification_report

    result = trained.result
    figures = [
        (confusion_figure(trained.validation, "validation (out-of-fold)"), "plots/confusion_validation.png"),
        (
            pr_figure(result.train_frame["label"], result.validation_proba, "validation (out-of-fold)"),
            "plots/pr_validation.png",
        ),
    ]
    if trained.holdout is not None:
        figures += [
            (confusion_figure(trained.holdout, "holdout"), "plots/confusion_holdout.png"),
            (pr_figure(trained.holdout_frame["label"], trained.holdout_proba, "holdout"), "plots/pr_holdout.png"),
        ]
    for figure, name in figures:
        mlflow.log_figure(figure, name)
    terms = top_terms(result.pipeline, 30)
    mlflow.log_table(terms, "top_terms.json")
    with tempfile.TemporaryDirectory() as tmp:
        terms_path = Path(tmp) / "top_terms.csv"
        write_csv_for_people(terms, terms_path)
        mlflow.log_artifact(str(terms_path), "reports")
        if trained.holdout is not None:
            errors_path = Path(tmp) / "holdout_errors.csv"
            write_csv_for_people(errors_table(trained.holdout_frame, trained.holdout_proba), errors_path)
            mlflow.log_artifact(str(errors_path), "reports")
            predicted = [LABELS[i] for i in trained.holdout_proba.argmax(axis=1)]
            report = classification_report(trained.holdout_frame["label"], predicted, labels=list(LABELS), digits=4)
            mlflow.log_text(report, "reports/classification_report_holdout.txt")

    def as_dict(values: Any) -> Any:
        return values.to_dict() if values is not None else None

    mlflow.log_dict(
        {
            "validation": as_dict(trained.validation),
            "holdout": as_dict(trained.holdout),
            "rules_validation": as_dict(trained.rules_validation),
            "rules_holdout": as_dict(trained.rules_holdout),
            "thresholds": trained.thresholds,
        },
        "reports/metrics.json",
    )


def _log_pyfunc(artifact_dir: Path, example: pd.DataFrame, registered_name: str | None) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    scorer = Scorer.load(artifact_dir, strict=True)
    results_frame(scorer.score_batch(example["text"].tolist(), example["data_id"].tolist()))  # must not fail
    inputs = Schema(
        [
            ColSpec("string", "text"),
            ColSpec("string", "data_id", required=False),
            ColSpec("string", "policy", required=False),
        ]
    )
    # Typed by hand from serving's column list: an all-None data_id would otherwise be inferred as `any`,
    # which mlflow.pyfunc.spark_udf refuses.
    kinds = {"risk": "double", "degraded": "boolean", "truncated": "boolean"}
    columns = [ColSpec(kinds.get(name, "string"), name) for name in SCALAR_COLUMNS]
    columns[0] = ColSpec("string", "data_id", required=False)
    columns += [ColSpec("double", f"p_{label}") for label in LABELS]
    columns += [ColSpec("string", name) for name in JSON_COLUMNS]
    signature = ModelSignature(inputs=inputs, outputs=Schema(columns))
    package_dir = Path(__file__).resolve().parents[1]  # the duanka package, shipped whole as code
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(package_dir / "adapters" / "serving.py"),  # models-from-code: no cloudpickle
        artifacts={"artifact": str(artifact_dir)},
        code_paths=[str(package_dir)],
        signature=signature,
        input_example=example,
        registered_model_name=registered_name,
        pip_requirements=_requirements(),
    )


def _requirements() -> list[str]:
    """The served model's pip requirements: duanka's core dependencies, read from its own installed metadata (so
    they cannot drift from pyproject.toml), plus what the pyfunc wrapper needs, each pinned to the version here."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    core = [Requirement(spec).name for spec in requires("duanka") or [] if "extra ==" not in spec]
    return [f"{name}=={version(name)}" for name in dict.fromkeys([*core, "mlflow", "pandas"])]


def _promotion_gate(new: dict[str, float], old: dict[str, Any]) -> tuple[bool, str]:
    """(promote, why): holdout macro-F1 may not drop and holdout normal FPR may not rise by more than
    ``FPR_TOLERANCE``; both comparisons printed to four decimals."""
    old_f1, old_fpr = old.get(PROMOTION_METRIC), old.get(FPR_METRIC)
    f1_ok = old_f1 is None or new[PROMOTION_METRIC] >= old_f1
    fpr_ok = old_fpr is None or new[FPR_METRIC] <= old_fpr + FPR_TOLERANCE
    show = lambda value: "(none)" if value is None else f"{value:.4f}"  # noqa: E731
    reason = (
        f"holdout macro-F1 {new[PROMOTION_METRIC]:.4f} {'>=' if f1_ok else '<'} champion's {show(old_f1)}; "
        f"holdout normal FPR {new[FPR_METRIC]:.4f} {'<=' if fpr_ok else '>'} champion's {show(old_fpr)} "
        f"+ {FPR_TOLERANCE:.4f}"
    )
    return f1_ok and fpr_ok, reason


def _log_gate(new: dict[str, float], old: dict[str, Any]) -> None:
    deltas = {
        f"promotion_{name}_delta": new[name] - old[name]
        for name in (PROMOTION_METRIC, FPR_METRIC)
        if old.get(name) is not None
    }
    mlflow.log_metrics(deltas)
    mlflow.set_tag("duanka.promotion_rule", f"macro-F1 may not drop; normal FPR may rise at most {FPR_TOLERANCE}")


def _decide_promotion(tracked: TrackedRun, model_name: str, promote: bool | None) -> None:
    """Register the new version as challenger and decide, by the gate, whether it becomes champion (the alias
    moves in :func:`_register_and_publish`, once the artifact is published)."""
    client = mlflow.MlflowClient()
    version = tracked.registered_version
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    client.set_model_version_tag(model_name, version, "duanka.model_version", tracked.model_version)
    holdout = tracked.trained.holdout
    new = {PROMOTION_METRIC: holdout.macro_f1, FPR_METRIC: holdout.normal_fpr} if holdout is not None else None
    current = champion(model_name)
    if current is not None:
        run = client.get_run(current.run_id) if current.run_id else None
        old = {name: (run.data.metrics.get(name) if run else None) for name in (PROMOTION_METRIC, FPR_METRIC)}
        tracked.champion_before = {"version": current.version, "run_id": current.run_id, **old}
    if promote is True:
        tracked.promoted, tracked.promotion_reason = True, "--promote given"
    elif promote is False:
        tracked.promoted, tracked.promotion_reason = False, "--no-promote given"
    elif current is None:
        tracked.promoted, tracked.promotion_reason = True, "no champion yet"
    elif new is None:
        tracked.promoted, tracked.promotion_reason = False, "no holdout metrics to compare"
    else:
        tracked.promoted, tracked.promotion_reason = _promotion_gate(new, tracked.champion_before or {})
        _log_gate(new, tracked.champion_before or {})


# ---------------------------------------------------------------- monitoring
MONITOR_EXPERIMENT = "duanka-monitor"


def _window_metrics(window: dict[str, Any]) -> dict[str, float]:
    """A monitor window's figures as flat MLflow metrics."""
    found: dict[str, float] = {key: window[key] for key in ("rows", "errors", "signal_posts")}
    found["verdict_level"] = ("ok", "watch", "alert").index(window["verdict"])
    for policy, rates in window["rates"].items():
        for decision, rate in rates.items():
            found[f"{policy}.{decision}_rate"] = rate["share"]
    for policy, drift in window["risk"].items():
        if "psi_previous" in drift:
            found[f"{policy}.risk_psi"] = drift["psi_previous"]
    for step, rate in window["input"]["steps"].items():
        found[f"step.{step}_share"] = rate["share"]
    found["oov_words"] = window["input"]["oov_words"]
    found["oov_char_ngrams"] = window["input"]["oov_char_ngrams"]
    found["new_slang"] = len(window["slang"])
    return found


def log_monitor_report(report: dict[str, Any], tracking_uri: str | None = None) -> str:
    """Log a ``duanka monitor`` report to MLflow: one run, each window's metrics at its step, the model version as a
    tag, the JSON report as an artifact. Returns the run id."""
    import json

    uri = configure_tracking(tracking_uri)
    model = report.get("model") or {}
    with mlflow.start_run(experiment_id=_experiment_id(MONITOR_EXPERIMENT, uri)) as run:
        mlflow.set_tags({"model_version": str(model.get("model_version")), "windows": len(report["windows"])})
        for step, window in enumerate(report["windows"]):
            mlflow.log_metrics(_window_metrics(window), step=step)
            mlflow.set_tag(f"verdict.{step}", f"{window['name']}: {window['verdict']}")
        mlflow.log_text(json.dumps(report, ensure_ascii=False, indent=1), "monitor.json")
        return run.info.run_id
