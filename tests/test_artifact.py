from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from duanka import Scorer
from duanka.errors import ArtifactError
from duanka.scoring.artifact import ModelInfo, read_artifact
from duanka.training.export import read_pipeline, write_artifact


def test_manifest_hashes_match_files(small_artifact) -> None:
    directory = small_artifact
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 2
    assert manifest["labels"] == ["card_trading", "recruitment_lure", "normal"]
    assert manifest["mlflow_run_id"] is None  # written by the plain workflow: no run
    assert 0 < manifest["thresholds"]["review"] <= manifest["thresholds"]["block"]
    assert manifest["metrics"]["holdout"]["macro_f1"] > 0
    assert set(manifest["files"]) == {
        "model.json",
        "model.npz",
        "pipeline.joblib",
        "rules.yaml",
        "monitor_reference.json",
        "MODEL_CARD.md",
    }
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
    assert {"scikit-learn", "jieba", "numpy"} <= set(manifest["libraries"])


def test_write_is_atomic_and_replaces_an_old_artifact(small_artifact, tmp_path) -> None:
    loaded = read_artifact(small_artifact)
    pipeline = read_pipeline(small_artifact)
    info = ModelInfo(**{k: loaded.manifest[k] for k in ModelInfo.__dataclass_fields__})
    target = write_artifact(tmp_path / "m", pipeline, loaded.rules_text, info)
    again = write_artifact(target, pipeline, loaded.rules_text, info)
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


def _resign_without_key(directory, manifest) -> None:
    data = json.dumps(manifest).encode("utf-8")
    (directory / "manifest.json").write_bytes(data)
    signature = json.loads((directory / "signature.json").read_text(encoding="utf-8"))
    signature["manifest_sha256"] = hashlib.sha256(data).hexdigest()
    (directory / "signature.json").write_text(json.dumps(signature), encoding="utf-8")


def test_a_pickle_payload_with_its_hash_in_the_manifest_is_never_executed(artifact_copy, tmp_path) -> None:
    import pickle

    from duanka import Scorer

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    content = pickle.dumps(Payload())
    (artifact_copy / "pipeline.joblib").write_bytes(content)
    manifest = json.loads((artifact_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["pipeline.joblib"] = hashlib.sha256(content).hexdigest()
    _resign_without_key(artifact_copy, manifest)
    scorer = Scorer.load(artifact_copy, strict=True)  # scoring reads the exported model only
    scorer.score("收卡加微信").to_dict()
    assert not marker.exists()
    with pytest.raises(ArtifactError, match="not signed"):  # and with a key, the unsigned artifact is refused
        Scorer.load(artifact_copy, strict=True, key="service-secret")
    assert not marker.exists()


def test_an_edited_manifest_is_detected(artifact_copy) -> None:
    from duanka import Scorer

    path = artifact_copy / "manifest.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"block": ', '"block": 2.0, "was": '), encoding="utf-8")
    with pytest.raises(ArtifactError, match="manifest edited"):
        read_artifact(artifact_copy)
    result = Scorer.load(artifact_copy).score("收卡加微信")
    assert result.degraded and any("manifest edited" in note for note in result.notes)


def test_signed_artifacts_need_the_right_key(small_artifact, tmp_path, monkeypatch) -> None:
    from duanka import Scorer

    pipeline = read_pipeline(small_artifact)
    loaded = read_artifact(small_artifact)
    info = ModelInfo(**{k: loaded.manifest[k] for k in ModelInfo.__dataclass_fields__})
    signed = write_artifact(tmp_path / "signed", pipeline, loaded.rules_text, info, key="right")
    assert read_artifact(signed, key="right").signed
    monkeypatch.setenv("DUANKA_ARTIFACT_KEY", "right")
    with_key = Scorer.load(signed)  # the key from the environment
    assert not with_key.degraded and with_key.signed
    assert Scorer.load(small_artifact).degraded  # unsigned: refused when a key is configured
    with pytest.raises(ArtifactError, match="not signed"):
        Scorer.load(small_artifact, strict=True)
    monkeypatch.delenv("DUANKA_ARTIFACT_KEY")
    with pytest.raises(ArtifactError, match="does not match the configured key"):
        read_artifact(signed, key="wrong")
    result = Scorer.load(signed, key="wrong").score("收卡加微信")
    assert result.degraded and result.source == "rules"
    # Re-signing an edited manifest without the key (fresh sha256, old HMAC) is caught.
    manifest = json.loads((signed / "manifest.json").read_text(encoding="utf-8"))
    manifest["thresholds"] = {"review": 0.99, "block": 1.0}
    _resign_without_key(signed, manifest)
    with pytest.raises(ArtifactError, match="does not match the configured key"):
        read_artifact(signed, key="right")


def test_symlinks_and_names_outside_the_directory_are_refused(artifact_copy, tmp_path) -> None:
    outside = tmp_path / "elsewhere.npz"
    (artifact_copy / "model.npz").rename(outside)
    (artifact_copy / "model.npz").symlink_to(outside)
    with pytest.raises(ArtifactError, match="symbolic link"):
        read_artifact(artifact_copy)
    (artifact_copy / "model.npz").unlink()
    outside.rename(artifact_copy / "model.npz")
    manifest = json.loads((artifact_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["../model.npz"] = manifest["files"].pop("model.npz")
    _resign_without_key(artifact_copy, manifest)
    with pytest.raises(ArtifactError, match=r"no hashes|outside"):
        read_artifact(artifact_copy)


def test_a_fifo_in_place_of_an_artifact_file_degrades_instead_of_hanging(artifact_copy: Path) -> None:
    import subprocess
    import sys

    target = artifact_copy / "model.npz"
    target.unlink()
    os.mkfifo(target)  # opening a FIFO for reading would block until a writer comes
    code = (
        "from duanka import Scorer\n"
        f"s = Scorer.load({str(artifact_copy)!r})\n"
        "r = s.score('收卡加微信')\n"
        "print(r.degraded, r.source, [n for n in r.notes if 'not a regular file' in n] != [])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "rules", "True"]


@pytest.mark.parametrize("name", ["manifest.json", "signature.json"])
def test_deeply_nested_json_degrades_instead_of_crashing(artifact_copy: Path, name: str) -> None:
    (artifact_copy / name).write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    scorer = Scorer.load(artifact_copy)
    result = scorer.score("收卡加微信")
    assert result.degraded and result.source == "rules"
    assert any(name in note for note in result.notes), result.notes
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        Scorer.load(artifact_copy, strict=True)


def test_a_deeply_nested_rules_snapshot_is_a_rules_error() -> None:
    from duanka.errors import RulesError
    from duanka.scoring.rules import RuleSet

    with pytest.raises(RulesError, match=r"nested too deep|not valid YAML"):
        RuleSet.from_text("a: " + "[" * 50_000 + "]" * 50_000, "snapshot")


def test_an_unsigned_artifact_loads_and_says_so_in_a_log_line(artifact_copy: Path, caplog) -> None:
    # The trust model: without a key, hashes prove the files match the manifest, not who wrote them; the
    # scorer says so once per load (a signed artifact loaded with its key does not).
    with caplog.at_level("INFO", logger="duanka"):
        scorer = Scorer.load(artifact_copy, strict=True)
    assert not scorer.signed and "is not signed" in caplog.text and "DUANKA_ARTIFACT_KEY" in caplog.text
