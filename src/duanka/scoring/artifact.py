"""Read and verify the model artifact directory, and own its manifest schema (:class:`ModelInfo`).

Writing is :func:`duanka.training.export.write_artifact` (training only); this module reads.

Layout of an artifact directory (format 2)::

    manifest.json    format version, the ModelInfo fields (version, labels, thresholds, policies, metrics,
                     data digest, seed, C, run id), library versions, and the sha256 of every other file
    signature.json   the sha256 of manifest.json's exact bytes and, when a key was configured, their
                     HMAC-SHA256 under that key
    model.json       the exported model's settings and vocabularies (see duanka.scoring.model)
    model.npz        its idf vectors, coefficients and intercepts (numpy, read with allow_pickle=False)
    rules.yaml       the rules the model was evaluated with
    pipeline.joblib  the fitted scikit-learn pipeline, for notebooks and retraining only: scoring never
                     opens it (:func:`duanka.training.export.read_pipeline` unpickles it, for trusted artifacts only)

Reading (:func:`read_artifact`) never unpickles and never imports scikit-learn or joblib. Each file is
read once into memory, checked against its hash, and parsed from those same bytes; symlinks and names that
leave the directory are refused. With a key (``key=`` or ``$DUANKA_ARTIFACT_KEY``), an artifact that is
unsigned or signed with another key is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duanka.errors import ArtifactError
from duanka.labels import LABELS
from duanka.scoring.model import LinearModel
from duanka.scoring.policy import checked_thresholds

__all__ = [
    "FORMAT_VERSION",
    "KEY_ENV",
    "MANIFEST",
    "MODEL_ARRAYS",
    "MODEL_SETTINGS",
    "PIPELINE",
    "RULES",
    "SIGNATURE",
    "Artifact",
    "ModelInfo",
    "artifact_key",
    "read_artifact",
    "read_manifest",
    "signature_of",
    "verified_bytes",
]

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
MODEL_SETTINGS = "model.json"
MODEL_ARRAYS = "model.npz"
PIPELINE = "pipeline.joblib"
RULES = "rules.yaml"
REQUIRED_FILES = (MODEL_SETTINGS, MODEL_ARRAYS, RULES)
KEY_ENV = "DUANKA_ARTIFACT_KEY"
_MAX_FILE_BYTES = 1 << 30  # no artifact file is anywhere near 1 GiB; refuse rather than exhaust memory


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
        normal_weight: the prior weight on ``normal`` chosen on the validation rows, folded into the intercept.
        mlflow_run_id: the run that logged this model, when it was tracked.
        background_rows: presumed-normal rows of the user's traffic fitted on (``--background``).
        background_sha256: digest of every background file, in order, joined by ``+``.
        policies: ``{name: {"review", "block", "description", "rule", "validation"}}``, the decision policy per
            surface resolved on the validation rows (:func:`duanka.scoring.policy.resolve_policies`); ``default``
            equals ``thresholds``.
    """

    model_version: str
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    training_data_sha256: str
    training_rows: int
    seed: int
    C: float
    normal_weight: float = 1.0
    mlflow_run_id: str | None = None
    background_rows: int = 0
    background_sha256: str = ""
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


@dataclass
class Artifact:
    """A verified, loaded artifact: the exported model (no pickle), its manifest and rules snapshot."""

    path: Path
    model: LinearModel
    manifest: dict[str, Any]
    rules_text: str
    thresholds: dict[str, float]
    signed: bool = False


def artifact_key(key: str | bytes | None = None) -> bytes | None:
    """The HMAC key: ``key`` when given, else ``$DUANKA_ARTIFACT_KEY`` (UTF-8), else None (no signing)."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    key_bytes = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not key_bytes:
        raise ArtifactError(f"the artifact key is empty (set {KEY_ENV} to a secret, or pass key=None)")
    return key_bytes


def signature_of(manifest_bytes: bytes, key: bytes | None) -> dict[str, Any]:
    return {
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "hmac_sha256": hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest() if key else None,
    }


def _read_bytes(directory: Path, name: str) -> bytes:
    """A file's bytes, read once; refuses names that leave the directory, symlinks and non-regular files."""
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ArtifactError(f"{directory / MANIFEST}: file name {name!r} points outside the artifact")
    path = directory / name
    # O_NONBLOCK: a FIFO swapped in after the check below must not block the loader waiting for a writer
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise ArtifactError(f"{path}: is a symbolic link; artifact files must be regular files")
        if not stat.S_ISREG(mode):  # checked before opening: opening a FIFO for reading blocks
            raise ArtifactError(f"{path}: not a regular file")
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing file") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"{path}: not a regular file")
        if info.st_size > _MAX_FILE_BYTES:
            raise ArtifactError(f"{path}: {info.st_size} bytes, larger than any artifact file can be")
        try:
            return handle.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot read ({exc.strerror or exc})") from None


def verified_bytes(directory: Path, manifest: dict[str, Any], name: str) -> bytes:
    """The bytes of ``name``, checked against the manifest's sha256 (the very bytes the caller then parses)."""
    expected = manifest["files"].get(name)
    if not isinstance(expected, str):
        raise ArtifactError(f"{directory / MANIFEST}: no sha256 for {name}")
    content = _read_bytes(directory, name)
    if not hmac.compare_digest(hashlib.sha256(content).hexdigest(), expected):
        raise ArtifactError(f"{directory / name}: sha256 mismatch (file changed or damaged since it was written)")
    return content


def read_manifest(directory: str | Path, *, key: str | bytes | None = None) -> dict[str, Any]:
    """Read ``manifest.json`` and check it: its own sha256 (``signature.json``), its HMAC when a key is
    configured, its format version and file list; the other files are not touched.

    Raises:
        ArtifactError: the cause, naming the file.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no artifact directory here (train one with `duanka train`)")
    key_bytes = artifact_key(key)
    manifest_bytes = _read_bytes(directory, MANIFEST)
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise ArtifactError(f"{path}: unreadable manifest ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: unreadable manifest (not a JSON object)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version!r}, this duanka reads version {FORMAT_VERSION}; "
            "retrain with this version of duanka"
        )
    try:
        signature = json.loads(_read_bytes(directory, SIGNATURE).decode("utf-8"))
        recorded = signature["manifest_sha256"]
        mac = signature.get("hmac_sha256")
    except (UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{directory / SIGNATURE}: unreadable signature ({type(exc).__name__})") from None
    expected = signature_of(manifest_bytes, key_bytes)
    if not isinstance(recorded, str) or not hmac.compare_digest(recorded, expected["manifest_sha256"]):
        raise ArtifactError(f"{path}: sha256 mismatch (manifest edited or damaged since it was written)")
    if key_bytes is not None:
        if not mac:
            raise ArtifactError(f"{path}: artifact is not signed, but a key is configured ({KEY_ENV} or key=)")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected["hmac_sha256"]):
            raise ArtifactError(f"{path}: signature does not match the configured key (not written by its holder)")
    files = manifest.get("files")
    if not isinstance(files, dict) or any(name not in files for name in REQUIRED_FILES):
        raise ArtifactError(f"{path}: manifest lists no hashes for {', '.join(REQUIRED_FILES)}")
    manifest["_signed"] = bool(mac) and key_bytes is not None
    return manifest


def read_artifact(directory: str | Path, *, key: str | bytes | None = None) -> Artifact:
    """Verify and load an artifact directory's exported model; nothing is unpickled.

    Args:
        directory: the artifact directory.
        key: HMAC key; default ``$DUANKA_ARTIFACT_KEY``. With a key, unsigned or foreign artifacts are refused.

    Raises:
        ArtifactError: missing directory or file, symlink, bad manifest or signature, incompatible format,
            hash mismatch, a model file that is not an exported model, or bad thresholds; the message says which.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, key=key)
    signed = manifest.pop("_signed")
    thresholds = checked_thresholds(manifest.get("thresholds"), f"{directory / MANIFEST}: thresholds")
    model = LinearModel.from_bytes(
        verified_bytes(directory, manifest, MODEL_SETTINGS),
        verified_bytes(directory, manifest, MODEL_ARRAYS),
        f"{directory / MODEL_SETTINGS}",
    )
    try:
        rules_text = verified_bytes(directory, manifest, RULES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{directory / RULES}: unreadable rules snapshot ({exc})") from None
    return Artifact(directory, model, manifest, rules_text, thresholds, signed)
