from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from duanka.config import TrainConfig, load_config
from duanka.data import load_posts
from duanka.errors import ConfigError
from duanka.train import choose_thresholds, train


def test_run_logs_params_metrics_datasets_and_artifacts(tracked_run) -> None:
    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    client = mlflow.MlflowClient()
    run = client.get_run(tracked_run.run_id)
    assert run.data.params["seed"] == "7"
    assert run.data.params["selected_C"] in ("3.0", "10.0")
    assert "pipeline.features__chars__ngram_range" in run.data.params
    for name in (
        "holdout_macro_f1",
        "validation_macro_f1",
        "holdout_risk_roc_auc",
        "holdout_risk_recall_at_p99",
        "rules_holdout_macro_f1",
        "holdout_card_trading_pr_auc",
        "threshold_block",
    ):
        assert name in run.data.metrics, name
    assert 0 <= run.data.metrics["holdout_macro_f1"] <= 1
    assert run.data.tags["duanka.version"]
    contexts = sorted(tag.value for inp in run.inputs.dataset_inputs for tag in inp.tags)
    assert contexts == ["holdout", "training"]
    paths = set()
    for folder in ("", "plots", "reports"):
        paths |= {a.path for a in client.list_artifacts(tracked_run.run_id, folder)}
    for expected in (
        "plots/confusion_holdout.png",
        "plots/pr_holdout.png",
        "reports/holdout_errors.csv",
        "reports/top_terms.csv",
        "reports/classification_report_holdout.txt",
        "config.json",
    ):
        assert expected in paths, expected


def test_registered_with_aliases(tracked_run) -> None:
    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    client = mlflow.MlflowClient()
    challenger = client.get_model_version_by_alias("duanka-test", "challenger")
    champion = client.get_model_version_by_alias("duanka-test", "champion")
    assert challenger.run_id == tracked_run.run_id == champion.run_id  # first model: no champion to beat
    assert tracked_run.promoted and tracked_run.promotion_reason == "no champion yet"


def test_manifest_hashes_match_files(tracked_run) -> None:
    directory = Path(tracked_run.artifact_dir)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 1
    assert manifest["labels"] == ["card_trading", "recruitment_lure", "normal"]
    assert manifest["mlflow_run_id"] == tracked_run.run_id
    assert 0 < manifest["thresholds"]["review"] <= manifest["thresholds"]["block"]
    assert manifest["metrics"]["holdout"]["macro_f1"] > 0
    assert set(manifest["files"]) == {"pipeline.joblib", "rules.yaml"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
    assert {"scikit-learn", "jieba", "numpy"} <= set(manifest["libraries"])


def test_promotion_gate(tracked_run, small_posts, small_holdout, fast_config, tmp_path: Path) -> None:
    from duanka.tracking import train_tracked

    common = dict(tracking_uri=tracked_run.tracking_uri, experiment="test", model_name="duanka-test")
    # Same data and seed: same holdout macro-F1, so the gate (>=) promotes.
    same = train_tracked(small_posts, small_holdout, tmp_path / "a", fast_config, **common)
    assert same.promoted and ">=" in same.promotion_reason
    # A much weaker model (tiny C) loses to the champion and stays challenger.
    weak = TrainConfig(seed=7, c_grid=(0.001,), cv_folds=3)
    loser = train_tracked(small_posts, small_holdout, tmp_path / "b", weak, **common)
    client = mlflow.MlflowClient()
    assert not loser.promoted and "<" in loser.promotion_reason
    assert str(client.get_model_version_by_alias("duanka-test", "champion").version) == same.registered_version
    assert str(client.get_model_version_by_alias("duanka-test", "challenger").version) == loser.registered_version
    forced = train_tracked(small_posts, small_holdout, tmp_path / "c", weak, promote=True, **common)
    champion = client.get_model_version_by_alias("duanka-test", "champion")
    assert forced.promoted and str(champion.version) == forced.registered_version


def test_same_seed_same_predictions(small_posts, small_holdout, fast_config) -> None:
    frame, holdout = load_posts(small_posts), load_posts(small_holdout)
    first = train(frame, holdout, fast_config)
    second = train(frame, holdout, fast_config)
    assert first.C == second.C and first.thresholds == second.thresholds
    np.testing.assert_array_equal(first.holdout_proba, second.holdout_proba)
    assert first.holdout == second.holdout


def test_holdout_never_touches_fitting_or_thresholds(small_posts, small_holdout, fast_config) -> None:
    frame, holdout = load_posts(small_posts), load_posts(small_holdout)
    with_holdout = train(frame, holdout, fast_config)
    without = train(frame, None, fast_config)
    assert with_holdout.thresholds == without.thresholds and with_holdout.C == without.C
    np.testing.assert_array_equal(with_holdout.validation_proba, without.validation_proba)


def test_choose_thresholds() -> None:
    risky = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1], dtype=bool)
    risk = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    thresholds = choose_thresholds(risky, risk, block_precision=0.99, review_recall=0.97)
    assert thresholds == {"review": 0.3, "block": 0.5}
    nothing_pure = choose_thresholds(np.array([True, False]), np.array([0.5, 0.9]), 0.99, 0.97)
    assert nothing_pure["block"] > 1


def test_config_files(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("seed = 3\nc_grid = [1, 2]\n[model]\nchar_ngram_range = [2, 3]\n", encoding="utf-8")
    config = load_config(toml)
    assert config.seed == 3 and config.c_grid == (1.0, 2.0) and config.model.char_ngram_range == (2, 3)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("model:\n  min_df: 1\n", encoding="utf-8")
    assert load_config(yaml_file).model.min_df == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("sed = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(bad)


def test_scorer_loads_registry_and_run_uris(tracked_run) -> None:
    from duanka import Scorer

    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    local = Scorer.load(tracked_run.artifact_dir).score("收卡加微信").to_dict()
    for uri in (f"models:/duanka-test/{tracked_run.registered_version}", f"runs:/{tracked_run.run_id}/model"):
        scorer = Scorer.load(uri, strict=True)
        assert scorer.model_version == tracked_run.model_version
        assert scorer.score("收卡加微信").to_dict() == local


def test_pyfunc_wraps_the_same_scorer(tracked_run) -> None:
    from duanka import Scorer

    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/duanka-test/{tracked_run.registered_version}")
    import pandas as pd

    texts = ["收卡加微信", "今天天气很好", "兼职办卡一张三百"]
    frame = model.predict(pd.DataFrame({"text": texts, "data_id": ["a", "b", "c"]}))
    expected = Scorer.load(tracked_run.artifact_dir).score_batch(texts)
    assert list(frame["label"]) == [r.label for r in expected]
    assert list(frame["decision"]) == [r.decision for r in expected]
    assert list(frame["data_id"]) == ["a", "b", "c"]
    np.testing.assert_allclose(frame["risk"], [r.risk for r in expected])
