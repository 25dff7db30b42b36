"""The streamed training engine (``duanka train --engine stream``): artifact, determinism, bounded memory, errors."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duanka import Scorer
from duanka.errors import DataError
from duanka.training import stream
from duanka.training.config import StreamParams, TrainConfig
from duanka.training.workflow import train_artifact, train_model

CHUNK = 40


def _config(seed: int = 7, **stream_settings) -> TrainConfig:
    settings = {"chunk_rows": CHUNK, "validation_share": 0.3, "max_epochs": 3, "alpha_grid": (1e-4, 1e-5)}
    settings.update(stream_settings)
    return TrainConfig(seed=seed, engine="stream", stream=StreamParams(**settings))


@pytest.fixture(scope="module")
def stream_artifact(tmp_path_factory, small_posts, small_holdout) -> tuple[Path, object]:
    output = tmp_path_factory.mktemp("stream") / "model"
    run = train_artifact(small_posts, small_holdout, output, _config())
    return output, run


def test_the_stream_engine_writes_an_artifact_the_scorer_loads(stream_artifact, small_posts) -> None:
    output, run = stream_artifact
    scorer = Scorer.load(output, strict=True)
    result = scorer.score("收*咔 加薇，长期高价收，秒结")
    assert not result.degraded and result.source.startswith("model")
    assert result.model_version == run.model_version
    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["training_rows"] == len(pd.read_csv(small_posts))  # every row, not only the held-out ones
    assert set(manifest["thresholds"]) == {"review", "block"} and "default" in manifest["policies"]
    assert run.holdout is not None and run.holdout.macro_f1 > 0.5  # learned something on 226 rows
    # the evidence names real n-grams: the ordinary vocabulary format, no hashed columns
    assert any(item.get("feature", "").startswith(("word:", "char:")) for item in _model_evidence(result))


def _model_evidence(result) -> list[dict]:
    evidence = result.to_dict()["evidence"]
    return list(evidence.get("model", []))


def test_same_data_and_seed_give_the_same_model(tmp_path, small_posts) -> None:
    first = train_model(small_posts, None, _config(seed=3))
    second = train_model(small_posts, None, _config(seed=3))
    other = train_model(small_posts, None, _config(seed=4))
    assert first.model_version == second.model_version
    assert first.thresholds == second.thresholds
    assert other.model_version != first.model_version


def test_memory_is_one_chunk(monkeypatch, small_posts) -> None:
    # Every row the engine reads comes through read_chunks, at most chunk_rows at a time; the whole-file loader
    # of the default engine is never called.
    sizes: list[int] = []
    real = stream.read_chunks

    def counted(*args, **kwargs):
        for chunk in real(*args, **kwargs):
            sizes.append(len(chunk))
            yield chunk

    def refuse(*args, **kwargs):
        raise AssertionError("the stream engine loaded a whole file")

    monkeypatch.setattr(stream, "read_chunks", counted)
    monkeypatch.setattr("duanka.training.workflow.load_training_data", refuse)
    run = train_model(small_posts, None, _config())
    rows = run.info.training_rows
    assert max(sizes) <= CHUNK
    assert sum(sizes) == 2 * rows  # two passes (vocabulary, features), each over every row once
    assert len(run.result.train_frame) < rows  # only the held-out rows are kept in memory


def test_held_out_groups_are_whole(stream_artifact, small_posts) -> None:
    _, run = stream_artifact
    rows = pd.read_csv(small_posts)
    held = set(run.result.train_frame["group"])
    assert held and held < set(rows["group"])
    for group in held:
        assert (run.result.train_frame["group"] == group).sum() == (rows["group"] == group).sum()
    assert stream.group_unit("hw-00001") == stream.group_unit("hw-00001")
    assert 0.0 <= stream.group_unit("") < 1.0


def test_bad_rows_are_named_by_file_and_row(tmp_path, small_posts) -> None:
    frame = pd.read_csv(small_posts, dtype=str, keep_default_na=False)
    frame.loc[4, "label"] = "spam"
    frame.loc[9, "text"] = "  "
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError) as caught:
        train_model(bad, None, _config())
    message = str(caught.value)
    assert f"{bad}: row 5" in message and "unknown label 'spam'" in message
    assert f"{bad}: row 10" in message and "empty text" in message
    no_label = tmp_path / "no_label.csv"
    frame.drop(columns=["label"]).to_csv(no_label, index=False)
    with pytest.raises(DataError, match=r"no_label\.csv: missing column\(s\) label"):
        train_model(no_label, None, _config())


def test_the_vocabulary_is_the_default_engines(small_posts) -> None:
    # Without a cap, the stream engine's vocabulary and idf are what TfidfVectorizer fits on the same rows.
    from duanka.text.normalize import normalize
    from duanka.training.features import build_pipeline

    config = _config()
    config.model = dataclasses.replace(config.model, char_max_features=None)
    config.stream.word_max_features = None
    counts = stream._count([small_posts], config, stream._analyzers(config), None)
    fitted = stream._feature_pipeline(config, counts).named_steps["features"]
    texts = [normalize(t) for t in pd.read_csv(small_posts)["text"]]
    reference = build_pipeline(config.model).named_steps["features"].fit(texts)
    for (name, ours), (_, theirs) in zip(fitted.transformer_list, reference.transformer_list):
        assert ours.vocabulary_ == theirs.vocabulary_, name
        np.testing.assert_allclose(ours.idf_, theirs.idf_, rtol=1e-6)


def test_the_count_table_is_bounded() -> None:
    counts = Counter({f"t{i}": i % 50 + 1 for i in range(5000)})
    kept, floor = stream._prune(counts, 1000)
    assert len(kept) <= 1000
    assert min(kept.values()) >= floor > max(n for t, n in counts.items() if t not in kept)


def test_cli_trains_with_the_stream_engine(tmp_path, small_posts, small_holdout, capsys) -> None:
    from duanka.cli import main

    config = tmp_path / "stream.toml"
    config.write_text(
        'engine = "stream"\nseed = 5\n[stream]\nchunk_rows = 60\nvalidation_share = 0.3\nmax_epochs = 2\n', "utf-8"
    )
    code = main(
        ["train", "--data", str(small_posts), "--holdout", str(small_holdout), "--output", str(tmp_path / "m"),
         "--config", str(config), "--no-tracking", "--quiet"]
    )  # fmt: skip
    assert code == 0
    assert "holdout: macro-F1" in capsys.readouterr().out
    result = Scorer.load(tmp_path / "m", strict=True).score("今天天气不错")
    assert not result.degraded and result.source.startswith("model")


def test_a_tracked_stream_run_logs_the_file_without_loading_it(tmp_path, small_posts, small_holdout) -> None:
    import mlflow

    from duanka.adapters.tracking import train_tracked

    tracked = train_tracked(
        small_posts, small_holdout, tmp_path / "model", _config(), register=False,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
    )  # fmt: skip
    run = mlflow.get_run(tracked.run_id)
    assert run.data.params["engine"] == "stream" and run.data.params["stream.chunk_rows"] == str(CHUNK)
    assert "pipeline.classifier__alpha" in run.data.params
    (training,) = [d for d in run.inputs.dataset_inputs if d.tags[0].value == "training"]
    assert training.dataset.name == small_posts.name
    assert Scorer.load(tracked.artifact_dir, strict=True).model_version == tracked.model_version
