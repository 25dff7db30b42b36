"""Every path that reads a posts file agrees on the malformed-file fixtures in tests/fixtures/bad_inputs/.

`duanka score`, `duanka spark score` (local[2]), `duanka review export` and `duanka data check` read each
fixture; they must agree on the row count, and the two score paths on every row's id and error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from duanka.cli import main

BAD = Path(__file__).parent / "fixtures" / "bad_inputs"
FIXTURES = sorted(p.name for p in BAD.iterdir() if p.suffix in (".csv", ".jsonl"))
# What `duanka score` must make of the fixtures written for this module: rows, errors (None: refused whole)
EXPECTED = {
    "unclosed_quote_8rows.csv": (8, 1),
    "nul_bytes.csv": (3, 0),
    "bom_crlf.csv": (3, 0),
    "embedded_newlines.csv": (4, 0),
    "broken_lines.jsonl": (6, 4),
    "non_string_text.jsonl": (7, 6),
    "empty.jsonl": (0, 0),
    "header_only.csv": (0, 0),
    "empty.csv": None,
    "duplicate_column.csv": None,
    "gbk.csv": None,
}
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


def _summary_rows(err: str) -> tuple[int, int] | None:
    found = re.search(r"read (\d+) rows: scored \d+, errors (\d+)", err)
    return (int(found[1]), int(found[2])) if found else None


def _local(path: Path, model: Path, tmp_path: Path, capsys) -> tuple[int, dict[int, tuple[str | None, str | None]]]:
    out = tmp_path / "local.jsonl"
    code = main(["score", "--input", str(path), "--output", str(out), "--model", str(model)])
    capsys.readouterr()
    if code == 2:
        return code, {}
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    ids = {line["row"]: (None if line["id"] is None else str(line["id"]), line.get("error")) for line in lines}
    assert len(ids) == len(lines) and sorted(ids) == list(range(1, len(lines) + 1))  # one line per row, in order
    return code, ids


def _data_check_rows(path: Path, capsys) -> tuple[int, int | None]:
    """(exit code, rows data check looked at: valid ones plus those its errors name)."""
    code = main(["data", "check", str(path)])
    out = capsys.readouterr().out
    if code == 2:
        return code, None
    valid = int(re.search(r": (\d+) valid rows", out)[1])
    named = 0
    for line in out.splitlines():
        listed = re.match(r"\s+error: .*?: rows? ((?:\d+ \(line \d+\)(?:, )?)+)(?: and (\d+) more)?: ", line)
        if listed:
            named += len(re.findall(r"\d+ \(line", listed[1])) + int(listed[2] or 0)
    return code, valid + named


def _review_export_rows(path: Path, model: Path, tmp_path: Path, capsys) -> tuple[int, int]:
    """(exit code, scored posts the queue was chosen from; 0 when it refused a file with none)."""
    args = ["review", "export", "--input", str(path), "--output", str(tmp_path / "queue.csv"), "--budget", "5"]
    code = main([*args, "--model", str(model)])
    captured = capsys.readouterr()
    if code == 2:
        return code, 0 if "no scored rows" in captured.err else -1
    return code, int(re.search(r"from (\d+) scored posts", captured.out)[1])


def test_every_fixture_has_an_expectation_or_predates_this_module() -> None:
    assert set(EXPECTED) <= set(FIXTURES)


@pytest.mark.parametrize("name", FIXTURES)
def test_local_paths_agree_on_rows(name: str, small_artifact: Path, tmp_path: Path, capsys) -> None:
    path = BAD / name
    code, local = _local(path, small_artifact, tmp_path, capsys)
    if name in EXPECTED:
        expected = EXPECTED[name]
        assert (code == 2) == (expected is None)
        if expected is not None:
            assert (len(local), sum(error is not None for _, error in local.values())) == expected
    scored = sum(error is None for _, error in local.values())
    export_code, exported = _review_export_rows(path, small_artifact, tmp_path, capsys)
    if code == 2:
        assert export_code == 2  # refused whole by every path
    else:
        assert exported == scored, f"review export chose from {exported} posts, duanka score scored {scored}"
    check_code, checked = _data_check_rows(path, capsys)
    if code == 2:
        assert check_code == 2
    elif "label" in (path.read_text(encoding="utf-8", errors="replace").splitlines() or [""])[0] or not local:
        assert checked == len(local), f"data check looked at {checked} rows, duanka score read {len(local)}"


@pytest.mark.parametrize("name", FIXTURES)
def test_spark_score_gives_the_rows_ids_and_errors_of_duanka_score(
    name: str, spark, small_artifact: Path, tmp_path: Path, capsys
) -> None:
    path = BAD / name
    code, local = _local(path, small_artifact, tmp_path, capsys)
    out = tmp_path / "spark"
    args = ["spark", "score", "--input", str(path), "--output", str(out), "--format", "json"]
    spark_code = main([*args, "--model", str(small_artifact)])
    err = capsys.readouterr().err
    if code == 2:
        assert spark_code == 2, err
        return
    assert spark_code == 0, err
    rows = [json.loads(line) for part in sorted(out.glob("part-*.json")) for line in part.read_text().splitlines()]
    remote = {row["row"]: (row.get("id"), row["duanka"].get("error")) for row in rows}
    assert len(remote) == len(rows) == len(local)
    assert remote == local
    assert _summary_rows(err) == (len(local), sum(error is not None for _, error in local.values()))


def test_spark_score_reads_a_directory_of_part_files_each_numbered_and_named(
    spark, small_artifact: Path, tmp_path: Path, capsys
) -> None:
    parts = tmp_path / "in"
    parts.mkdir()
    (parts / "part-00000.csv").write_text('id,text\na,收卡加微信\nb,"没关上\nc,周末爬山\n', encoding="utf-8")
    (parts / "part-00001.csv").write_text("id,text\nd,日结兼职\n", encoding="utf-8")
    (parts / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    args = ["spark", "score", "--input", str(parts), "--input-format", "csv", "--output", str(out), "--format", "json"]
    assert main([*args, "--model", str(small_artifact)]) == 0
    assert "read 4 rows: scored 3, errors 1" in capsys.readouterr().err
    rows = [json.loads(line) for part in sorted(out.glob("part-*.json")) for line in part.read_text().splitlines()]
    seen = sorted((row["id"], row["row"], row["duanka"].get("error")) for row in rows)
    assert [(ident, row) for ident, row, _ in seen] == [("a", 1), ("b", 2), ("c", 3), ("d", 1)]
    assert seen[1][2].startswith(f"{parts / 'part-00000.csv'}: row 2 (line 3): malformed quote")


def test_spark_score_refuses_remote_csv_with_what_to_do() -> None:
    from duanka.adapters.spark import _local_files
    from duanka.errors import DataError

    with pytest.raises(
        DataError, match=r"hdfs://nn/posts.csv: CSV and JSON lines inputs are read on the driver.*Parquet"
    ):
        _local_files("hdfs://nn/posts.csv")
