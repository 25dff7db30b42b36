"""Lineage and the model card: every input file of a tracked run is an MLflow dataset with its absolute source and
digest, the feedback file is snapshotted, a SQLite store keeps its runs' artifacts beside it, and every artifact
carries MODEL_CARD.md, which is also the registered version's description."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from duanka.files.readers import sha256_file
from duanka.labels import LABELS


def test_every_artifact_carries_the_model_card_and_the_registry_shows_it(tracked_run, small_posts) -> None:
    from duanka.training.model_card import MODEL_CARD

    artifact = tracked_run.artifact_dir
    card = (artifact / MODEL_CARD).read_text(encoding="utf-8")
    manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"][MODEL_CARD] == sha256_file(artifact / MODEL_CARD)  # hashed like the model files
    assert (artifact / "monitor_reference.json").is_file()  # the other extra file is still written
    info = tracked_run.trained.info
    assert f"# Model card: duanka {info.model_version}" in card and info.mlflow_run_id == tracked_run.run_id
    assert tracked_run.run_id in card
    assert f"review {info.thresholds['review']:.4f}, block {info.thresholds['block']:.4f}" in card
    for name, policy in info.policies.items():
        assert f"| `{name}` | {policy['review']:.4f} / {policy['block']:.4f} |" in card
    assert f"| holdout | {info.metrics['holdout']['rows']:,} | {info.metrics['holdout']['macro_f1']:.4f} |" in card
    assert f"| validation (out-of-fold) | {info.metrics['validation']['rows']:,} |" in card
    counts = pd.read_csv(small_posts)["label"].value_counts()
    row = " | ".join(f"{counts[label]:,}" for label in LABELS)
    assert (
        f"| `{small_posts.name}` | `{sha256_file(small_posts)[:12]}` | {len(counts) and counts.sum():,} | {row} |"
        in card
    )
    for section in ("Intended use", "Labels", "Training data", "Evaluation", "Thresholds and policies", "Known limits"):
        assert f"\n## {section}\n" in card
    assert "card/lure rule" in card
    client = mlflow.MlflowClient(tracking_uri=tracked_run.tracking_uri, registry_uri=tracked_run.tracking_uri)
    version = client.get_model_version("duanka-test", tracked_run.registered_version)
    assert version.description == card
    logged = Path(mlflow.artifacts.download_artifacts(run_id=tracked_run.run_id, artifact_path=MODEL_CARD,
                                                      tracking_uri=tracked_run.tracking_uri))  # fmt: skip
    assert logged.read_text(encoding="utf-8") == card


def test_the_card_shows_real_traffic_when_given_and_fits_the_registry(tracked_run) -> None:
    from duanka.adapters.tracking import MAX_DESCRIPTION, registry_description
    from duanka.training.model_card import model_card

    plain = model_card(tracked_run.trained)
    assert "Not measured for this model version" in plain
    measured = model_card(tracked_run.trained, {"tg_stream.csv": {"rows": 17604, "labelled risky": 0.883}})
    assert "| tg_stream.csv | 17,604 | 0.8830 |" in measured and "Not measured" not in measured
    assert len(plain) <= MAX_DESCRIPTION and registry_description(plain) == plain
    long = plain + "\n## Appendix\n\n" + "x" * MAX_DESCRIPTION
    cut = registry_description(long)
    assert len(cut) <= MAX_DESCRIPTION and "## Appendix" not in cut and "MODEL_CARD.md" in cut
    assert cut.startswith(plain.rstrip())


@pytest.fixture()
def retrain_workspace(tmp_path, small_posts) -> Path:
    """A project folder with data/posts.csv, a feedback file as `duanka review import` writes it (source=feedback),
    and a background file; the MLflow store is elsewhere."""
    frame = pd.read_csv(small_posts, dtype=str, keep_default_na=False)
    groups = frame["group"].unique()
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    frame[frame["group"].isin(groups[::3])].assign(source="feedback").to_csv(
        work / "data" / "feedback.csv", index=False
    )
    frame[~frame["group"].isin(groups[::3])].to_csv(work / "data" / "posts.csv", index=False)
    pd.DataFrame({"text": ["今天天气不错", "周末去爬山吗", "这家店的面很好吃"] * 5}).to_csv(
        work / "data" / "traffic.csv", index=False
    )
    return work


def test_a_retrain_logs_every_input_by_absolute_source_and_digest_and_snapshots_feedback(
    retrain_workspace, small_holdout, fast_config, tmp_path, monkeypatch
) -> None:
    from duanka.adapters.tracking import train_tracked

    work = retrain_workspace
    monkeypatch.chdir(work)  # relative paths, as `duanka train --data data/posts.csv --data data/feedback.csv` has
    store = tmp_path / "elsewhere"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"  # absolute: MLflow alone put its artifacts in ./mlruns of the cwd
    tracked = train_tracked(
        [Path("data/posts.csv"), Path("data/feedback.csv")], small_holdout, Path("out/model"), fast_config,
        tracking_uri=uri, experiment="lineage", register=False, background=[Path("data/traffic.csv")],
    )  # fmt: skip
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(tracked.run_id)
    found = {
        inp.tags[0].value + ":" + inp.dataset.name: (json.loads(inp.dataset.source)["uri"], inp.dataset.digest)
        for inp in run.inputs.dataset_inputs
    }
    files = {
        "training:posts.csv": work / "data" / "posts.csv",
        "feedback:feedback.csv": work / "data" / "feedback.csv",
        "background:traffic.csv": work / "data" / "traffic.csv",
        f"holdout:{small_holdout.name}": small_holdout,
    }
    assert found == {key: (str(path.resolve()), sha256_file(path)[:16]) for key, path in files.items()}
    params = run.data.params
    assert params["train_file.feedback.csv"] == str((work / "data" / "feedback.csv").resolve())
    assert params["train_sha256.feedback.csv"] == sha256_file(work / "data" / "feedback.csv")
    assert params["background_file.traffic.csv"] == str((work / "data" / "traffic.csv").resolve())
    snapshot = Path(client.download_artifacts(tracked.run_id, "inputs/feedback.csv", str(tmp_path / "got")))
    assert snapshot.read_bytes() == (work / "data" / "feedback.csv").read_bytes()
    assert [a.path for a in client.list_artifacts(tracked.run_id, "inputs")] == ["inputs/feedback.csv"]
    # the run's artifacts are beside the database, and nothing was written in the working folder's mlruns/
    assert run.info.artifact_uri.startswith((store / "artifacts").as_uri() + "/")
    assert (store / "artifacts" / tracked.run_id / "artifacts" / "inputs" / "feedback.csv").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["data", "out"]


def test_artifact_location_is_beside_any_sqlite_store(tmp_path, monkeypatch) -> None:
    from duanka.adapters.tracking import artifact_location

    monkeypatch.chdir(tmp_path)
    assert artifact_location("sqlite:///mlruns/mlflow.db") == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert artifact_location(f"sqlite:///{tmp_path}/a/b.db") == (tmp_path / "a" / "artifacts").as_uri()
    assert artifact_location("sqlite:///../x/mlflow.db?timeout=5") == (tmp_path.parent / "x" / "artifacts").as_uri()
    assert artifact_location("http://127.0.0.1:5000") is None and artifact_location("sqlite:///:memory:") is None


def test_feedback_files_are_told_by_their_rows_also_when_the_rows_are_not_held(retrain_workspace) -> None:
    from duanka.adapters.tracking import _is_feedback

    data = retrain_workspace / "data"
    empty = pd.DataFrame(columns=["id", "text", "label", "group", "source"])  # the stream engine holds no rows
    assert _is_feedback(data / "feedback.csv", empty) and not _is_feedback(data / "posts.csv", empty)
    held = pd.read_csv(data / "posts.csv", dtype=str, keep_default_na=False)
    assert not _is_feedback(data / "posts.csv", held)
    assert _is_feedback(data / "posts.csv", held.assign(source=["feedback"] + ["handwritten"] * (len(held) - 1)))


def test_the_card_of_a_run_without_holdout_or_rows_held(small_posts, fast_config) -> None:
    from duanka.training.model_card import model_card
    from duanka.training.workflow import train_model

    run = train_model(small_posts, None, fast_config)
    card = model_card(run)
    assert "| validation (out-of-fold) |" in card and "| holdout |" not in card and "Holdout (" not in card
    run.data_frame = run.data_frame.iloc[0:0]  # as the stream engine leaves it: the file, not its rows
    assert f"| `{small_posts.name}` | `{sha256_file(small_posts)[:12]}` | (streamed) | (not held) |" in model_card(run)
