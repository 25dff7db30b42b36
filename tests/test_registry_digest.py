"""A model loaded through ``models:/`` is the one registered: its manifest's sha256 is recorded on the model version
at registration, and a download whose manifest differs is refused (issue 21, trust model for unsigned artifacts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import pytest

from duanka.adapters.serving import MANIFEST_DIGEST_TAG, download_artifact_dir, load_scorer
from duanka.errors import ArtifactError
from duanka.files.readers import sha256_file

NAME = "duanka-test"


def _client(tracked_run) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=tracked_run.tracking_uri, registry_uri=tracked_run.tracking_uri)


def test_registration_records_the_manifest_digest_and_a_clean_download_matches(tracked_run, tmp_path: Path) -> None:
    version = _client(tracked_run).get_model_version(NAME, tracked_run.registered_version)
    recorded = version.tags[MANIFEST_DIGEST_TAG]
    directory = download_artifact_dir(f"models:/{NAME}/{version.version}", tmp_path, tracked_run.tracking_uri)
    assert sha256_file(directory / "manifest.json") == recorded
    scorer = load_scorer(f"models:/{NAME}/{version.version}", tracking_uri=tracked_run.tracking_uri, strict=True)
    assert scorer.model_version == tracked_run.model_version


@pytest.mark.parametrize("by", ["version", "alias"])
def test_a_tampered_download_is_refused_with_the_cause(tracked_run, tmp_path: Path, monkeypatch, by: str) -> None:
    real = mlflow.artifacts.download_artifacts

    def tampered(*args, **kwargs):
        local = Path(real(*args, **kwargs))
        for manifest in local.rglob("manifest.json"):  # e.g. coefficients negated and the hashes recomputed
            data = json.loads(manifest.read_text(encoding="utf-8"))
            data["tampered"] = True
            manifest.write_text(json.dumps(data), encoding="utf-8")
        return str(local)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", tampered)
    client = _client(tracked_run)
    if by == "alias":
        alias = next(iter(client.get_model_version(NAME, tracked_run.registered_version).aliases))
        uri = f"models:/{NAME}@{alias}"
    else:
        uri = f"models:/{NAME}/{tracked_run.registered_version}"
    with pytest.raises(ArtifactError, match=r"manifest.json has sha256 .* was registered with .*changed after"):
        load_scorer(uri, tracking_uri=tracked_run.tracking_uri, strict=False)  # refused even when lenient


def test_a_version_without_the_digest_is_loaded_with_a_warning(tracked_run, tmp_path: Path, caplog) -> None:
    client = _client(tracked_run)
    version = tracked_run.registered_version
    recorded = client.get_model_version(NAME, version).tags[MANIFEST_DIGEST_TAG]
    client.delete_model_version_tag(NAME, version, MANIFEST_DIGEST_TAG)
    try:
        with caplog.at_level(logging.WARNING, logger="duanka"):
            directory = download_artifact_dir(f"models:/{NAME}/{version}", tmp_path, tracked_run.tracking_uri)
        assert (directory / "manifest.json").is_file()
        assert f"has no {MANIFEST_DIGEST_TAG} tag" in caplog.text
    finally:
        client.set_model_version_tag(NAME, version, MANIFEST_DIGEST_TAG, recorded)
