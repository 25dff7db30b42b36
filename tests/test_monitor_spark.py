"""duanka spark monitor: statistics computed on local[2] equal one process's on the same scored rows."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")

from duanka.adapters.monitor import MonitorOptions, read_windows
from duanka.adapters.spark import score_dataframe
from duanka.adapters.spark_monitor import monitor_dataframe
from duanka.cli import main


def _without_name(stats) -> dict:
    data = stats.to_dict()
    data.pop("name")
    return data


def test_spark_statistics_equal_one_process(spark, small_artifact, small_posts, tmp_path) -> None:
    with open(small_posts, encoding="utf-8", newline="") as handle:
        rows = [(row["id"], row["text"], f"day{k % 2}") for k, row in enumerate(csv.DictReader(handle))]
    df = spark.createDataFrame(rows, "id string, text string, day string")
    scored = score_dataframe(df, model=str(small_artifact), keep=("id", "text", "day"), partitions=3)
    options = MonitorOptions(text_rate=1.0, by="day")
    on_spark = monitor_dataframe(scored, str(small_artifact), options)

    posts = tmp_path / "posts.csv"
    with open(posts, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "day"])
        writer.writerows(rows)
    lines = tmp_path / "scored.jsonl"
    command = ["score", "--model", str(small_artifact), "--input", str(posts), "--output", str(lines)]
    assert main([*command, "--keep", "text", "day", "--quiet"]) == 0
    in_process, problems = read_windows([str(lines)], str(small_artifact), options)

    assert problems == []
    assert [w.name for w in on_spark] == [w.name for w in in_process] == ["day0", "day1"]
    for a, b in zip(on_spark, in_process):
        assert a.rows > 0 and a.text_rows == a.rows
        assert _without_name(a) == _without_name(b)
