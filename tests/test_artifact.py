from __future__ import annotations

import hashlib
import json

import pytest

from duanka.artifact import ModelInfo, read_artifact, write_artifact
from duanka.errors import ArtifactError


def test_manifest_hashes_match_files(small_artifact) -> None:
    directory = small_artifact
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 1
    assert manifest["labels"] == ["card_trading", "recruitment_lure", "normal"]
    assert manifest["mlflow_run_id"] is None  # written by the plain workflow: no run
    assert 0 < manifest["thresholds"]["review"] <= manifest["thresholds"]["block"]
    assert manifest["metrics"]["holdout"]["macro_f1"] > 0
    assert set(manifest["files"]) == {"pipeline.joblib", "rules.yaml"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
    assert {"scikit-learn", "jieba", "numpy"} <= set(manifest["libraries"])


def test_write_is_atomic_and_replaces_an_old_artifact(small_artifact, tmp_path) -> None:
    loaded = read_artifact(small_artifact)
    info = ModelInfo(**{k: loaded.manifest[k] for k in ModelInfo.__dataclass_fields__})
    target = write_artifact(tmp_path / "m", loaded.pipeline, loaded.rules_text, info)
    again = write_artifact(target, loaded.pipeline, loaded.rules_text, info)
    assert again == target and read_artifact(target).manifest["model_version"] == info.model_version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folders left behind


def test_a_manifest_key_outside_the_schema_is_impossible(small_artifact, tmp_path) -> None:
    with pytest.raises(TypeError):
        ModelInfo(
            model_version="x",
            thresholds={},
            metrics={},
            training_data_sha256="",
            training_rows=0,
            seed=0,
            C=1.0,
            invented_key=1,
        )
    with pytest.raises(ArtifactError, match="no artifact directory"):
        read_artifact(tmp_path / "missing")
