"""duanka monitor: window statistics merge, verdicts move when traffic moves (and only then), new slang is found."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from duanka.adapters.monitor import MonitorOptions, build_report, read_stats, read_windows, save_stats
from duanka.cli import main
from duanka.monitoring.compare import g2, psi, psi_noise, wilson
from duanka.monitoring.reference import REFERENCE_FILE, read_reference
from duanka.monitoring.stats import BoundedCounts, Post, TextView, WindowStats, slang_grams
from duanka.scoring.artifact import read_artifact, read_manifest
from duanka.scoring.scorer import Scorer
from duanka.text.normalize import STEPS, normalization_steps, normalize

NEW_SLANG = "咔接回U"  # made up for the test: in no training row


@pytest.fixture(scope="module")
def corpus(small_posts) -> list[str]:
    import csv

    with open(small_posts, encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def scorer(small_artifact) -> Scorer:
    return Scorer.load(small_artifact)


def _posts(scorer: Scorer, texts: list[str]) -> list[Post]:
    posts = []
    for text, result in zip(texts, scorer.score_batch(texts)):
        rules = tuple(hit["id"] for hit in result.evidence["rules"])
        posts.append(Post(result.decision, result.label, result.risk, result.policy, result.source, False, rules, text))
    return posts


def _window(name: str, posts: list[Post], view: TextView) -> WindowStats:
    stats = WindowStats(name=name)
    stats.add(posts, view)
    return stats.finished()


def _report(small_artifact, windows: list[WindowStats]) -> dict:
    return build_report(windows, str(small_artifact), [])


@pytest.fixture(scope="module")
def view(small_artifact) -> TextView:
    return TextView(read_artifact(small_artifact).model.coverage)


def test_normalization_steps_count_what_each_step_changed() -> None:
    names = dict(zip(STEPS, range(len(STEPS))))
    assert normalization_steps("今天天气很好") == (0, 0, 0, 0, 0)
    assert normalization_steps("ＡＢＣ")[names["width"]] == 3
    assert normalization_steps("銀行卡")[names["traditional"]] == 1
    assert normalization_steps("收\u200b卡")[names["invisible"]] == 1
    assert normalization_steps("收*咔 加薇信")[names["near_form"]] == 2  # 咔, 薇信
    assert normalization_steps("收*卡")[names["separator"]] == 1
    assert normalization_steps("hello  world")[names["separator"]] == 0  # collapsing white space is not evasion


def test_statistics_merge_to_the_statistics_of_the_union(scorer, corpus, view) -> None:
    posts = _posts(scorer, corpus)
    whole = _window("w", posts, view)
    half = len(posts) // 2
    merged = _window("w", posts[:half], view).merge(_window("w", posts[half:], view)).finished()
    assert merged.to_dict() == whole.to_dict()
    assert WindowStats.from_json(whole.to_json()).to_dict() == whole.to_dict()
    assert whole.rows == len(corpus) and whole.text_rows == len(corpus)
    assert sum(whole.decisions["default"].values()) == len(corpus)


def test_bounded_counts_keep_the_frequent_keys_and_state_their_error() -> None:
    counts = BoundedCounts(capacity=10)
    rng = random.Random(0)
    keys = [f"k{i}" for i in range(5)] * 200 + [f"rare{rng.randrange(10_000)}" for _ in range(3000)]
    rng.shuffle(keys)
    for key in keys:
        counts.update([key])
    assert len(counts.counts) <= 20
    for i in range(5):
        assert 200 - counts.floor <= counts.get(f"k{i}") <= 200  # a lower bound, short by at most the floor
    assert counts.floor > 0


def test_drift_measures() -> None:
    a = np.array([100, 50, 10, 5])
    assert psi(a, a) == pytest.approx(0.0)
    assert psi(a, a[::-1]) > 1.0
    assert psi_noise(1000, 1000, bins=20) == pytest.approx(19 * 0.002)
    low, high = wilson(50, 100)
    assert low < 0.5 < high
    assert g2(50, 100, 5, 100) > 10.83 > g2(10, 100, 9, 100)
    assert g2(5, 100, 50, 100) < 0  # a fall is negative: only rises are slang


def test_identical_windows_are_ok(small_artifact, scorer, corpus, view) -> None:
    posts = _posts(scorer, corpus)
    report = _report(small_artifact, [_window("day1", posts, view), _window("day2", posts, view)])
    second = report["windows"][1]
    assert second["verdict"] == "ok", second["reasons"]
    assert second["risk"]["default"]["psi_previous"] == pytest.approx(0.0, abs=1e-9)
    assert second["slang"] == [] and second["stopped"] == []


def _evasive(text: str) -> str:
    return "*".join(text) if len(text) < 60 else text


def test_an_evasion_wave_raises_an_alert(small_artifact, scorer, corpus, view) -> None:
    rng = random.Random(3)
    wave = [_evasive(t) if rng.random() < 0.5 else t for t in corpus]
    report = _report(
        small_artifact, [_window("day1", _posts(scorer, corpus), view), _window("day2", _posts(scorer, wave), view)]
    )
    second = report["windows"][1]
    assert second["verdict"] == "alert"
    assert any(r.startswith("alert: separator") for r in second["reasons"]), second["reasons"]
    before, after = report["windows"][0]["input"]["steps"]["separator"], second["input"]["steps"]["separator"]
    assert after["low"] > before["high"]


def test_injected_slang_is_ranked_first_with_examples(small_artifact, scorer, corpus, view) -> None:
    rng = random.Random(5)
    day1 = _posts(scorer, corpus)
    risky = {p.text for p in day1 if p.signal}
    injected = [
        f"{t[: len(t) // 2]}{NEW_SLANG}{t[len(t) // 2 :]}" if t in risky and rng.random() < 0.3 else t for t in corpus
    ]
    report = _report(small_artifact, [_window("day1", day1, view), _window("day2", _posts(scorer, injected), view)])
    slang = report["windows"][1]["slang"]
    assert slang, report["windows"][1]["reasons"]
    assert slang[0]["term"] == normalize(NEW_SLANG)
    assert slang[0]["examples"] and all(NEW_SLANG in e for e in slang[0]["examples"])
    assert report["windows"][1]["verdict"] in ("watch", "alert")
    assert all(NEW_SLANG not in t for t in corpus)  # the day-1 window never saw it


def test_the_artifact_carries_a_reference_profile(small_artifact, corpus) -> None:
    manifest = read_manifest(small_artifact)
    assert REFERENCE_FILE in manifest["files"]  # hashed like every other file
    reference = read_reference(small_artifact, manifest)
    assert reference is not None and reference.rows == reference.text_rows == len(corpus)
    assert set(reference.decisions) >= {"default"}
    assert reference.coverage[0] > 0 and reference.coverage[1] <= reference.coverage[0]
    assert 0 < reference.signal_docs < len(corpus)


def test_slang_grams_skip_numbers_and_latin_words() -> None:
    grams = slang_grams(normalize("加我 vx 12345 卡接回u"))
    assert "卡接回u" in grams and "接回u" in grams
    assert not any(g.isascii() for g in grams)


def _score_file(small_artifact, posts_csv, output) -> None:
    command = ["score", "--model", str(small_artifact), "--input", str(posts_csv), "--output", str(output)]
    assert main([*command, "--quiet"]) == 0


def test_cli_reads_scored_files_writes_html_and_json_and_names_broken_lines(
    small_artifact, small_posts, tmp_path, capsys
) -> None:
    scored = tmp_path / "day1.jsonl"
    _score_file(small_artifact, small_posts, scored)
    broken = tmp_path / "day2.jsonl"
    lines = scored.read_text(encoding="utf-8").splitlines()
    broken.write_text("\n".join([*lines[:5], "{not json", json.dumps({"row": 7}), *lines[7:]]) + "\n", encoding="utf-8")
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    command = ["monitor", str(scored), str(broken), "--model", str(small_artifact), "--html", str(html)]
    assert main([*command, "--json", str(js), "--posts", str(small_posts), str(small_posts)]) == 0
    out = capsys.readouterr().out
    report = json.loads(js.read_text(encoding="utf-8"))
    assert [w["name"] for w in report["windows"]] == ["day1.jsonl", "day2.jsonl"]
    assert report["windows"][1]["errors"] == 2
    assert any("day2.jsonl: line 6: not JSON" in p for p in report["unreadable_rows"])
    assert any("line 7: no decision" in p for p in report["unreadable_rows"])
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "day2.jsonl" in page
    assert "day1.jsonl: " in out


def test_cli_without_text_or_posts_still_reports_rates(small_artifact, small_posts, tmp_path) -> None:
    scored = tmp_path / "day.jsonl"
    _score_file(small_artifact, small_posts, scored)
    windows, problems = read_windows([str(scored)], str(small_artifact), MonitorOptions())
    assert problems == [] and windows[0].rows > 0 and windows[0].text_rows == 0


def test_posts_that_are_not_the_scored_file_are_refused(small_artifact, small_posts, small_holdout, tmp_path) -> None:
    from duanka.errors import DataError

    scored = tmp_path / "day.jsonl"
    _score_file(small_artifact, small_posts, scored)
    with pytest.raises(DataError, match="rows than the scored file"):
        read_windows([str(scored)], str(small_artifact), MonitorOptions(posts=[str(small_holdout)]))


def test_saved_statistics_merge_by_window(small_artifact, scorer, corpus, view, tmp_path) -> None:
    posts = _posts(scorer, corpus)
    half = len(posts) // 2
    save_stats([_window("day1", posts[:half], view)], tmp_path / "a.json")
    save_stats([_window("day1", posts[half:], view)], tmp_path / "b.json")
    merged = read_stats([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert len(merged) == 1 and merged[0].to_dict() == _window("day1", posts, view).to_dict()


def test_reviewer_labels_join_on_post_id_and_misses_feed_the_slang_search(
    small_artifact, small_posts, tmp_path
) -> None:
    import csv

    scored = tmp_path / "day.jsonl"
    _score_file(small_artifact, small_posts, scored)
    lines = [json.loads(line) for line in scored.read_text(encoding="utf-8").splitlines()]
    passed = [line for line in lines if line["decision"] == "pass"][:4]
    feedback = tmp_path / "feedback.csv"
    with open(feedback, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label", "post_id"])
        writer.writerows([f"fb{k}", "-", "card_trading", line["id"]] for k, line in enumerate(passed))
    options = MonitorOptions(posts=[str(small_posts)], reviews=str(feedback))
    windows, _ = read_windows([str(scored)], str(small_artifact), options)
    assert windows[0].reviewed == {"card_trading/pass": len(passed)}
    plain, _ = read_windows([str(scored)], str(small_artifact), MonitorOptions(posts=[str(small_posts)]))
    assert windows[0].signal_docs == plain[0].signal_docs + len(passed)  # missed posts are searched for slang


def test_report_page_draws_windows_where_nothing_was_flagged(small_artifact, tmp_path) -> None:
    from duanka.adapters.monitor_html import write_html

    quiet = WindowStats(name="quiet")
    quiet.rows = 50
    quiet.add_scores(["default"] * 50, ["pass"] * 50, [0.01] * 50)  # every rate 0: its interval starts at 0
    page = write_html(build_report([quiet, quiet], str(small_artifact), []), tmp_path / "r.html")
    assert "<svg" in page.read_text(encoding="utf-8")


def test_window_metrics_are_logged_to_mlflow_against_the_model_version(
    small_artifact, scorer, corpus, view, tmp_path, monkeypatch
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)  # whatever MLflow writes relative to the working folder stays in tmp_path

    from duanka.adapters.tracking import MONITOR_EXPERIMENT, log_monitor_report

    posts = _posts(scorer, corpus)
    report = _report(small_artifact, [_window("day1", posts, view), _window("day2", posts, view)])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # logging points MLflow's process-wide URIs at this store: put back what other tests' fixtures set
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    try:
        run_id = log_monitor_report(report, uri)
        client = mlflow.MlflowClient(uri)
        run = client.get_run(run_id)
        assert run.data.tags["model_version"] == report["model"]["model_version"]
        assert client.get_experiment(run.info.experiment_id).name == MONITOR_EXPERIMENT
        history = client.get_metric_history(run_id, "default.block_rate")
        assert [m.step for m in history] == [0, 1]
        assert history[0].value == pytest.approx(report["windows"][0]["rates"]["default"]["block"]["share"])
        assert "monitor.json" in {f.path for f in client.list_artifacts(run_id)}
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
