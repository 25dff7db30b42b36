"""Write an artifact directory from a fitted pipeline (training only), and unpickle a trusted one's pipeline.

The directory's layout and manifest schema are :mod:`duanka.scoring.artifact`'s; this module writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from duanka.errors import ArtifactError
from duanka.scoring.artifact import (
    FORMAT_VERSION,
    MANIFEST,
    MODEL_ARRAYS,
    MODEL_SETTINGS,
    PIPELINE,
    RULES,
    SIGNATURE,
    ModelInfo,
    artifact_key,
    read_manifest,
    signature_of,
    verified_bytes,
)
from duanka.scoring.policy import checked_thresholds
from duanka.training.features import export_pipeline

__all__ = ["library_versions", "read_pipeline", "write_artifact"]


def library_versions() -> dict[str, str]:
    """Versions of the libraries the artifact was written with."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("duanka", "scikit-learn", "numpy", "scipy", "jieba", "rjieba", "joblib"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def write_artifact(
    directory: str | Path,
    pipeline: Any,
    rules_text: str,
    info: ModelInfo,
    *,
    key: str | bytes | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write an artifact atomically: a reader sees the old directory or the new one, never half of one.

    Args:
        directory: where the artifact goes (created if missing; an existing artifact is replaced).
        pipeline: the fitted pipeline; its exported form is what services load.
        rules_text: the rules file the model was evaluated with, verbatim.
        info: what the manifest records; format version, library versions and file hashes are added here.
        key: HMAC key to sign the manifest with; default ``$DUANKA_ARTIFACT_KEY``, unsigned when neither is set.
        extra_files: further files by name (the monitoring reference profile), hashed in the manifest like the rest.

    Returns:
        The artifact directory.
    """
    import joblib

    checked_thresholds(info.thresholds, "thresholds")
    key_bytes = artifact_key(key)
    try:
        settings_bytes, arrays_bytes = export_pipeline(pipeline).to_bytes()
    except ValueError as exc:
        raise ArtifactError(f"{directory}: cannot export the pipeline ({exc})") from None
    extra = dict(extra_files or {})
    for name in extra:
        if Path(name).name != name or name in (MANIFEST, SIGNATURE, MODEL_SETTINGS, MODEL_ARRAYS, RULES, PIPELINE):
            raise ArtifactError(f"{directory}: cannot add a file named {name!r} to the artifact")
    directory = Path(directory)
    parent = directory.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=parent))
    except OSError as exc:
        raise ArtifactError(f"{directory}: cannot write the artifact here ({exc.strerror or exc})") from None
    try:
        joblib.dump(pipeline, staging / PIPELINE, compress=1)  # level 1: a third of the size, loads as fast as raw
        (staging / RULES).write_bytes(rules_text.encode("utf-8"))
        (staging / MODEL_SETTINGS).write_bytes(settings_bytes)
        (staging / MODEL_ARRAYS).write_bytes(arrays_bytes)
        for name, content in extra.items():
            (staging / name).write_bytes(content)
        _write_manifest(staging, info, (MODEL_SETTINGS, MODEL_ARRAYS, RULES, PIPELINE, *extra), key_bytes)
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


def _write_manifest(staging: Path, info: ModelInfo, names: tuple[str, ...], key: bytes | None) -> None:
    """The manifest (info, versions, a hash per file) and its signature, written into ``staging``."""
    full = {
        "format_version": FORMAT_VERSION,
        **asdict(info),
        "libraries": library_versions(),
        "files": {name: hashlib.sha256((staging / name).read_bytes()).hexdigest() for name in names},
    }
    manifest_bytes = json.dumps(full, ensure_ascii=False, indent=2).encode("utf-8")
    (staging / MANIFEST).write_bytes(manifest_bytes)
    (staging / SIGNATURE).write_bytes(json.dumps(signature_of(manifest_bytes, key), indent=2).encode())


def read_pipeline(directory: str | Path, *, key: str | bytes | None = None) -> Any:
    """Unpickle the scikit-learn pipeline of a TRUSTED artifact (notebooks, retraining, benchmarks).

    Unpickling runs code: use it only on artifacts you wrote or whose signature you check with a key.
    The bytes that are unpickled are the bytes whose hash was checked. Services use :func:`read_artifact`.
    """
    import io

    import joblib

    directory = Path(directory)
    manifest = read_manifest(directory, key=key)
    manifest.pop("_signed")
    content = verified_bytes(directory, manifest, PIPELINE)
    try:
        return joblib.load(io.BytesIO(content))
    except Exception as exc:  # unpickling can fail in many ways (versions, truncation)
        raise ArtifactError(f"{directory / PIPELINE}: cannot load the pipeline ({type(exc).__name__}: {exc})") from None
