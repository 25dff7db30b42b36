"""Everything MLflow: the embedded default store, run logging, the registry and its aliases, and the pyfunc
wrapper around :class:`duanka.Scorer`. The only module that imports mlflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from duanka import __version__
from duanka.artifact import write_artifact
from duanka.config import TrainConfig
from duanka.data import file_digest, load_posts
from duanka.errors import TrackingError
from duanka.evaluate import confusion_figure, errors_table, pr_figure, scalar_metrics, top_terms
from duanka.labels import LABELS
from duanka.rules import RuleSet
from duanka.train import TrainResult, train

__all__ = [
    "DEFAULT_TRACKING_URI",
    "DuankaModel",
    "TrackedRun",
    "champion",
    "configure_tracking",
    "download_artifact_dir",
    "train_tracked",
]

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_EXPERIMENT = "duanka"
DEFAULT_MODEL_NAME = "duanka"
CHAMPION, CHALLENGER = "champion", "challenger"
GATE_METRIC = "holdout_macro_f1"


def configure_tracking(tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the embedded store in ``./mlruns``.

    Raises:
        TrackingError: the tracking server cannot be reached.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    # Fail within seconds, not after MLflow's default minutes of retries, when a server is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    if uri == DEFAULT_TRACKING_URI:
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
    location = None
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # Embedded store: keep artifacts beside the database, under ./mlruns/artifacts.
        location = (Path(uri[len("sqlite:///") :]).resolve().parent / "artifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def champion(model_name: str = DEFAULT_MODEL_NAME) -> Any | None:
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


class DuankaModel(PythonModel):
    """MLflow pyfunc that runs :class:`duanka.Scorer` on the artifact directory logged with it."""

    def load_context(self, context: Any) -> None:
        from duanka.scorer import Scorer

        self.scorer = Scorer.load(context.artifacts["artifact"], strict=True)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a DataFrame with a ``text`` column (and optional ``data_id``)."""
        texts, ids = _inputs(model_input)
        return results_frame(self.scorer.score_batch(texts, ids))


def _inputs(model_input: Any) -> tuple[list[str], list[Any]]:
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        texts = [str(t) if t is not None else "" for t in model_input[column].tolist()]
        ids = model_input["data_id"].tolist() if "data_id" in model_input.columns else [None] * len(texts)
        return texts, ids
    if isinstance(model_input, str):
        return [model_input], [None]
    texts = [str(t) for t in model_input]
    return texts, [None] * len(texts)


def results_frame(results: list[Any]) -> pd.DataFrame:
    """Scorer results as the pyfunc's output table: scalars as columns, evidence and notes as JSON."""
    rows = []
    for result in results:
        row = {
            "data_id": None if result.data_id is None else str(result.data_id),
            "label": result.label,
            "risk": result.risk,
            "decision": result.decision,
            "source": result.source,
            "degraded": result.degraded,
            "truncated": result.truncated,
            "model_version": result.model_version,
        }
        row.update({f"p_{label}": result.probabilities[label] for label in LABELS})
        row["evidence"] = json.dumps(result.evidence, ensure_ascii=False)
        row["notes"] = json.dumps(result.notes, ensure_ascii=False)
        rows.append(row)
    return pd.DataFrame(rows)


def download_artifact_dir(uri: str) -> Path:
    """Download the duanka artifact directory inside an MLflow model (``models:/...``, ``runs:/...``)."""
    from duanka.errors import ArtifactError

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(prefix="duanka-")))
    except Exception as exc:
        raise ArtifactError(f"{uri}: cannot download the model ({type(exc).__name__}: {exc})") from None
    # pyfunc artifacts land under artifacts/<name of the logged directory>
    candidates = [local, *sorted((local / "artifacts").glob("*"))] if (local / "artifacts").is_dir() else [local]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    raise ArtifactError(f"{uri}: the downloaded model holds no duanka artifact (no manifest.json)")


@dataclass
class TrackedRun:
    """What ``duanka train`` did: the run, the artifact, the registry version and the promotion decision."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    artifact_dir: Path
    result: TrainResult
    model_version: str
    registered_version: str | None = None
    champion_before: dict[str, Any] | None = None
    promoted: bool = False
    promotion_reason: str = ""


def train_tracked(
    data: str | Path = "data/posts.csv",
    holdout: str | Path | None = "data/holdout.csv",
    output: str | Path = "models/duanka",
    config: TrainConfig | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    model_name: str = DEFAULT_MODEL_NAME,
    register: bool = True,
    promote: bool | None = None,
    tracking_uri: str | None = None,
    rules: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    run_name: str | None = None,
) -> TrackedRun:
    """Train, log an MLflow run, write the artifact directory, register and alias the model.

    Args:
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
    train_frame = load_posts(data)
    holdout_frame = load_posts(holdout) if holdout else None
    say(
        f"data: {len(train_frame)} training rows"
        + (f", {len(holdout_frame)} holdout rows" if holdout_frame is not None else "")
    )

    with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        # MLflow's notice that a local path fits two of its dataset-source types says nothing to a duanka user.
        warnings.filterwarnings("ignore", message=r".*dataset source can be interpreted", category=UserWarning)
        run_id = run.info.run_id
        mlflow.set_tags(
            {"duanka.version": __version__, "duanka.rules": rule_set.name, "duanka.rules_sha256": rule_set.digest}
        )
        commit = _git_commit()
        if commit:
            mlflow.set_tag("mlflow.source.git.commit", commit)
        mlflow.log_params({k: str(v) for k, v in config.flat_params().items()})
        mlflow.log_dict(config.to_dict(), "config.json")
        train_digest = file_digest(data)
        mlflow.log_params({"train_file": str(data), "train_sha256": train_digest})
        mlflow.log_input(
            mlflow.data.from_pandas(train_frame, source=str(data), name=Path(data).name, targets="label"),
            context="training",
        )
        if holdout_frame is not None:
            mlflow.log_params({"holdout_file": str(holdout), "holdout_sha256": file_digest(holdout)})
            mlflow.log_input(
                mlflow.data.from_pandas(holdout_frame, source=str(holdout), name=Path(holdout).name, targets="label"),
                context="holdout",
            )

        started = time.perf_counter()
        result = train(train_frame, holdout_frame, config, rule_set, progress=say)
        result.timings["train_total_s"] = time.perf_counter() - started
        mlflow.log_params({"selected_C": result.C, **{f"pipeline.{k}": v for k, v in _pipeline_params(result).items()}})
        _log_metrics(result)

        model_version = _model_version(result)
        manifest = {
            "model_version": model_version,
            "labels": list(LABELS),
            "thresholds": result.thresholds,
            "metrics": {
                "validation": _round(result.validation),
                "holdout": _round(result.holdout) if result.holdout else None,
            },
            "mlflow_run_id": run_id,
            "training_data_sha256": train_digest,
            "training_rows": len(result.train_frame),
            "seed": config.seed,
            "C": result.C,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        artifact_dir = write_artifact(output, result.pipeline, rule_set.source_text, manifest)
        say(f"artifact written to {artifact_dir}")
        _log_artifacts(result)

        example = pd.DataFrame({"text": ["兼职日结，只需身份证，加薇详聊", "今天天气不错，出去走走"]})
        model_info = _log_pyfunc(artifact_dir, example, model_name if register else None)
        tracked = TrackedRun(run_id, experiment_id, uri, Path(artifact_dir), result, model_version)
        if register and model_info.registered_model_version is not None:
            tracked.registered_version = str(model_info.registered_model_version)
            _apply_aliases(tracked, model_name, promote)
            mlflow.set_tag("duanka.promoted", str(tracked.promoted).lower())
    return tracked


def _pipeline_params(result: TrainResult) -> dict[str, Any]:
    params = {}
    for key, value in result.pipeline.get_params(deep=True).items():
        if isinstance(value, (int, float, str, bool, tuple, type(None))) and not key.endswith("__steps"):
            params[key] = str(value)[:250]
    return params


def _round(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}


def _model_version(result: TrainResult) -> str:
    import hashlib
    import pickle

    digest = hashlib.sha256(pickle.dumps(result.pipeline.named_steps["classifier"].coef_)).hexdigest()
    return f"{time.strftime('%Y%m%d', time.gmtime())}-{digest[:10]}"


def _log_metrics(result: TrainResult) -> None:
    values = {
        **scalar_metrics(result.validation, "validation"),
        **scalar_metrics(result.rules_validation or {}, "rules_validation"),
    }
    if result.holdout:
        values.update(scalar_metrics(result.holdout, "holdout"))
        values.update(scalar_metrics(result.rules_holdout or {}, "rules_holdout"))
    values.update({f"cv_macro_f1_C_{c:g}": f for c, f in result.cv_macro_f1.items()})
    values.update({f"threshold_{k}": v for k, v in result.thresholds.items()})
    values.update({f"time_{k}": v for k, v in result.timings.items()})
    mlflow.log_metrics(values)


def _log_artifacts(result: TrainResult) -> None:
    from sklearn.metrics import classification_report

    figures = [
        (confusion_figure(result.validation, "validation (out-of-fold)"), "plots/confusion_validation.png"),
        (
            pr_figure(result.train_frame["label"], result.validation_proba, "validation (out-of-fold)"),
            "plots/pr_validation.png",
        ),
    ]
    if result.holdout:
        figures += [
            (confusion_figure(result.holdout, "holdout"), "plots/confusion_holdout.png"),
            (pr_figure(result.holdout_frame["label"], result.holdout_proba, "holdout"), "plots/pr_holdout.png"),
        ]
    for figure, name in figures:
        mlflow.log_figure(figure, name)
    mlflow.log_table(top_terms(result.pipeline, 30), "top_terms.json")
    with tempfile.TemporaryDirectory() as tmp:
        terms_path = Path(tmp) / "top_terms.csv"
        top_terms(result.pipeline, 30).to_csv(terms_path, index=False)
        mlflow.log_artifact(str(terms_path), "reports")
        if result.holdout:
            errors_path = Path(tmp) / "holdout_errors.csv"
            errors_table(result.holdout_frame, result.holdout_proba).to_csv(errors_path, index=False)
            mlflow.log_artifact(str(errors_path), "reports")
            predicted = [LABELS[i] for i in result.holdout_proba.argmax(axis=1)]
            report = classification_report(result.holdout_frame["label"], predicted, labels=list(LABELS), digits=4)
            mlflow.log_text(report, "reports/classification_report_holdout.txt")
    mlflow.log_dict(
        {
            "validation": result.validation,
            "holdout": result.holdout,
            "rules_validation": result.rules_validation,
            "rules_holdout": result.rules_holdout,
            "thresholds": result.thresholds,
        },
        "reports/metrics.json",
    )


def _log_pyfunc(artifact_dir: Path, example: pd.DataFrame, registered_name: str | None) -> Any:
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    from duanka.scorer import Scorer

    scorer = Scorer.load(artifact_dir, strict=True)
    output = results_frame(scorer.score_batch(example["text"].tolist()))
    inputs = Schema([ColSpec("string", "text"), ColSpec("string", "data_id", required=False)])
    signature = ModelSignature(inputs=inputs, outputs=infer_signature(example, output).outputs)
    package_dir = Path(__file__).resolve().parent
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(package_dir / "pyfunc_model.py"),  # models-from-code: no cloudpickle
        artifacts={"artifact": str(artifact_dir)},
        code_paths=[str(package_dir)],
        signature=signature,
        input_example=example,
        registered_model_name=registered_name,
        pip_requirements=_requirements(),
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("scikit-learn", "jieba", "joblib", "numpy", "pandas", "pyyaml", "mlflow")
    ]


def _apply_aliases(tracked: TrackedRun, model_name: str, promote: bool | None) -> None:
    client = mlflow.MlflowClient()
    version = tracked.registered_version
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    client.set_model_version_tag(model_name, version, "duanka.model_version", tracked.model_version)
    new_score = (tracked.result.holdout or {}).get("macro_f1")
    current = champion(model_name)
    if current is not None:
        run = client.get_run(current.run_id) if current.run_id else None
        score = run.data.metrics.get(GATE_METRIC) if run else None
        tracked.champion_before = {"version": current.version, "run_id": current.run_id, GATE_METRIC: score}
    if promote is True:
        tracked.promoted, tracked.promotion_reason = True, "--promote given"
    elif promote is False:
        tracked.promoted, tracked.promotion_reason = False, "--no-promote given"
    elif current is None:
        tracked.promoted, tracked.promotion_reason = True, "no champion yet"
    elif new_score is None:
        tracked.promoted, tracked.promotion_reason = False, "no holdout metrics to compare"
    else:
        old = tracked.champion_before.get(GATE_METRIC)
        tracked.promoted = old is None or new_score >= old
        tracked.promotion_reason = (
            f"holdout macro-F1 {new_score:.4f} {'>=' if tracked.promoted else '<'} champion's "
            + (f"{old:.4f}" if old is not None else "(none)")
        )
    if tracked.promoted:
        client.set_registered_model_alias(model_name, CHAMPION, version)
