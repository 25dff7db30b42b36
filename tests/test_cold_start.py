"""What the cold-start work made lazy or cheaper still gives the same answers and the same errors.

Covers: evidence tables built on first read (a first score equals a warm one), rule patterns compiled and parsed
as one combination with the errors still naming the first bad pattern, the literal gate read from that parse,
the vocabulary's duplicate check folded into building it, and ``python -m benchmarks.cold_start``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from duanka.errors import ArtifactError, RulesError
from duanka.scoring.model import LinearModel, Vectorizer
from duanka.scoring.rules import RuleSet, _compile, required_literals
from duanka.scoring.scorer import Scorer

ROOT = Path(__file__).resolve().parents[1]
POSTS = ["出售银行卡 一类卡 加V详聊 价格私聊", "招聘 日结 300 在家可做 加QQ", "今天天气不错，出去走走。", ""]


def test_a_first_score_equals_a_warm_score(small_artifact: Path) -> None:
    """Evidence tables are built when evidence is first read; the first result of a fresh scorer is the warm one."""
    first = [Scorer.load(small_artifact, strict=True).score(text).to_dict() for text in POSTS]  # fresh each time
    scorer = Scorer.load(small_artifact, strict=True)
    batch = [r.to_dict() for r in scorer.score_batch(POSTS)]
    warm = [scorer.score(text).to_dict() for text in POSTS]
    assert first == batch == warm
    assert any(result["evidence"]["model"] for result in first)


def test_a_scorer_shared_by_threads_builds_the_same_evidence(small_artifact: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = [Scorer.load(small_artifact, strict=True).score(text).to_dict() for text in POSTS * 5]
    scorer = Scorer.load(small_artifact, strict=True)
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda text: scorer.score(text).to_dict(), POSTS * 5))
    assert found == expected


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (["re:a)|(b"], r"regular expression 'a\)\|\(b' cannot be compiled"),  # valid only inside the combination
        (["收卡", "re:(a", "ＶＸ"], r"regular expression '\(a' cannot be compiled"),  # first bad one, in file order
        (["ＶＸ", "re:(a"], r"literal 'ＶＸ' can never match"),
        (["re:(?<=a)b"], r"cannot be compiled \(invalid perl operator"),
        (["re:\\p{Han}卡"], r"cannot be compiled \(bad escape"),  # RE2 accepts it, Python's parse does not
        (["收卡", ""], r"every pattern must be a non-empty string"),
    ],
)
def test_rule_errors_name_the_first_bad_pattern(patterns: list[str], message: str) -> None:
    with pytest.raises(RulesError, match=message):
        _compile(patterns, "rules.yaml: rule 'x'")


def test_patterns_python_parses_only_apart_get_no_gate() -> None:
    """Two patterns with one group name: RE2 takes the combination, Python's parse does not, so the rule has no
    literal gate (it always runs), as when each pattern was checked on its own."""
    pattern, tree = _compile(["re:(?P<x>收卡)", "re:(?P<x>加微)"], "w")
    assert pattern is not None and tree is None


def test_the_gate_read_from_the_combined_parse_equals_required_literals() -> None:
    rules = RuleSet.load()
    assert rules.rules
    for rule in rules.rules:
        assert rule.literals == required_literals(rule.patterns), rule.rule_id
    assert sum(rule.literals is not None for rule in rules.rules) > len(rules.rules) // 2


def _model(word_terms: tuple[str, ...], char_terms: tuple[str, ...]) -> LinearModel:
    vectorizers = [
        Vectorizer("words", "word", (1, 2), True, "l2", word_terms, np.ones(len(word_terms), dtype=np.float32)),
        Vectorizer("chars", "char", (1, 3), True, "l2", char_terms, np.ones(len(char_terms), dtype=np.float32)),
    ]
    width = len(word_terms) + len(char_terms)
    return LinearModel(vectorizers, np.zeros((3, width)), np.zeros(3), ("收卡",), False, " ")


def test_duplicate_vocabulary_terms_are_refused() -> None:
    model = _model(("收卡", "加微"), ("收", "卡", "收卡"))
    assert model.n_features == 5
    assert model.predict_proba(["收卡 加微"]).shape == (1, 3)
    with pytest.raises(ArtifactError, match="'words': vocabulary has duplicate"):
        _model(("收卡", "收卡"), ("收",))
    with pytest.raises(ArtifactError, match="'chars': vocabulary has duplicate"):
        _model(("收卡",), ("收", "卡", "收"))


def test_cold_start_script_writes_its_report(small_artifact: Path, small_holdout: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "benchmarks.cold_start",
        "--runs",
        "2",
        "--artifact",
        str(small_artifact),
        "--holdout",
        str(small_holdout),
        "--output-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "cold_start.json").read_text(encoding="utf-8"))
    assert record["runs"] == 2 and len(record["per_run"]) == 2
    for run in record["per_run"]:
        assert run["import_s"] > 0 and run["artifact_load_s"] > 0 and run["first_post_s"] > 0
        assert run["cold_start_s"] == pytest.approx(run["import_s"] + run["artifact_load_s"] + run["first_post_s"])
        assert 0 < run["cold_start_cpu_s"] and run["startup_s"] >= 0
        assert run["peak_rss_mb"] >= run["rss_after_first_mb"] >= run["rss_after_load_mb"] > 0
    report = (tmp_path / "cold_start.md").read_text(encoding="utf-8")
    assert "cold start: imports + load + first post" in report and "Targets (issue 23)" in report
