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


BAD = ROOT / "tests" / "fixtures" / "bad_inputs"


def _score(model: Path, source: Path, out: Path, *extra: str) -> int:
    return main(["score", "--input", str(source), "--output", str(out), "--model", str(model), "--quiet", *extra])


def test_score_keeps_every_row_of_the_bad_input_corpus(small_artifact, tmp_path: Path, capsys) -> None:
    for name, rows, errors in [("unclosed_quote.csv", 6, 1), ("stray_quote.csv", 5, 1), ("mixed.jsonl", 8, 6)]:
        out = tmp_path / f"{name}.out"
        assert _score(small_artifact, BAD / name, out) == 0
        lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [line["row"] for line in lines] == list(range(1, rows + 1))
        bad = [line for line in lines if "error" in line]
        assert len(bad) == errors and all(line["error"].startswith(f"{BAD / name}: row ") for line in bad)
        assert f"read {rows} rows: scored {rows - errors}, errors {errors}" in capsys.readouterr().err
    padded = json.loads((tmp_path / "mixed.jsonl.out").read_text(encoding="utf-8").splitlines()[-1])
    assert padded["id"] == "h" and padded["decision"] != "pass"


def test_score_refuses_gbk_and_duplicate_columns_and_reads_with_encoding(small_artifact, tmp_path, capsys) -> None:
    assert _score(small_artifact, BAD / "gbk.csv", tmp_path / "o.jsonl") == 2
    assert "duanka: error:" in capsys.readouterr().err
    assert _score(small_artifact, BAD / "gbk.csv", tmp_path / "o.jsonl", "--encoding", "gb18030") == 0
    assert json.loads((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()[0])["label"] == "card_trading"
    assert _score(small_artifact, BAD / "duplicate_text_header.csv", tmp_path / "o.jsonl") == 2
    assert "column 'text' appears twice" in capsys.readouterr().err
    assert main(["data", "check", str(BAD / "gbk.csv")]) == 2


def test_refused_input_creates_no_output_and_keeps_an_existing_one(small_artifact, tmp_path: Path, capsys) -> None:
    fresh = tmp_path / "fresh.jsonl"
    assert _score(small_artifact, tmp_path / "no_such_file.csv", fresh) == 2
    assert "no such file" in capsys.readouterr().err and not fresh.exists()
    existing = tmp_path / "existing.jsonl"
    existing.write_text('{"row": 1}\n', encoding="utf-8")
    assert _score(small_artifact, BAD / "gbk.csv", existing) == 2
    assert existing.read_text(encoding="utf-8") == '{"row": 1}\n'
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("text\n", encoding="utf-8")
    assert _score(small_artifact, header_only, existing) == 0
    assert existing.read_text(encoding="utf-8") == ""  # a file of no rows is answered by an output of no rows


def test_every_row_failing_exits_1(small_artifact, tmp_path: Path, capsys) -> None:
    assert _score(small_artifact, BAD / "all_bad.jsonl", tmp_path / "o.jsonl") == 1
    assert "every one of the 3 rows failed" in capsys.readouterr().err


def test_unwritable_and_full_output_are_errors_not_tracebacks(small_artifact, tmp_path: Path, capsys) -> None:
    assert _score(small_artifact, BAD / "mixed.jsonl", tmp_path / "missing" / "o.jsonl") == 2
    err = capsys.readouterr().err
    assert "duanka: error:" in err and "cannot write the output" in err and "Traceback" not in err
    if Path("/dev/full").exists():
        assert _score(small_artifact, BAD / "mixed.jsonl", Path("/dev/full")) == 2
        assert "No space left on device" in capsys.readouterr().err


def test_interrupt_prints_the_summary_so_far(small_artifact, tmp_path: Path, monkeypatch, capsys) -> None:
    from duanka.scoring.scorer import Scorer

    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": "收卡加微信"}) + "\n" for i in range(600)), encoding="utf-8")
    real = Scorer.score_batch
    calls = []

    def interrupted(self, texts, data_ids=None, **options):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, texts, data_ids, **options)

    monkeypatch.setattr(Scorer, "score_batch", interrupted)
    out = tmp_path / "o.jsonl"
    assert _score(small_artifact, source, out) == 130
    assert "interrupted: read 256 rows: scored 256, errors 0" in capsys.readouterr().err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 256


def test_broken_pipe_is_an_error_exit_2(small_artifact, tmp_path: Path) -> None:
    source = tmp_path / "many.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "text": "收卡加微信"}) + "\n" for i in range(3000)), encoding="utf-8"
    )
    code = "import sys; from duanka.cli import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "score", "--input", str(source), "--model", str(small_artifact), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and b"broken pipe" in err and b"Traceback" not in err


def test_sigterm_keeps_every_written_row_and_prints_the_summary(small_artifact, tmp_path: Path) -> None:
    # A scheduler stops `duanka score` with SIGTERM: it must behave as Ctrl-C does (rows kept, summary printed).
    import signal
    import time

    source = tmp_path / "many.jsonl"
    lines = "".join(json.dumps({"id": i, "text": f"收卡加微信 第{i}条"}) + "\n" for i in range(200_000))
    source.write_text(lines, encoding="utf-8")
    out = tmp_path / "o.jsonl"
    code = "import sys; from duanka.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, "score", "--model", str(small_artifact), "--input", str(source)]
    process = subprocess.Popen([*command, "--output", str(out), "--quiet"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 100_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-2000:]
    assert "interrupted: read" in err and "Traceback" not in err
    written = out.read_text(encoding="utf-8").splitlines()
    said = int(err.split("the output holds the first ")[1].split(" rows")[0])
    assert 0 < said == len(written) < 200_000
    assert [json.loads(line)["id"] for line in written] == list(range(len(written)))


def test_make_run_ends_with_a_table_and_what_to_try_next(small_artifact) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "score_samples.py"), str(small_artifact)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("post"))
    rows = lines[header + 1 : header + 6]
    assert len(rows) == 5 and all(row.split()[-1] in ("pass", "review", "block") for row in rows)
    assert "DEGRADED" not in done.stdout and "next:" in done.stdout and "make ui" in done.stdout
