from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

from duanka.errors import ArtifactError
from duanka.training.config import TrainConfig


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


def test_promotion_gate(tracked_run, small_posts, small_holdout, fast_config, tmp_path: Path) -> None:
    from duanka.adapters.tracking import train_tracked

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
    # The loser did not replace the directory services load: it went beside it.
    assert loser.published is False and loser.artifact_dir == tmp_path / "b-challenger"
    assert not (tmp_path / "b").exists()
    forced = train_tracked(small_posts, small_holdout, tmp_path / "c", weak, promote=True, **common)
    champion = client.get_model_version_by_alias("duanka-test", "champion")
    assert forced.promoted and str(champion.version) == forced.registered_version


def test_failed_gate_leaves_the_published_artifact_unchanged(tracked_run, small_posts, small_holdout, tmp_path) -> None:
    from duanka.adapters.tracking import train_tracked

    common = dict(tracking_uri=tracked_run.tracking_uri, experiment="test", model_name="duanka-test")
    published = tmp_path / "published"
    first = train_tracked(
        small_posts, small_holdout, published, TrainConfig(seed=7, c_grid=(10.0,), cv_folds=3), promote=True, **common
    )
    before = (published / "manifest.json").read_bytes()
    weak = train_tracked(
        small_posts, small_holdout, published, TrainConfig(seed=7, c_grid=(0.001,), cv_folds=3), **common
    )
    assert first.published and not weak.promoted and not weak.published
    assert (published / "manifest.json").read_bytes() == before
    assert (tmp_path / "published-challenger" / "manifest.json").is_file()


def test_scorer_loads_registry_and_run_uris(tracked_run) -> None:
    from duanka import Scorer
    from duanka.adapters.serving import load_scorer

    local = Scorer.load(tracked_run.artifact_dir).score("收卡加微信").to_dict()
    for uri in (f"models:/duanka-test/{tracked_run.registered_version}", f"runs:/{tracked_run.run_id}/model"):
        scorer = load_scorer(uri, tracking_uri=tracked_run.tracking_uri, strict=True)
        assert scorer.model_version == tracked_run.model_version
        assert scorer.score("收卡加微信").to_dict() == local

    with pytest.raises(ValueError, match=r"duanka\.adapters\.serving\.load_scorer"):
        Scorer.load(f"runs:/{tracked_run.run_id}/model")


def test_model_uri_without_a_store_names_the_missing_setting(tmp_path, monkeypatch) -> None:
    from duanka.adapters.serving import load_scorer

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for strict in (True, False):  # an unresolvable URI is an error, not a silent rules-only scorer
        with pytest.raises(ArtifactError, match="MLFLOW_TRACKING_URI"):
            load_scorer("models:/duanka@champion", strict=strict)
    assert list(tmp_path.iterdir()) == []  # no stray mlflow.db


def test_models_uris_resolve_against_the_store_the_caller_names(
    tracked_run, small_posts, small_holdout, tmp_path
) -> None:
    """Fresh processes, as a service starts: with MLFLOW_TRACKING_URI unset the project's store answers, with it
    set the other store's champion does (MLflow alone resolved names against its global registry setting)."""
    import os
    import shutil
    import subprocess
    import sys

    from duanka.adapters.tracking import train_tracked

    other = tmp_path / "other"
    other.mkdir()
    other_uri = f"sqlite:///{other / 'mlflow.db'}"
    second = train_tracked(
        small_posts, small_holdout, other / "model", TrainConfig(seed=99, c_grid=(0.1,), cv_folds=3),
        tracking_uri=other_uri, experiment="test", model_name="duanka-test",
    )  # fmt: skip
    project = tmp_path / "project"
    (project / "mlruns").mkdir(parents=True)
    shutil.copy(tracked_run.tracking_uri[len("sqlite:///") :], project / "mlruns" / "mlflow.db")
    code = (
        "from duanka.adapters.serving import load_scorer\n"
        "print(load_scorer('models:/duanka-test@champion', strict=True).model_version)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}

    def champion_version(uri: str) -> str:  # other tests of this session may have promoted another model there
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        return client.get_model_version_by_alias("duanka-test", "champion").tags["duanka.model_version"]

    first, second_version = champion_version(tracked_run.tracking_uri), champion_version(other_uri)
    assert first != second_version and second_version == second.model_version
    for extra, expected in (({}, first), ({"MLFLOW_TRACKING_URI": other_uri}, second_version)):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=project, env={**env, **extra}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == expected
    missing = subprocess.run(
        [sys.executable, "-m", "duanka.cli", "score", "--model", "models:/nothing@champion", "收卡"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "mlflow.db" in missing.stderr and "Traceback" not in missing.stderr
    assert sorted(p.name for p in project.iterdir()) == ["mlruns"]  # no stray mlflow.db


def test_training_on_two_files_logs_both_datasets(tracked_run, small_posts, small_holdout, fast_config, tmp_path):
    import pandas as pd

    from duanka.adapters.tracking import train_tracked

    frame = pd.read_csv(small_posts, dtype=str, keep_default_na=False)
    half = len(frame) // 2
    groups = frame["group"].unique()
    first = frame[frame["group"].isin(groups[::2])]
    second = frame[frame["group"].isin(groups[1::2])]
    assert len(first) and len(second) and half
    a, b = tmp_path / "a.csv", tmp_path / "feedback.csv"
    first.to_csv(a, index=False)
    second.to_csv(b, index=False)
    run = train_tracked(
        [a, b],
        small_holdout,
        tmp_path / "model",
        fast_config,
        tracking_uri=tracked_run.tracking_uri,
        experiment="test",
        register=False,
    )
    logged = mlflow.MlflowClient().get_run(run.run_id)
    names = sorted(inp.dataset.name for inp in logged.inputs.dataset_inputs)
    assert names == sorted(["a.csv", "feedback.csv", small_holdout.name])
    assert run.result.train_frame.shape[0] == len(frame)


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


def test_policies_are_logged_per_surface(tracked_run) -> None:
    logged = mlflow.MlflowClient().get_run(tracked_run.run_id).data
    policies = tracked_run.trained.info.policies
    assert set(policies) == {"default", "sms", "comment", "job_board"}
    for name, policy in policies.items():
        assert logged.metrics[f"policy.{name}.block"] == policy["block"]
        assert logged.metrics[f"policy.{name}.review"] == policy["review"]
        assert f"policy.{name}.validation_false_block_rate" in logged.metrics
    assert logged.params["policy.sms.rule"] == "block_precision=0.999, review_recall=0.95"
    assert logged.params["policy.default.rule"] == "training targets"
    assert logged.metrics["policy.default.block"] == logged.metrics["threshold_block"]


def test_pyfunc_takes_a_policy_per_row(tracked_run) -> None:
    import pandas as pd

    from duanka import Scorer

    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/duanka-test/{tracked_run.registered_version}")
    texts = ["收卡加微信", "兼职办卡一张三百", "今天天气很好"]
    policies = ["sms", None, "job_board"]
    frame = model.predict(pd.DataFrame({"text": texts, "data_id": ["a", "b", "c"], "policy": policies}))
    scorer = Scorer.load(tracked_run.artifact_dir)
    expected = [scorer.score(t, policy=p) for t, p in zip(texts, policies)]
    assert list(frame["policy"]) == ["sms", "default", "job_board"]
    assert list(frame["decision"]) == [r.decision for r in expected]
    assert list(frame["data_id"]) == ["a", "b", "c"]


def test_promotion_gate_protects_normal_posts_too() -> None:
    from duanka.adapters.tracking import _promotion_gate

    champion = {"holdout_macro_f1": 0.8069, "holdout_normal_fpr": 0.0875}
    # issue 22's case: same macro-F1, normal FPR up from 0.0875 to 0.100: stays challenger
    promoted, reason = _promotion_gate({"holdout_macro_f1": 0.8069, "holdout_normal_fpr": 0.100}, champion)
    assert not promoted and "0.1000 > champion's 0.0875 + 0.0020" in reason and "0.8069 >= champion's 0.8069" in reason
    assert _promotion_gate({"holdout_macro_f1": 0.81, "holdout_normal_fpr": 0.089}, champion)[0]  # within 0.002
    assert not _promotion_gate({"holdout_macro_f1": 0.8068, "holdout_normal_fpr": 0.05}, champion)[0]  # F1 dropped
    assert _promotion_gate({"holdout_macro_f1": 0.5, "holdout_normal_fpr": 0.5}, {})[0]  # nothing to compare with


def test_sigterm_while_publishing_leaves_directory_and_champion_in_agreement(
    tracked_run, small_posts, small_holdout, tmp_path, monkeypatch
) -> None:
    # SIGTERM arrives right after the artifact is written (the worst moment of issue 21): it is held until the
    # champion alias has moved too, then stops the run, which MLflow marks FAILED.
    import os
    import signal

    from duanka import cli
    from duanka.adapters import tracking
    from duanka.scoring.artifact import read_manifest

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real_write = tracking.write_model

    def write_then_terminated(trained, target):
        written = real_write(trained, target)
        if Path(target).name == "published":
            os.kill(os.getpid(), signal.SIGTERM)
        return written

    previous = signal.signal(signal.SIGTERM, cli._on_sigterm)
    monkeypatch.setattr(tracking, "write_model", write_then_terminated)
    try:
        with pytest.raises(cli.Terminated):
            tracking.train_tracked(
                small_posts, small_holdout, tmp_path / "published", TrainConfig(seed=7, c_grid=(3.0,), cv_folds=3),
                tracking_uri=uri, experiment="test", model_name="duanka-sig", promote=True,
            )  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("duanka-sig", "champion")
    assert read_manifest(tmp_path / "published")["model_version"] == champion.tags["duanka.model_version"]
    run = client.search_runs(client.get_experiment_by_name("test").experiment_id)[0]
    assert run.info.status == "FAILED"
