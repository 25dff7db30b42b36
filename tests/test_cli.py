from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from duanka.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_data_check_passes_and_fails(small_posts, tmp_path: Path, capsys) -> None:
    assert main(["data", "check", str(small_posts)]) == 0
    out = capsys.readouterr().out
    assert "labels: card_trading 60, recruitment_lure 60, normal 60" in out and "OK" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,label,group,source\n1,收卡,spam,g,h\n", encoding="utf-8")
    assert main(["data", "check", str(bad)]) == 1
    assert "unknown label 'spam'" in capsys.readouterr().out


def test_data_check_against_finds_shared_groups(small_posts, capsys) -> None:
    assert main(["data", "check", str(small_posts), "--against", str(small_posts)]) == 1
    assert "180 shared group(s)" in capsys.readouterr().out


def test_rules_check(capsys) -> None:
    assert main(["rules", "check"]) == 0
    assert "0 failing" in capsys.readouterr().out


def test_score_one_text(small_artifact, capsys) -> None:
    assert main(["score", "收*咔 加薇，长期收", "--model", str(small_artifact), "--compact"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == "card_trading" and result["degraded"] is False


def test_score_file_with_broken_rows_writes_one_line_per_row(small_artifact, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "收卡加微信 长期收"}, ensure_ascii=False),
        "{broken json",
        json.dumps({"id": "c", "text": None}),
        json.dumps({"id": "d", "body": "no text field"}),
        json.dumps({"id": "e", "text": "今天天气很好 \ud800"}),
        json.dumps({"id": "f", "text": ""}),
    ]
    source.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + b'{"id": "g", "text": "\xff\xfe bad bytes"}\n')
    out = tmp_path / "out.jsonl"
    code = main(["score", "--input", str(source), "--output", str(out), "--model", str(small_artifact)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.get("id") for r in rows] == ["a", None, "c", "d", "e", "f", "g"]
    assert rows[0]["label"] == "card_trading"
    assert "in.jsonl: row 2 (line 2): invalid JSON" in rows[1]["error"]
    assert "text is null" in rows[2]["error"] and "no 'text' field" in rows[3]["error"]
    assert rows[4]["label"] and rows[5]["notes"] == ["empty text"]
    assert "in.jsonl: row 7 (line 7): invalid UTF-8 at byte offset" in rows[6]["error"]
    summary = capsys.readouterr().err
    assert "read 7 rows: scored 3, errors 4" in summary


def test_score_csv_keeps_order_and_ids(small_artifact, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('post_id,body\n9,收卡加微信\n8,"too","many"\n7,今天天气很好\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(
        [
            "score",
            "--input",
            str(source),
            "--output",
            str(out),
            "--text-column",
            "body",
            "--id-column",
            "post_id",
            "--model",
            str(small_artifact),
        ]
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["9", None, "7"] and "expected 2 fields" in rows[1]["error"]


def test_score_without_model_says_degraded(tmp_path: Path, capsys) -> None:
    assert main(["score", "收卡加微信", "--model", str(tmp_path / "none")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["degraded"] is True and result["source"] == "rules"


def test_train_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,你好\n", encoding="utf-8")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "duanka.cli",
            "train",
            "--data",
            str(bad),
            "--holdout",
            "none",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("duanka: error:")
    assert "missing column(s) label" in out.stderr
    assert "Traceback" not in out.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "duanka.cli", "train", "--tracking-uri", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=180,
    )
    assert unreachable.returncode == 2 and "cannot reach the MLflow tracking store" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
