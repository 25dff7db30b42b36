"""Train → evaluate → write the artifact, as plain functions with no MLflow: the CLI, notebooks, the benchmark
and ``duanka.adapters.tracking`` all call these.

The holdout is scored by the same :class:`~duanka.scoring.scorer.Scorer` that services load, so the reported figures
are those of production scoring, not of a second path.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duanka import defaults
from duanka.files.readers import sha256_file
from duanka.labels import LABELS, RISKY_LABELS
from duanka.monitoring.reference import REFERENCE_FILE, reference_profile
from duanka.monitoring.stats import WindowStats
from duanka.scoring.artifact import ModelInfo
from duanka.scoring.evidence_gate import decision_risk, gated_risk
from duanka.scoring.policy import DEFAULT_POLICY
from duanka.scoring.rules import RuleSet
from duanka.scoring.scorer import Scorer
from duanka.text.normalize import normalize
from duanka.training.config import TrainConfig
from duanka.training.dataset import load_posts
from duanka.training.evaluate import Metrics, metrics
from duanka.training.export import write_artifact
from duanka.training.features import FittedModel, export_pipeline, risk_of
from duanka.training.fit import TrainResult, train
from duanka.training.model_card import MODEL_CARD, model_card
from duanka.training.thresholds import PolicySet, choose_thresholds, decision_rates, rate_threshold, resolve_policies

__all__ = [
    "TrainRun",
    "evaluate_holdout",
    "load_background",
    "load_training_data",
    "train_artifact",
    "train_model",
    "write_model",
]

Progress = Callable[[str], None]


@dataclass
class TrainRun:
    """A trained model, what it was trained on, and everything measured; not yet written anywhere."""

    result: TrainResult
    rules: RuleSet
    info: ModelInfo
    data_files: list[Path]
    data_frame: pd.DataFrame
    thresholds: dict[str, float]  # the default policy's, chosen once on the out-of-fold predictions
    validation: Metrics  # the model's out-of-fold predictions, decided with those thresholds
    rules_validation: Metrics  # the rules alone on the same rows
    holdout_file: Path | None = None
    holdout_frame: pd.DataFrame | None = None
    holdout: Metrics | None = None
    holdout_proba: np.ndarray | None = None
    rules_holdout: Metrics | None = None
    artifact_dir: Path | None = None
    background_files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model_version(self) -> str:
        return self.info.model_version


DataSource = str | Path | Sequence[str | Path] | pd.DataFrame


def _paths(data: DataSource) -> list[Path]:
    if isinstance(data, pd.DataFrame):
        return []
    return [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]


def load_training_data(data: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Load and validate one or more labeled files into one frame (``_file`` names each row's file).

    Raises:
        DataError: a file is invalid, or two files share a group (a family split across files would leak).
    """
    from duanka.errors import DataError

    frames = []
    for path in _paths(data):
        frame = load_posts(path)
        frames.append(frame.assign(_file=str(path)))
    if len(frames) > 1:
        seen: dict[str, str] = {}
        for frame in frames:
            for group in set(frame["group"]):
                if group in seen and seen[group] != frame["_file"].iloc[0]:
                    raise DataError(f"{frame['_file'].iloc[0]}: group {group!r} is also in {seen[group]}")
                seen[group] = frame["_file"].iloc[0]
    return pd.concat(frames, ignore_index=True)


def load_background(paths: Sequence[str | Path], sample: int, seed: int) -> list[str]:
    """Texts of background traffic files (any table with a ``text`` column; other columns, labels included,
    are ignored): non-empty string rows, at most ``sample`` of them (0: all) drawn with ``seed``.

    Raises:
        DataError: a file cannot be read or has no ``text`` column.
    """
    import random

    from duanka.errors import DataError
    from duanka.files.readers import iter_records

    texts: list[str] = []
    for path in paths:
        found = 0
        for record in iter_records(path):
            if record.error:
                continue
            if "text" not in record.values:
                raise DataError(f"{path}: {record.where}: no 'text' column (background files need one)")
            text = record.values["text"]
            if isinstance(text, str) and text.strip():
                texts.append(text)
                found += 1
        if not found:
            raise DataError(f"{path}: no usable text rows for background")
    if sample and len(texts) > sample:
        texts = random.Random(seed).sample(texts, sample)
    return texts


def evaluate_holdout(scorer: Scorer, frame: pd.DataFrame, rules: RuleSet) -> tuple[Metrics, np.ndarray, Metrics]:
    """Holdout metrics of the scorer (with its thresholds) and of the rules alone, and the scorer's probabilities."""
    texts = frame["text"].tolist()
    labels = frame["label"].to_numpy()
    proba = scorer.predict_proba(texts)
    seen = decision_risk(risk_of(proba), [normalize(t) for t in texts], scorer.thresholds["block"])
    return (
        metrics(labels, proba, scorer.thresholds, decision_risk=seen),
        proba,
        metrics(labels, rules.predict_proba(texts), rules.thresholds),
    )


def _model_version(pipeline: object) -> str:
    classifier = FittedModel(pipeline).classifier
    digest = hashlib.sha256(np.ascontiguousarray(classifier.coef_).tobytes())
    digest.update(np.ascontiguousarray(classifier.intercept_).tobytes())  # the normal weight lives here
    return f"{time.strftime('%Y%m%d', time.gmtime())}-{digest.hexdigest()[:10]}"


def _frame_digest(frame: pd.DataFrame) -> str:
    rows = frame[["text", "label", "group"]].to_csv(index=False).encode("utf-8")
    return hashlib.sha256(rows).hexdigest()


def _round(values: dict[str, object]) -> dict[str, object]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}


def _decide_on_validation(
    result: TrainResult, policy_set: PolicySet, rules: RuleSet, config: TrainConfig
) -> tuple[dict[str, dict[str, Any]], Metrics, Metrics]:
    """Every policy's thresholds (the default one from the config's targets), chosen once on the out-of-fold
    risk of the rows the evidence gate leaves to the model; the validation metrics of the model under the
    default policy, and of the rules alone, on the same rows."""
    labels = result.train_frame["label"].to_numpy()
    texts = result.train_frame["text"].tolist()
    risk = risk_of(result.validation_proba)
    open_rows = result.gate_open
    is_risky = np.isin(labels, RISKY_LABELS)
    resolved = resolve_policies(
        policy_set, is_risky[open_rows], risk[open_rows], config.block_precision, config.review_recall
    )
    if result.background_proba is not None and len(result.background_proba):
        resolved[DEFAULT_POLICY] = _background_policy(result, config, is_risky[open_rows], risk[open_rows])
    thresholds = {k: resolved[DEFAULT_POLICY][k] for k in ("review", "block")}
    gated = gated_risk(risk, result.gate_ceilings)
    validation = metrics(labels, result.validation_proba, thresholds, decision_risk=gated)
    return resolved, validation, metrics(labels, rules.predict_proba(texts), rules.thresholds)


def _background_policy(
    result: TrainResult, config: TrainConfig, is_risky: np.ndarray, risk: np.ndarray
) -> dict[str, Any]:
    """The default policy set on the user's own traffic: the thresholds that flag and block at most the
    configured shares of the background rows (out-of-fold risk, as the evidence gate lets decisions see it), and
    what they do on the labeled validation rows (the recall they buy)."""
    ceilings = result.background_ceilings
    background_risk = risk_of(result.background_proba)
    can_flag = np.where(ceilings != "pass", background_risk, 0.0)
    can_block = np.where(ceilings == "block", background_risk, 0.0)
    review = rate_threshold(can_flag, config.background_review_rate)
    floor = choose_thresholds(is_risky, risk, config.background_min_block_precision, config.review_recall)["block"]
    block = max(rate_threshold(can_block, config.background_block_rate), floor)
    thresholds = {"review": min(review, block), "block": block}
    return {
        **thresholds,
        "description": "set on the background traffic (--background): its flag and block rates",
        "rule": {
            "background_review_rate": config.background_review_rate,
            "background_block_rate": config.background_block_rate,
            "background_min_block_precision": config.background_min_block_precision,
        },
        "validation": decision_rates(is_risky, risk, thresholds),
        "background": {
            "rows": len(background_risk),
            "flagged": round(float(np.mean(can_flag >= thresholds["review"])), 6),
            "blocked": round(float(np.mean(can_block >= thresholds["block"])), 6),
        },
    }


def _model_info(
    result: TrainResult, resolved: dict[str, dict[str, Any]], validation: Metrics, sources: dict[str, Any]
) -> ModelInfo:
    config = result.config
    return ModelInfo(
        model_version=_model_version(result.pipeline),
        thresholds={k: resolved[DEFAULT_POLICY][k] for k in ("review", "block")},
        metrics={"validation": _round(validation.to_dict()), "holdout": None},
        training_data_sha256="+".join(sha256_file(p) for p in sources["files"]) or _frame_digest(sources["frame"]),
        training_rows=int(sources["rows"]),
        seed=config.seed,
        C=result.C,
        normal_weight=result.normal_weight,
        mlflow_run_id=sources["mlflow_run_id"],
        background_rows=result.background_rows,
        background_sha256="+".join(sha256_file(p) for p in sources["background"]),
        policies=resolved,
    )


def _fit(
    data: DataSource,
    files: list[Path],
    holdout: str | Path | None,
    config: TrainConfig,
    say: Progress,
    background: Sequence[str | Path],
) -> tuple[pd.DataFrame, pd.DataFrame | None, TrainResult, float, int]:
    """(training frame, holdout frame, fitted result, when fitting started, labeled rows) by ``config.engine``;
    the stream engine never holds the training rows (its frame is empty, its result's ``train_frame`` is the
    held-out rows)."""
    if config.engine == "stream":
        from duanka.errors import ConfigError
        from duanka.training.stream import train_stream

        if background or not files:
            raise ConfigError("the stream engine trains on files only, without --background")
        holdout_frame = load_posts(holdout) if holdout else None
        started = time.perf_counter()
        streamed = train_stream(files, config, progress=say)
        return (
            pd.DataFrame(columns=["id", "text", "label", "group", "source", "_file"]),
            holdout_frame,
            streamed.result,
            started,
            streamed.rows,
        )
    frame = data.assign(_file="") if isinstance(data, pd.DataFrame) else load_training_data(files)
    holdout_frame = load_posts(holdout) if holdout else None
    say(
        f"data: {len(frame)} training rows"
        + (f", {len(holdout_frame)} holdout rows" if holdout_frame is not None else "")
    )
    started = time.perf_counter()
    background_texts = load_background(background, config.background_sample, config.seed) if background else None
    result = train(frame.drop(columns=["_file"]), config, progress=say, background=background_texts)
    return frame, holdout_frame, result, started, len(result.train_frame)


def train_model(
    data: DataSource = defaults.DATA,
    holdout: str | Path | None = defaults.HOLDOUT,
    config: TrainConfig | None = None,
    *,
    rules: str | Path | RuleSet | None = None,
    progress: Progress | None = None,
    mlflow_run_id: str | None = None,
    background: Sequence[str | Path] = (),
    policies: str | Path | PolicySet | None = None,
) -> TrainRun:
    """Train on ``data`` (one file or several), choose thresholds and policies, evaluate on ``holdout``;
    nothing is written.

    Args:
        data: labeled file(s), trained on together with groups intact; or an already loaded frame.
        holdout: the reported test set (``None`` to skip); never used for fitting, ``C`` or thresholds.
        config: hyperparameters and seed (default ``TrainConfig()``).
        rules: rules file or RuleSet evaluated beside the model and stored in the artifact (default: shipped).
        progress: called with a line of text at each step.
        mlflow_run_id: recorded in the manifest when the run is tracked.
        background: files of the user's own traffic, presumed normal (see :func:`duanka.training.fit.train`).
        policies: policy file or PolicySet whose targets are resolved on the validation rows (default: shipped).

    Returns:
        A TrainRun; pass it to :func:`write_model` to write the artifact.
    """
    config = config or TrainConfig()
    say = progress or (lambda message: None)
    rule_set = rules if isinstance(rules, RuleSet) else RuleSet.load(rules)
    policy_set = policies if isinstance(policies, PolicySet) else PolicySet.load(policies)
    files = _paths(data)
    frame, holdout_frame, result, started, rows = _fit(data, files, holdout, config, say, background)
    sources = {"files": files, "frame": frame, "mlflow_run_id": mlflow_run_id, "background": background, "rows": rows}
    return finish_run(result, sources, holdout, holdout_frame, rule_set, policy_set, say, started)


def finish_run(
    result: TrainResult,
    sources: dict[str, Any],
    holdout: str | Path | None,
    holdout_frame: pd.DataFrame | None,
    rule_set: RuleSet,
    policy_set: PolicySet,
    say: Progress,
    started: float | None = None,
) -> TrainRun:
    """Every engine's steps after the fit: thresholds and policies on the validation (or held-out) predictions,
    the manifest, the holdout scored by the Scorer services run.

    Args:
        sources: ``files``, ``frame``, ``mlflow_run_id``, ``background`` and ``rows`` (rows fitted on).
        started: when training started (``perf_counter``), for the total time in the timings.
    """
    resolved, validation, rules_validation = _decide_on_validation(result, policy_set, rule_set, result.config)
    if started is not None:
        result.timings["train_total_s"] = time.perf_counter() - started
    say(
        "thresholds and policies on validation: "
        + "; ".join(f"{name} review {p['review']:.4f} block {p['block']:.4f}" for name, p in resolved.items())
    )
    info = _model_info(result, resolved, validation, sources)
    files, frame = sources["files"], sources["frame"]
    run = TrainRun(result, rule_set, info, files, frame, info.thresholds, validation, rules_validation)
    run.holdout_file, run.holdout_frame = (Path(holdout) if holdout else None), holdout_frame
    run.background_files = [Path(p) for p in sources["background"]]
    if holdout_frame is not None and len(holdout_frame):
        _evaluate_run_on_holdout(run, resolved)
    return run


def _evaluate_run_on_holdout(run: TrainRun, resolved: dict[str, dict[str, Any]]) -> None:
    """Score the holdout with the scorer services will run (exported model, rules, policies) and record it."""
    started = time.perf_counter()
    info = run.info
    manifest = {"thresholds": info.thresholds, "model_version": info.model_version, "policies": resolved}
    scorer = Scorer(export_pipeline(run.result.pipeline), manifest, run.rules)
    run.holdout, run.holdout_proba, run.rules_holdout = evaluate_holdout(scorer, run.holdout_frame, run.rules)
    run.info = ModelInfo(**{**info.__dict__, "metrics": {**info.metrics, "holdout": _round(run.holdout.to_dict())}})
    run.result.timings["holdout_s"] = time.perf_counter() - started


def write_model(
    run: TrainRun, output: str | Path = defaults.ARTIFACT_DIR, *, real_traffic: dict[str, dict[str, Any]] | None = None
) -> Path:
    """Write ``run``'s artifact directory atomically (see :func:`duanka.training.export.write_artifact`), with
    the monitoring reference profile of its validation rows and the model card (``real_traffic``: figures
    measured on real traffic for the card, see :func:`duanka.training.model_card.model_card`)."""
    extra = {
        REFERENCE_FILE: monitor_reference(run).to_json().encode("utf-8"),
        MODEL_CARD: model_card(run, real_traffic).encode("utf-8"),
    }
    run.artifact_dir = write_artifact(output, run.result.pipeline, run.rules.source_text, run.info, extra_files=extra)
    return run.artifact_dir


def monitor_reference(run: TrainRun) -> WindowStats:
    """The reference profile ``duanka monitor`` compares traffic with: the validation rows, out-of-fold."""
    result = run.result
    risk = gated_risk(risk_of(result.validation_proba), result.gate_ceilings)
    predicted = [LABELS[k] for k in np.argmax(result.validation_proba, axis=1)]
    labels = result.train_frame["label"].to_numpy()
    model = export_pipeline(result.pipeline)
    return reference_profile(
        result.train_frame["text"].tolist(),
        risk,
        predicted,
        np.isin(labels, RISKY_LABELS).tolist(),
        run.info.policies or {DEFAULT_POLICY: run.info.thresholds},
        model.coverage,
    )


def train_artifact(
    data: DataSource = defaults.DATA,
    holdout: str | Path | None = defaults.HOLDOUT,
    output: str | Path = defaults.ARTIFACT_DIR,
    config: TrainConfig | None = None,
    *,
    rules: str | Path | RuleSet | None = None,
    progress: Progress | None = None,
    background: Sequence[str | Path] = (),
    policies: str | Path | PolicySet | None = None,
) -> TrainRun:
    """Train, evaluate and write the artifact to ``output``, with no MLflow (``duanka train --no-tracking``)."""
    run = train_model(data, holdout, config, rules=rules, progress=progress, background=background, policies=policies)
    write_model(run, output)
    (progress or (lambda message: None))(f"artifact written to {run.artifact_dir}")
    return run
