"""Write and read the model artifact directory, and own its manifest schema (:class:`ModelInfo`).

Layout of an artifact directory::

    manifest.json    format version, the ModelInfo fields (version, labels, thresholds, policies, metrics,
                     data digest, seed, C, run id), library versions, and the sha256 of every other file
    pipeline.joblib  the fitted scikit-learn pipeline
    rules.yaml       the rules the model was evaluated with

Every file's sha256 is checked before anything is unpickled. Reading needs only joblib and scikit-learn,
never MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from duanka.errors import ArtifactError
from duanka.labels import LABELS
from duanka.tables import sha256_file

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "PIPELINE",
    "RULES",
    "Artifact",
    "ModelInfo",
    "read_artifact",
    "read_manifest",
    "write_artifact",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PIPELINE = "pipeline.joblib"
RULES = "rules.yaml"


@dataclass(frozen=True)
class ModelInfo:
    """What the manifest records about a trained model (the schema; ``write_artifact`` adds hashes and versions).

    Attributes:
        model_version: ``YYYYMMDD-<digest of the coefficients>``.
        thresholds: ``{"review": r, "block": b}`` on risk.
        metrics: ``{"validation": {...}, "holdout": {...} | None}`` in ``Metrics.to_dict()`` form.
        training_data_sha256: digest of every training file, in order, joined by ``+``.
        training_rows: rows the final model was fitted on.
        seed: the training seed.
        C: the regularization chosen by cross-validation.
        mlflow_run_id: the run that logged this model, when it was tracked.
        background_rows: presumed-normal rows of the user's traffic fitted on (``--background``).
        background_sha256: digest of every background file, in order, joined by ``+``.
        policies: ``{name: {"review", "block", "description", "rule", "validation"}}``, the decision policy per
            surface resolved on the validation rows (:func:`duanka.policy.resolve_policies`); ``default``
            equals ``thresholds``.
    """

    model_version: str
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    training_data_sha256: str
    training_rows: int
    seed: int
    C: float
    mlflow_run_id: str | None = None
    background_rows: int = 0
    background_sha256: str = ""
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


@dataclass
class Artifact:
    """A verified, loaded artifact."""

    path: Path
    pipeline: Any
    manifest: dict[str, Any]
    rules_text: str


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled pipeline depends on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("duanka", "scikit-learn", "numpy", "scipy", "jieba", "joblib"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def write_artifact(directory: str | Path, pipeline: Any, rules_text: str, info: ModelInfo) -> Path:
    """Write an artifact atomically: a reader sees the old directory or the new one, never half of one.

    Args:
        directory: where the artifact goes (created if missing; an existing artifact is replaced).
        pipeline: the fitted pipeline.
        rules_text: the rules file the model was evaluated with, verbatim.
        info: what the manifest records; format version, library versions and file hashes are added here.

    Returns:
        The artifact directory.
    """
    import joblib

    directory = Path(directory)
    parent = directory.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=parent))
    except OSError as exc:
        raise ArtifactError(f"{directory}: cannot write the artifact here ({exc.strerror or exc})") from None
    try:
        joblib.dump(pipeline, staging / PIPELINE, compress=1)  # level 1: a third of the size, loads as fast as raw
        (staging / RULES).write_text(rules_text, encoding="utf-8")
        full = {
            "format_version": FORMAT_VERSION,
            **asdict(info),
            "libraries": library_versions(),
            "files": {name: sha256_file(staging / name) for name in (PIPELINE, RULES)},
        }
        (staging / MANIFEST).write_text(json.dumps(full, ensure_ascii=False, indent=2), encoding="utf-8")
        old = None
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=parent))
            os.replace(directory, old / directory.name)
        os.replace(staging, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(f"{directory}: cannot write the artifact ({exc.strerror or exc})") from None
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and check ``manifest.json`` (format version), without touching the other files."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no artifact directory here (train one with `duanka train`)")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: unreadable manifest (not a JSON object)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version!r}, this duanka reads version {FORMAT_VERSION}; "
            "retrain with this version of duanka"
        )
    if not isinstance(manifest.get("files"), dict) or PIPELINE not in manifest["files"]:
        raise ArtifactError(f"{path}: manifest lists no file hashes")
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists against its sha256."""
    for name, expected in manifest["files"].items():
        if Path(name).name != name:
            raise ArtifactError(f"{directory / MANIFEST}: file name {name!r} points outside the artifact")
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing file")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(f"{path}: sha256 mismatch (file changed or damaged since it was written)")


def read_artifact(directory: str | Path) -> Artifact:
    """Verify and load an artifact directory.

    Raises:
        ArtifactError: missing directory or file, bad manifest, incompatible format, hash mismatch, or a
            pipeline that cannot be unpickled; the message says which.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)  # before unpickling anything
    import joblib

    try:
        pipeline = joblib.load(directory / PIPELINE)
    except Exception as exc:  # unpickling can fail in many ways (versions, truncation)
        raise ArtifactError(f"{directory / PIPELINE}: cannot load the pipeline ({type(exc).__name__}: {exc})") from None
    try:
        rules_text = (directory / RULES).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{directory / RULES}: unreadable rules snapshot ({exc})") from None
    return Artifact(directory, pipeline, manifest, rules_text)
