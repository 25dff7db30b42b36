"""duanka.adapters.spark on local[2]: one typed row per input row, equal to Scorer.score_batch; `duanka spark score`."""

from __future__ import annotations

import csv
import json
from dataclasses import fields
from pathlib import Path

import pytest

from duanka import Scorer, ScoreResult
from duanka.cli import main
from duanka.errors import ArtifactError

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")

from duanka.adapters.spark import RESULT_COLUMN, result_type, score_dataframe  # noqa: E402

# pyspark warns about pandas 3 whenever it builds a DataFrame; nothing here goes through pandas on Spark's side
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

LONG_TEXT = "收卡加微信。" + "今天天气不错。" * 1500  # over the 10,000-character limit


@pytest.fixture(scope="module")
def posts(small_holdout) -> list[tuple[str, str | None]]:
    """(id, text): the small holdout's posts and the edge cases a platform's data holds."""
    with open(small_holdout, encoding="utf-8", newline="") as handle:
        rows = [(row["id"], row["text"]) for row in csv.DictReader(handle)]
    return [*rows, ("empty", ""), ("blank", "   "), ("null", None), ("long", LONG_TEXT), ("trad", "長期高價收購銀行卡")]


def test_result_type_has_the_fields_of_score_result_to_dict() -> None:
    names = [f.name for f in result_type().fields]
    assert set(names) == ({f.name for f in fields(ScoreResult)} - {"data_id"}) | {"error"}
    assert "evidence" not in [f.name for f in result_type("none").fields]
    assert result_type("json")["evidence"].dataType.typeName() == "string"


def test_one_typed_row_per_input_row_equal_to_score_batch(spark, tracked_run, posts) -> None:
    frame = spark.createDataFrame(posts, "id string, text string").coalesce(1)
    scored = score_dataframe(frame, model=str(tracked_run.artifact_dir))
    assert scored.rdd.getNumPartitions() == 2  # one input partition, dealt out over both cores

    assert scored.schema.fieldNames() == ["id", RESULT_COLUMN]
    assert scored.schema[RESULT_COLUMN].dataType == result_type("typed")
    rows = {row["id"]: row[RESULT_COLUMN].asDict(recursive=True) for row in scored.collect()}
    assert len(rows) == len(posts) == scored.count()

    scorer = Scorer.load(tracked_run.artifact_dir, strict=True)
    texts = [(i, t) for i, t in posts if t is not None]
    expected = dict(zip([i for i, _ in texts], scorer.score_batch([t for _, t in texts])))
    for data_id, result in expected.items():
        got = rows[data_id]
        assert (got["label"], got["risk"], got["decision"], got["source"]) == (
            result.label,
            result.risk,
            result.decision,
            result.source,
        ), data_id
        assert got["probabilities"] == result.probabilities and got["notes"] == result.notes
        assert [r["id"] for r in got["evidence"]["rules"]] == [r["id"] for r in result.evidence["rules"]]
        assert got["error"] is None and got["degraded"] is False
    assert rows["long"]["truncated"] is True and rows["empty"]["notes"] == ["empty text"]


def test_skewed_partitions_are_balanced(spark, tracked_run, tmp_path, posts) -> None:
    import pandas as pd

    # a Parquet file of one row group split into byte ranges: every row lands in the range holding the group
    path = tmp_path / "one-row-group.parquet"
    pd.DataFrame(posts[:40], columns=["id", "text"]).to_parquet(path, index=False)
    split = {"spark.sql.files.maxPartitionBytes": str(path.stat().st_size // 2), "spark.sql.files.openCostInBytes": "0"}
    before = {key: spark.conf.get(key) for key in split}
    try:
        for key, value in split.items():
            spark.conf.set(key, value)
        frame = spark.read.parquet(str(path))
        rows = sorted(frame.rdd.glom().map(len).collect())
        assert len(rows) >= 2 and rows[-1] == 40
        scored = score_dataframe(frame, model=str(tracked_run.artifact_dir), evidence="none")
        balanced = scored.rdd.glom().map(len).collect()
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)
    assert len(balanced) == len(rows) and max(balanced) - min(balanced) <= 1


def test_null_and_non_string_text_are_error_rows(spark, tracked_run) -> None:
    frame = spark.createDataFrame([("a", None), ("b", "收卡加微信")], "id string, text string")
    rows = {r["id"]: r[RESULT_COLUMN] for r in score_dataframe(frame, model=str(tracked_run.artifact_dir)).collect()}
    assert rows["a"]["error"] == "text is null, not a string" and rows["a"]["decision"] is None
    assert rows["b"]["error"] is None and rows["b"]["decision"] in ("review", "block")

    numbers = spark.createDataFrame([(1, 5)], "id long, text long")
    (row,) = score_dataframe(numbers, model=str(tracked_run.artifact_dir)).collect()
    assert row["id"] == 1 and row[RESULT_COLUMN]["error"] == "text is int, not a string"


def test_evidence_as_json_or_left_out(spark, tracked_run) -> None:
    frame = spark.createDataFrame([("a", "收*咔 加薇，长期高价收")], "id string, text string")
    (as_json,) = score_dataframe(frame, model=str(tracked_run.artifact_dir), evidence="json").collect()
    assert json.loads(as_json[RESULT_COLUMN]["evidence"])["rules"]
    (without,) = score_dataframe(frame, model=str(tracked_run.artifact_dir), evidence="none").collect()
    assert "evidence" not in without[RESULT_COLUMN].asDict() and without[RESULT_COLUMN]["label"] == "card_trading"


def test_registry_uri_is_resolved_on_the_driver(spark, tracked_run) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    frame = spark.createDataFrame([("a", "收卡加微信 长期收")], "id string, text string")
    uri = f"models:/duanka-test/{tracked_run.registered_version}"
    (row,) = score_dataframe(frame, model=uri).collect()
    assert row[RESULT_COLUMN]["model_version"] == tracked_run.model_version


def test_missing_model_fails_before_the_job_unless_lenient(spark, tmp_path) -> None:
    frame = spark.createDataFrame([("a", "收卡加微信")], "id string, text string")
    with pytest.raises(ArtifactError):
        score_dataframe(frame, model=str(tmp_path / "nothing"))
    (row,) = score_dataframe(frame, model=str(tmp_path / "nothing"), strict=False).collect()
    assert row[RESULT_COLUMN]["degraded"] is True and row[RESULT_COLUMN]["source"] == "rules"


@pytest.mark.parametrize(("suffix", "output_format"), [("parquet", "json"), ("csv", "parquet"), ("jsonl", "csv")])
def test_spark_score_command_reads_and_writes_each_format(
    spark, tracked_run, tmp_path: Path, capsys, suffix: str, output_format: str
) -> None:
    import pandas as pd

    source = tmp_path / f"posts.{suffix}"
    posts = pd.DataFrame(
        {"id": ["a", "b", "c"], "text": ["收*咔 加薇，长期高价收", "周末日结发传单，\n一百一天", None]}
    )
    {"parquet": posts.to_parquet, "csv": posts.to_csv, "jsonl": posts.to_json}[suffix](
        source,
        **({"index": False} if suffix != "jsonl" else {"orient": "records", "lines": True, "force_ascii": False}),
    )
    out = tmp_path / "scored"
    args = ["spark", "score", "--input", str(source), "--output", str(out), "--format", output_format]
    assert main([*args, "--model", str(tracked_run.artifact_dir)]) == 0
    summary = capsys.readouterr().err
    # CSV has no null: an empty field is the empty string, scored (as `duanka score` does)
    assert ("read 3 rows: scored 3, errors 0" if suffix == "csv" else "read 3 rows: scored 2, errors 1") in summary

    read = {"parquet": spark.read.parquet, "json": spark.read.json}.get(output_format)
    if read is not None:
        rows = {r["id"]: r[RESULT_COLUMN] for r in read(str(out)).collect()}
        decisions = {k: (v["decision"], v["error"]) for k, v in rows.items()}
    else:
        frame = pd.concat(pd.read_csv(part, keep_default_na=False) for part in sorted(out.glob("part-*.csv")))
        decisions = {r.id: (r.decision or None, r.error or None) for r in frame.itertuples()}
    assert decisions["a"][0] in ("review", "block") and decisions["a"][1] is None
    assert decisions["b"][1] is None
    if suffix == "csv":
        assert decisions["c"][1] is None
    elif suffix == "jsonl":  # worded as `duanka score` words it: file, row, line, cause
        assert decisions["c"] == (None, f"{source}: row 3 (line 3): text is null, not a string")
    else:
        assert decisions["c"] == (None, "text is null, not a string")


def test_mlflow_spark_udf_with_default_settings_agrees_with_duanka_spark(spark, tracked_run, posts) -> None:
    import mlflow
    from pyspark.sql import functions as F

    mlflow.set_tracking_uri(tracked_run.tracking_uri)
    uri = f"models:/duanka-test/{tracked_run.registered_version}"
    udf = mlflow.pyfunc.spark_udf(spark, uri)  # default settings: the logged signature types every column
    sample = [(i, t) for i, t in posts if t is not None][:12]
    frame = spark.createDataFrame(sample, "id string, text string").withColumn("data_id", F.col("id"))
    via_udf = {row["id"]: row["r"].asDict() for row in frame.select("id", udf("text", "data_id").alias("r")).collect()}
    via_duanka = {
        row["id"]: row[RESULT_COLUMN].asDict()
        for row in score_dataframe(frame.select("id", "text"), model=str(tracked_run.artifact_dir)).collect()
    }
    assert set(via_udf) == set(via_duanka) == {i for i, _ in sample}
    for key, got in via_udf.items():
        expected = via_duanka[key]
        assert (got["label"], got["decision"], got["source"]) == (
            expected["label"],
            expected["decision"],
            expected["source"],
        )
        assert got["risk"] == pytest.approx(expected["risk"], abs=1e-9) and got["data_id"] == key
