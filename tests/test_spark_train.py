"""duanka.adapters.spark_train on local[2]: `duanka spark train` writes an artifact the Scorer loads, with the stream
engine's vocabulary and held-out groups, and scores that agree with the stream engine trained on the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duanka import Scorer
from duanka.errors import DataError
from duanka.scoring.artifact import read_artifact
from duanka.training.config import StreamParams, TrainConfig
from duanka.training.workflow import train_artifact

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")

from duanka.adapters.spark_train import train_spark

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

# The stream test's settings (tests/test_stream_training.py), written as the config file both engines read.
STREAM = {"chunk_rows": 40, "validation_share": 0.3, "max_epochs": 3, "alpha_grid": (1e-4, 1e-5)}
CONFIG_TOML = "seed = 7\n[stream]\nchunk_rows = 40\nvalidation_share = 0.3\nmax_epochs = 3\nalpha_grid = [1e-4, 1e-5]\n"
# Agreement with the stream engine on the small holdout (60 rows), measured at 0.883 decisions equal and
# 0.125 mean |risk difference| (README, "Training on Spark"): two solvers of different losses (multinomial L-BFGS to
# convergence, one-vs-rest SGD for at most 3 epochs) fitted on 135 rows, thresholds chosen on 45 held-out rows.
MIN_DECISIONS_EQUAL = 0.80
MAX_MEAN_RISK_DIFFERENCE = 0.18


@pytest.fixture(scope="module")
def spark_model(spark, tmp_path_factory, small_posts, small_holdout) -> Path:
    """`duanka spark train` through the CLI, in the module's session (the command keeps a session it did not start)."""
    from duanka.cli import main

    directory = tmp_path_factory.mktemp("spark_train")
    config = directory / "config.toml"
    config.write_text(CONFIG_TOML, "utf-8")
    output = directory / "model"
    argv = ["spark", "train", "--data", str(small_posts), "--holdout", str(small_holdout), "--output", str(output)]
    assert main([*argv, "--config", str(config), "--quiet"]) == 0
    return output


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory, small_posts, small_holdout) -> Path:
    output = tmp_path_factory.mktemp("stream_train") / "model"
    train_artifact(
        small_posts, small_holdout, output, TrainConfig(seed=7, engine="stream", stream=StreamParams(**STREAM))
    )
    return output


def test_the_artifact_loads_and_scores(spark_model, small_posts) -> None:
    scorer = Scorer.load(spark_model, strict=True)
    result = scorer.score("收*咔 加薇，长期高价收，秒结")
    assert not result.degraded and result.source.startswith("model")
    manifest = json.loads((spark_model / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["training_rows"] == len(pd.read_csv(small_posts))
    assert set(manifest["thresholds"]) == {"review", "block"} and "default" in manifest["policies"]
    assert manifest["metrics"]["holdout"]["macro_f1"] > 0.5
    assert (spark_model / "monitor_reference.json").is_file()
    features = [item["feature"] for item in result.to_dict()["evidence"]["model"]]
    assert any(f.startswith(("word:", "char:")) for f in features)  # real n-grams, the ordinary vocabulary


def test_the_vocabulary_and_idf_are_the_stream_engines(spark_model, stream_model) -> None:
    # Pass 1 ran on two partitions and was merged on the driver: the same n-grams and idf as one process counting.
    ours, theirs = read_artifact(spark_model).model.vectorizers, read_artifact(stream_model).model.vectorizers
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.terms == reference.terms, mine.name
        np.testing.assert_allclose(mine.idf, reference.idf, rtol=1e-6)


def test_scores_agree_with_the_stream_engine(spark_model, stream_model, small_holdout) -> None:
    texts = pd.read_csv(small_holdout)["text"].tolist()
    ours = Scorer.load(spark_model, strict=True).score_batch(texts)
    theirs = Scorer.load(stream_model, strict=True).score_batch(texts)
    decisions_equal = np.mean([a.decision == b.decision for a, b in zip(ours, theirs)])
    risk_difference = np.mean([abs(a.risk - b.risk) for a, b in zip(ours, theirs)])
    assert decisions_equal >= MIN_DECISIONS_EQUAL, decisions_equal
    assert risk_difference <= MAX_MEAN_RISK_DIFFERENCE, risk_difference


def test_bad_rows_are_named_by_file_and_row(spark, tmp_path, small_posts) -> None:
    frame = pd.read_csv(small_posts, dtype=str, keep_default_na=False)
    frame.loc[4, "label"] = "spam"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError, match=rf"{bad}: row 5: unknown label 'spam'"):
        train_spark(spark, str(bad), config=TrainConfig(seed=7, stream=StreamParams(**STREAM)))
    frame.drop(columns=["label"]).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) label"):
        train_spark(spark, str(bad))


def test_parquet_read_by_spark_counts_as_one_process(spark, tmp_path, small_posts) -> None:
    # The path for data on no single machine: Parquet read by the executors; pass 1 counts what stream counts.
    from duanka.adapters import spark_train
    from duanka.training import stream

    config = TrainConfig(seed=7, stream=StreamParams(**STREAM))
    frame = pd.read_csv(small_posts, dtype=str, keep_default_na=False)
    parquet = tmp_path / "posts.parquet"
    frame.to_parquet(parquet, row_group_size=50)
    rows, has_group, files = spark_train._labeled_frame(spark, str(parquet), None, tmp_path)
    assert has_group and files == [parquet]
    counts = spark_train._count(spark_train._spread(rows), config, has_group, str(parquet), None)
    reference = stream._count([small_posts], config, stream._analyzers(config), None)
    assert counts.rows == reference.rows and counts.labels == reference.labels
    assert counts.document_frequency == reference.document_frequency
    frame.loc[3, "label"] = "spam"
    frame.to_parquet(parquet)
    with pytest.raises(DataError, match=rf"posts\.parquet: id {frame.loc[3, 'id']}: unknown label 'spam'"):
        train_spark(spark, str(parquet), config=config)
