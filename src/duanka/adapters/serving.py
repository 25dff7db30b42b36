"""The serving adapter: MLflow model URIs resolved to a Scorer, the pyfunc that wraps the Scorer, its output frame.

One of the two modules that import MLflow (with ``duanka.adapters.tracking``); services that load an artifact
directory with :meth:`duanka.Scorer.load` never come here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from duanka import defaults
from duanka.errors import ArtifactError
from duanka.labels import LABELS
from duanka.scoring.limits import MAX_RECORDS, MAX_REQUEST_CHARS  # refused with a 400 (defined in the core)
from duanka.scoring.scorer import MAX_INPUT_CHARS, Scorer, ScoreResult, is_model_uri

__all__ = [
    "MANIFEST_DIGEST_TAG",
    "MAX_RECORDS",
    "MAX_REQUEST_CHARS",
    "DuankaModel",
    "check_model_input",
    "download_artifact_dir",
    "load_scorer",
    "read_model_input",
    "read_model_policies",
    "results_frame",
    "tracking_uri",
]

logger = logging.getLogger("duanka")

# The pyfunc's output columns, in order; its logged signature is built from these.
SCALAR_COLUMNS = ("data_id", "label", "risk", "decision", "source", "degraded", "truncated", "model_version", "policy")
JSON_COLUMNS = ("evidence", "notes")
MAX_LISTED = 5  # bad records named in one error message
# The sha256 of the artifact's manifest.json, set on a model version when it is registered; the manifest holds
# the sha256 of every other file, so a models:/ download that matches it is the artifact that was registered.
MANIFEST_DIGEST_TAG = "duanka.manifest_sha256"


def tracking_uri(explicit: str | None = None) -> str:
    """The store to use: ``explicit``, else ``$MLFLOW_TRACKING_URI``, else the project's embedded store."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or defaults.TRACKING_URI


def _check_store(uri: str) -> None:
    # MLflow would create an empty sqlite file for a store that does not exist and then say nothing useful.
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :] if not uri.startswith("sqlite:////") else uri[len("sqlite://") :])
        if not path.is_file():
            raise ArtifactError(
                f"no MLflow store at {path} (tracking URI {uri}); run `duanka train` here first, "
                "or set MLFLOW_TRACKING_URI (or pass tracking_uri=) to the store that holds the model"
            )


def download_artifact_dir(uri: str, destination: str | Path, store: str | None = None) -> Path:
    """Download the duanka artifact directory inside an MLflow model (``models:/...``, ``runs:/...``).

    Args:
        uri: the MLflow model URI.
        destination: an empty directory to download into (the caller owns and removes it).
        store: tracking URI; default :func:`tracking_uri`.
    """
    store = tracking_uri(store)
    _check_store(store)
    try:
        source, version = _resolve_registry_uri(uri, store)
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(destination), tracking_uri=store)
        )
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{uri}: cannot download the model from {store} ({type(exc).__name__}: {exc})") from None
    # pyfunc artifacts land under artifacts/<name of the logged directory>
    candidates = [local, *sorted((local / "artifacts").glob("*"))] if (local / "artifacts").is_dir() else [local]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            if version is not None:
                _check_manifest_digest(uri, candidate / "manifest.json", version)
            return candidate
    raise ArtifactError(f"{uri}: the downloaded model holds no duanka artifact (no manifest.json)")


def _check_manifest_digest(uri: str, manifest: Path, version: Any) -> None:
    """Refuse a ``models:/`` download whose manifest is not the one recorded on its model version."""
    from duanka.files.readers import sha256_file

    recorded = (version.tags or {}).get(MANIFEST_DIGEST_TAG)
    if recorded is None:
        logger.warning(
            "%s: model version %s has no %s tag (registered before duanka recorded it): the download is not checked "
            "against the registry",
            uri,
            version.version,
            MANIFEST_DIGEST_TAG,
        )
        return
    found = sha256_file(manifest)
    if found != recorded:
        raise ArtifactError(
            f"{uri}: the downloaded manifest.json has sha256 {found[:16]}…, but model version {version.version} "
            f"of {version.name!r} was registered with {recorded[:16]}… ({MANIFEST_DIGEST_TAG}): the artifact store "
            "holds files that were changed after registration; refusing to load them"
        )


def _resolve_registry_uri(uri: str, store: str) -> tuple[str, Any]:
    """(where the files are, the model version or None) of a ``models:/name@alias`` or ``models:/name/version``
    URI, asked of a client bound to ``store``: MLflow's own download resolves model names against its global
    registry setting, which may be another store (another champion). Other URIs are returned as they are."""
    if not uri.startswith("models:/"):
        return uri, None
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, _, number = rest.partition("/")
        if not number.isdigit():
            raise ArtifactError(f"{uri}: name a version (models:/{name}/3) or an alias (models:/{name}@champion)")
        version = client.get_model_version(name, number)
    return client.get_model_version_download_uri(name, version.version), version


def load_scorer(
    path_or_uri: str | Path = defaults.ARTIFACT_DIR,
    *,
    tracking_uri: str | None = None,
    strict: bool = False,
    **options: Any,
) -> Scorer:
    """A Scorer from an artifact directory or an MLflow URI (``models:/duanka@champion``, ``runs:/<id>/model``).

    A URI is resolved against ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's store
    ``sqlite:///mlruns/mlflow.db``; the download goes to a temporary directory that is removed once the
    Scorer holds the model. A URI that cannot be resolved or downloaded is an error naming the store it looked
    in (a service asked for a registered model must not run on rules without saying so); a downloaded artifact
    that is damaged falls back to rules like :meth:`Scorer.load` (``strict`` raises).

    Raises:
        ArtifactError: the store is missing, or the URI names nothing in it.

    Args:
        options: passed to :meth:`Scorer.load` (``rules``, ``blocklist``, ``allowlist``).
    """
    if not is_model_uri(path_or_uri):
        return Scorer.load(path_or_uri, strict=strict, **options)
    text = str(path_or_uri)
    scratch = Path(tempfile.mkdtemp(prefix="duanka-model-"))
    try:
        directory = download_artifact_dir(text, scratch, tracking_uri)
        return Scorer.load(directory, strict=strict, **options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read_model_input(frame: Any) -> tuple[list[Any], list[Any]]:
    """Texts and data ids from the pyfunc's input: a DataFrame with ``text`` (or a single unnamed column) and an
    optional ``data_id``; a string or a list of strings.

    Raises:
        MlflowException: (HTTP 400) a DataFrame with neither a ``text`` column nor exactly one column.
    """
    if isinstance(frame, pd.DataFrame):
        if "text" not in frame.columns and len(frame.columns) != 1:
            columns = ", ".join(map(str, frame.columns[:10])) or "none"
            _refuse([f"no 'text' column (columns: {columns})"])
        column = "text" if "text" in frame.columns else frame.columns[0]
        texts = frame[column].tolist()
        ids = frame["data_id"].tolist() if "data_id" in frame.columns else [None] * len(texts)
        return texts, ids
    if isinstance(frame, str):
        return [frame], [None]
    texts = list(frame)
    return texts, [None] * len(texts)


def read_model_policies(frame: Any, rows: int, known: Collection[str] | None = None) -> list[str | None]:
    """The optional ``policy`` column of the pyfunc's input (empty, null or missing: the default policy).

    Raises:
        MlflowException: (HTTP 400) a policy that is not a string, or not one of ``known`` when given; the message
            names the records and the policies the model knows.
    """
    if not isinstance(frame, pd.DataFrame) or "policy" not in frame.columns:
        return [None] * rows
    policies: list[str | None] = []
    problems = []
    for position, value in enumerate(frame["policy"].tolist()):
        if value is None or (isinstance(value, float) and value != value):  # None or NaN: no policy given
            policies.append(None)
        elif not isinstance(value, str):
            problems.append(f"record {position}: policy is {type(value).__name__}, not a string")
        elif not value.strip():
            policies.append(None)
        elif known is not None and value not in known:
            problems.append(f"record {position}: unknown policy {value[:100]!r}")
        else:
            policies.append(value)
    if problems:
        names = f" (this model knows: {', '.join(sorted(known))})" if known is not None else ""
        _refuse(problems, suffix=names)
    return policies


def results_frame(results: list[ScoreResult]) -> pd.DataFrame:
    """Results as the pyfunc's output table: ``ScoreResult.to_dict()`` flattened, evidence and notes as JSON."""
    rows = []
    for result in results:
        payload = result.to_dict()
        row = {name: payload[name] for name in SCALAR_COLUMNS}
        row["data_id"] = None if row["data_id"] is None else str(row["data_id"])
        row.update({f"p_{label}": payload["probabilities"][label] for label in LABELS})
        row.update({name: json.dumps(payload[name], ensure_ascii=False) for name in JSON_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


class DuankaModel(PythonModel):
    """MLflow pyfunc that runs :class:`duanka.Scorer` on the artifact directory logged with it."""

    def load_context(self, context: Any) -> None:
        self.scorer = Scorer.load(context.artifacts["artifact"], strict=True)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a DataFrame with a ``text`` column (and optional ``data_id`` and ``policy``, one per row).

        Raises:
            MlflowException: (HTTP 400) more than MAX_RECORDS records or MAX_REQUEST_CHARS characters, a text that
                is null, not a string or longer than MAX_INPUT_CHARS characters, a policy the model does not know;
                the message names the records. Nothing of such a request is scored.
        """
        texts, ids = read_model_input(model_input)
        check_model_input(texts)
        policies = read_model_policies(model_input, len(texts), self.scorer.policies)
        results: list[Any] = [None] * len(texts)
        for policy in dict.fromkeys(policies):  # one vectorized batch per policy, rows back in input order
            rows = [i for i, p in enumerate(policies) if p == policy]
            scored = self.scorer.score_batch([texts[i] for i in rows], [ids[i] for i in rows], policy=policy)
            for i, result in zip(rows, scored):
                results[i] = result
        return results_frame(results)


def check_model_input(texts: list[Any]) -> None:
    """Refuse what :meth:`Scorer.score_batch` would refuse, and oversized requests, with a 400 naming the records.

    Raises:
        MlflowException: with error code INVALID_PARAMETER_VALUE, which the scoring server answers with 400.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if len(texts) > MAX_RECORDS:
        raise MlflowException(
            f"{len(texts)} records in one request; at most {MAX_RECORDS} are accepted, send several requests",
            error_code=INVALID_PARAMETER_VALUE,
        )
    total = sum(len(text) for text in texts if isinstance(text, str))
    if total > MAX_REQUEST_CHARS:
        raise MlflowException(
            f"{total} characters of text in one request; at most {MAX_REQUEST_CHARS} are accepted (all records "
            "together), send fewer or shorter records per request",
            error_code=INVALID_PARAMETER_VALUE,
        )
    problems = []
    for position, text in enumerate(texts):
        if text is None or (isinstance(text, float) and text != text):  # None or NaN
            problems.append(f"record {position}: text is null")
        elif not isinstance(text, str):
            problems.append(f"record {position}: text is {type(text).__name__}, not a string")
        elif len(text) > MAX_INPUT_CHARS:
            problems.append(f"record {position}: text has {len(text)} characters, more than {MAX_INPUT_CHARS}")
    if problems:
        _refuse(problems)


def _refuse(problems: list[str], suffix: str = "") -> None:
    """Raise the 400 that names the first MAX_LISTED bad records (and how many more there are)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    more = f" and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise MlflowException(
        "invalid input, nothing was scored: " + "; ".join(problems[:MAX_LISTED]) + more + suffix,
        error_code=INVALID_PARAMETER_VALUE,
    )


# MLflow logs this file as the model's code (models-from-code: nothing is cloudpickled) and executes it under a
# module name of its own, `code_model_<hex>`; an ordinary import of duanka.adapters.serving registers nothing.
if __name__.startswith("code_model_"):
    mlflow.models.set_model(DuankaModel())
