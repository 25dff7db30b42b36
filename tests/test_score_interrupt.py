"""`duanka score` stopped by SIGTERM or Ctrl-C writes every row it scored, then its summary (issue 21, item 10)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duanka import cli
from duanka.adapters.file_scoring import BATCH_SIZE, FileSummary, score_records, write_scored
from duanka.scoring.scorer import Scorer

ROOT = Path(__file__).resolve().parents[1]


class _SignalAfterScoring:
    """A Scorer that sends ``signum`` to this process right after scoring batch number ``at`` (the worst moment:
    the batch is scored and none of it written yet)."""

    def __init__(self, scorer: Scorer, signum: int, at: int) -> None:
        self.scorer, self.signum, self.at, self.calls = scorer, signum, at, 0

    def score_batch(self, *args, **kwargs):
        results = self.scorer.score_batch(*args, **kwargs)
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return results


@pytest.mark.parametrize(("signum", "stop"), [(signal.SIGTERM, cli.Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_after_a_batch_is_scored_still_writes_that_whole_batch(
    small_artifact: Path, tmp_path: Path, signum: int, stop: type[BaseException]
) -> None:
    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": f"收卡加微信 第{i}条"}) + "\n" for i in range(2_000)))
    out = tmp_path / "out.jsonl"
    scorer = _SignalAfterScoring(Scorer.load(small_artifact), signum, at=3)
    summary = FileSummary()
    # the CLI's handlers (another test's SparkContext may have installed its own SIGINT handler in this process)
    handlers = {signal.SIGTERM: cli._on_sigterm, signal.SIGINT: signal.default_int_handler}
    previous = {kind: signal.signal(kind, handler) for kind, handler in handlers.items()}
    try:
        with pytest.raises(stop):
            write_scored(iter(score_records(scorer, source, summary=summary)), str(out), summary)  # type: ignore[arg-type]
        assert {kind: signal.getsignal(kind) for kind in handlers} == handlers  # restored after writing
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) == summary.rows == summary.written == 3 * BATCH_SIZE
    assert sum(summary.decisions.values()) == summary.rows  # nothing scored and counted but left unwritten
    assert [line["row"] for line in written] == list(range(1, 3 * BATCH_SIZE + 1))


@pytest.mark.parametrize("to_stdout", [False, True])
def test_sigterm_on_the_command_writes_every_scored_row_and_a_summary_that_adds_up(
    small_artifact: Path, tmp_path: Path, to_stdout: bool
) -> None:
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": f"兼职日结 第{i}条"}) + "\n" for i in range(100_000)))
    out = tmp_path / "o.jsonl"
    code = "import sys; from duanka.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, "score", "--model", str(small_artifact), "--input", str(source), "--quiet"]
    with out.open("w") as sink:
        process = subprocess.Popen(
            [*command, *([] if to_stdout else ["--output", str(out)])],
            stdout=sink if to_stdout else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while out.stat().st_size < 50_000 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    written = out.read_text(encoding="utf-8").splitlines()
    read = int(re.search(r"interrupted: read (\d+) rows", err)[1])
    decisions = sum(
        int(n) for n in re.findall(r"(?:block|review|pass) (\d+)", err.split("decisions:")[1].split(";")[0])
    )
    said = int(err.split("the output holds the first ")[1].split(" rows")[0])
    assert 0 < len(written) == said == read == decisions < 100_000
    assert len(written) % BATCH_SIZE == 0  # whole batches: none scored and dropped
    assert [json.loads(line)["id"] for line in written] == list(range(len(written)))
