from __future__ import annotations

import json
import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from duanka import Scorer
from duanka.errors import ArtifactError

RISKY = "收*咔 加薇，银行卡四件套高价收，长期收"
WARNING = "警方提醒：高价收卡是骗局，切勿出售银行卡"


def test_scores_with_evidence_and_json(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    assert not scorer.degraded
    result = scorer.score(RISKY, data_id="post-1")
    assert result.label == "card_trading"
    assert result.source == "model+rules" and result.degraded is False
    assert result.data_id == "post-1"
    assert abs(sum(result.probabilities.values()) - 1) < 1e-5
    assert result.risk == pytest.approx(1 - result.probabilities["normal"], abs=1e-5)
    rule = result.evidence["rules"][0]
    assert RISKY[rule["matches"][0]["start"] : rule["matches"][0]["end"]] == "收*咔"
    assert result.evidence["model"] and all(f["weight"] > 0 for f in result.evidence["model"])
    manifest = json.loads((small_artifact / "manifest.json").read_text(encoding="utf-8"))
    assert result.model_version == manifest["model_version"]
    assert json.loads(json.dumps(result.to_dict()))["label"] == "card_trading"


def test_to_dict_is_a_deep_copy_equal_to_asdict(small_artifact) -> None:
    import dataclasses

    result = Scorer.load(small_artifact).score(RISKY, data_id={"post": [1, 2]})
    result.evidence["custom"] = [{"nested": {"list": [1]}, "pairs": [[1, 2]]}]
    payload = result.to_dict()
    assert payload == dataclasses.asdict(result) and list(payload) == [f.name for f in dataclasses.fields(result)]
    payload["evidence"]["rules"][0]["matches"][0]["start"] = -1
    payload["evidence"]["custom"][0]["nested"]["list"].append(2)
    payload["evidence"]["custom"][0]["pairs"][0].append(3)
    payload["evidence"]["model"][0]["weight"] = -1
    payload["data_id"]["post"].append(3)
    payload["probabilities"]["normal"] = 2.0
    payload["notes"].append("x")
    assert result.to_dict() == dataclasses.asdict(result) != payload


def test_batch_equals_single_calls(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    texts = [RISKY, WARNING, "周末日结发传单，一百一天，包午饭", "好的谢谢"]
    batch = scorer.score_batch(texts)
    assert [r.to_dict() for r in batch] == [scorer.score(t).to_dict() for t in texts]


def test_decisions_follow_thresholds_and_escalation(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    for result in scorer.score_batch([RISKY, WARNING, "今天天气很好"]):
        expected = (
            "block"
            if result.risk >= scorer.thresholds["block"]
            else "review"
            if result.risk >= scorer.thresholds["review"]
            else "pass"
        )
        if expected == "pass" and any(r["escalate"] for r in result.evidence["rules"]):
            expected = "review"
        assert result.decision == expected


def _assert_rules_only(scorer: Scorer, cause: str) -> None:
    assert scorer.degraded
    result = scorer.score(RISKY)
    assert result.degraded is True and result.source == "rules"
    assert result.label == "card_trading" and result.decision in ("review", "block")
    assert any(cause in note for note in result.notes)


def _rewrite_manifest(directory: Path, manifest: dict) -> None:
    """Edit the manifest as someone without the key can: new bytes, and their sha256 in signature.json."""
    import hashlib

    data = json.dumps(manifest).encode("utf-8")
    (directory / "manifest.json").write_bytes(data)
    signature = json.loads((directory / "signature.json").read_text(encoding="utf-8"))
    signature["manifest_sha256"] = hashlib.sha256(data).hexdigest()
    (directory / "signature.json").write_text(json.dumps(signature), encoding="utf-8")


def test_missing_model_file_falls_back_to_rules(artifact_copy: Path, caplog) -> None:
    (artifact_copy / "model.npz").unlink()
    with caplog.at_level(logging.WARNING, logger="duanka"):
        scorer = Scorer.load(artifact_copy)
    assert len([r for r in caplog.records if "rules only" in r.getMessage()]) == 1
    _assert_rules_only(scorer, "missing file")


def test_one_changed_byte_falls_back_to_rules(artifact_copy: Path) -> None:
    path = artifact_copy / "model.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _assert_rules_only(Scorer.load(artifact_copy), "sha256 mismatch")


def test_missing_directory_and_unreadable_manifest(tmp_path: Path, artifact_copy: Path) -> None:
    _assert_rules_only(Scorer.load(tmp_path / "nowhere"), "no artifact directory")
    (artifact_copy / "manifest.json").write_text("{not json", encoding="utf-8")
    _assert_rules_only(Scorer.load(artifact_copy), "unreadable manifest")


def test_incompatible_format_version(artifact_copy: Path) -> None:
    manifest = json.loads((artifact_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    _rewrite_manifest(artifact_copy, manifest)
    _assert_rules_only(Scorer.load(artifact_copy), "format version 99")


def test_model_file_of_the_wrong_type_with_a_valid_hash_falls_back(artifact_copy: Path) -> None:
    import hashlib

    manifest = json.loads((artifact_copy / "manifest.json").read_text(encoding="utf-8"))
    for name, content in (("model.npz", b"not an npz archive"), ("model.json", b'{"export_format": 1}')):
        (artifact_copy / name).write_bytes(content)
        manifest["files"][name] = hashlib.sha256(content).hexdigest()
        _rewrite_manifest(artifact_copy, manifest)
        _assert_rules_only(Scorer.load(artifact_copy), "model.json")
        with pytest.raises(ArtifactError, match=r"not an exported model|malformed|expected"):
            Scorer.load(artifact_copy, strict=True)


@pytest.mark.parametrize("thresholds", [{"review": 0.5, "block": 2.0}, {"review": "x"}, "high", None])
def test_malformed_thresholds_fall_back(artifact_copy: Path, thresholds) -> None:
    manifest = json.loads((artifact_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["thresholds"] = thresholds
    _rewrite_manifest(artifact_copy, manifest)
    _assert_rules_only(Scorer.load(artifact_copy), "thresholds")


def test_strict_raises_instead(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no artifact directory"):
        Scorer.load(tmp_path / "nowhere", strict=True)


def test_model_failure_on_one_input_is_scored_by_rules(small_artifact, monkeypatch) -> None:
    scorer = Scorer.load(small_artifact)
    real = scorer._model.transform

    def flaky(texts):
        if any("爆炸" in t for t in texts):
            raise RuntimeError("boom")
        return real(texts)

    monkeypatch.setattr(scorer._model, "transform", flaky)
    results = scorer.score_batch(["今天天气很好", "爆炸 收卡 加微信", RISKY])
    assert [r.source for r in results] == ["model", "rules", "model+rules"]
    assert results[1].degraded is True and results[0].degraded is False


def test_bad_inputs(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    with pytest.raises(TypeError, match="must be str, not NoneType"):
        scorer.score(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="position 1"):
        scorer.score_batch(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of texts"):
        scorer.score_batch("收卡")  # type: ignore[arg-type]
    empty = scorer.score("   \n ")
    assert (empty.label, empty.decision, empty.notes) == ("normal", "pass", ["empty text"])
    long = scorer.score("收卡" + "啊" * 20_000)
    assert long.truncated and long.label and any("shortened to 8" in n for n in long.notes)
    varied = scorer.score("收卡" + "天气很好" * 5_000)
    assert varied.truncated and any("scored on the first 10000" in n for n in varied.notes)
    odd = scorer.score("收\x00卡\x07 \ud800 加微信")
    json.dumps(odd.to_dict()).encode("utf-8")
    assert "input: invalid_utf8" in odd.notes and "input: nul_removed" in odd.notes


def test_term_lists_change_decisions_without_retraining(small_artifact, tmp_path: Path) -> None:
    block = tmp_path / "block.txt"
    block.write_text("星辰宝\n", encoding="utf-8")
    allow = tmp_path / "allow.txt"
    allow.write_text("市公安局反诈中心\n", encoding="utf-8")
    scorer = Scorer.load(small_artifact, blocklist=block, allowlist=allow)
    blocked = scorer.score("今天天气很好，星辰宝见")
    assert blocked.decision == "block" and blocked.label != "normal"
    assert blocked.evidence["terms"][0]["list"] == "blocklist"
    allowed = scorer.score("市公安局反诈中心：" + RISKY)
    assert allowed.decision == "pass"


def test_thread_pool_gives_serial_results(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    texts = [RISKY, WARNING, "兼职办卡一张三百", "今天天气很好", "出租微信一天50"] * 20
    serial = [r.to_dict() for r in scorer.score_batch(texts)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = [r.to_dict() for r in pool.map(scorer.score, texts)]
    assert parallel == serial


def test_thread_pool_from_a_cold_process(small_artifact) -> None:
    # jieba's lazy initialisation must be safe when the first calls race each other.
    code = f"""
import json
from concurrent.futures import ThreadPoolExecutor
from duanka import Scorer
scorer = Scorer.load({str(small_artifact)!r})
texts = ["收卡加微信", "兼职办卡一张三百", "今天天气很好"] * 10
with ThreadPoolExecutor(max_workers=6) as pool:
    parallel = [r.to_dict() for r in pool.map(scorer.score, texts)]
print(json.dumps(parallel == [r.to_dict() for r in scorer.score_batch(texts)]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "true"


def test_loading_an_artifact_imports_no_mlflow_and_needs_no_pandas(small_artifact) -> None:
    # scikit-learn imports pandas itself when it is installed; hide it to prove duanka's path needs none.
    code = f"""
import sys
sys.modules["pandas"] = None
from duanka import Scorer
scorer = Scorer.load({str(small_artifact)!r}, strict=True)
print(scorer.score("收卡加微信").label, "mlflow" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["card_trading", "False"]


def test_loading_and_scoring_import_no_scikit_learn_pandas_or_joblib(small_artifact) -> None:
    code = f"""
import sys
from duanka import Scorer
scorer = Scorer.load({str(small_artifact)!r}, strict=True)
result = scorer.score_batch(["收*咔 加薇，长期高价收，秒结", "周末日结发传单"])[0]
assert not result.degraded and result.evidence["model"], result
result.to_dict()
loaded = sorted(m for m in ("sklearn", "scipy", "scipy.stats", "pandas", "joblib", "jieba") if m in sys.modules)
print(",".join(loaded) or "none")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "none"


def test_evidence_is_the_same_whether_read_early_late_or_only_serialized(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    texts = [RISKY, WARNING, "周末日结发传单，一百一天，包午饭"]
    serialized = [r.to_dict() for r in scorer.score_batch(texts)]
    read_first = scorer.score_batch(texts)
    evidence = [r.evidence["model"] for r in read_first]
    assert [r.to_dict() for r in read_first] == serialized
    assert [s["evidence"]["model"] for s in serialized] == evidence and evidence[0]
    assert read_first[0] == scorer.score(RISKY)  # equality reads the evidence too


POST = "收*咔 加薇，长期高价收，秒结"


@pytest.mark.parametrize("pad", ["\u200b", " ", "\n", "\x00", "\u3000", "\u200b \n\u3000"])
def test_padding_cannot_hide_a_post(small_artifact, pad: str) -> None:
    scorer = Scorer.load(small_artifact)
    plain = scorer.score(POST)
    assert plain.decision != "pass"
    padding = pad * (20_000 // len(pad))
    padded = scorer.score(padding + POST)
    assert padded.decision == plain.decision and padded.risk == pytest.approx(plain.risk)
    assert "empty text" not in padded.notes and padded.truncated is False
    # evidence spans still point into the text the caller sent
    spans = [(m["start"], m["end"]) for hit in padded.evidence["rules"] for m in hit["matches"]]
    assert spans and all((padding + POST)[a:b] in POST for a, b in spans)


def test_repeated_visible_padding_is_shortened_not_scored_instead_of_the_post(small_artifact) -> None:
    scorer = Scorer.load(small_artifact)
    padded = scorer.score("。" * 50_000 + POST)
    assert padded.truncated and padded.decision != "pass"
    assert padded.evidence["rules"][0]["matches"][0]["start"] == 50_000


def test_raw_input_is_bounded_before_cleaning(small_artifact) -> None:
    from duanka.scoring.scorer import MAX_INPUT_CHARS

    result = Scorer.load(small_artifact).score(POST + "\u200b" * (MAX_INPUT_CHARS + 10))
    assert result.truncated and any(f"first {MAX_INPUT_CHARS}" in n for n in result.notes)
    assert result.decision != "pass"


def test_fast_paths_give_every_field_of_the_reference_path(small_artifact, monkeypatch) -> None:
    """Lazy offsets, the rules' literal gate and the batch conversions change no field of ``to_dict()``."""
    import random

    import pandas as pd

    import duanka.scoring.scorer as scorer_module
    from duanka.scoring.rules import RuleSet
    from duanka.text.normalize import normalize_with_offsets
    from duanka.training.augment import obfuscated_copy

    root = Path(__file__).resolve().parents[1]
    frame = pd.read_csv(root / "data/holdout.csv", dtype=str, keep_default_na=False)
    channel = pd.read_csv(root / "data/holdout_channel.csv", dtype=str, keep_default_na=False)
    zero_width = "\u200b\u200c\u200d\ufeff"
    texts = [*frame["text"], *obfuscated_copy(frame, seed=6)["text"], *channel["text"]]
    texts += ["", " ", "\x00", "收\x00卡 加\x00微", "高价收卡" * 3_000, "a" * 12_000, "🙂🙂收📱卡🔥加薇"]
    texts += ["Buy SIM cards cheap, DM me on telegram", zero_width.join("高价收银行卡长期收加微信秒结")]
    texts += [zero_width * 500 + "收卡" + zero_width * 500, "\ud800收卡"]
    rng = random.Random(2)
    texts = texts + rng.sample(texts[:900], 200)  # repeats in one batch
    scorer = Scorer.load(small_artifact, blocklist=None)
    ids = list(range(len(texts)))
    fast = [r.to_dict() for r in scorer.score_batch(texts, ids)]
    fast_one = [scorer.score(t, policy="default").to_dict() for t in texts[:150]]

    def ungated(self, normalized, original):
        return [hit for rule in self.rules if (hit := rule.apply(normalized, original)) is not None]

    monkeypatch.setattr(scorer_module, "normalize_lazily", normalize_with_offsets)
    monkeypatch.setattr(RuleSet, "match", ungated)
    reference = [r.to_dict() for r in scorer.score_batch(texts, ids)]
    reference_one = [scorer.score(t, policy="default").to_dict() for t in texts[:150]]
    assert sum(bool(r["evidence"]["rules"]) for r in reference) > 300  # many posts where rules fire
    assert json.dumps(fast, ensure_ascii=False) == json.dumps(reference, ensure_ascii=False)
    assert fast == reference and fast_one == reference_one


# Padding that renders as decoration or as nothing (issue 21): before, 100,000 characters of ❤️✨ before an ad
# pushed it out of the 10,000-character window and it passed.
PADDING = {
    "hearts and sparkles with presentation selectors": "\u2764\ufe0f\u2728",
    "thumbs up with skin tones": "\U0001f44d\U0001f3fd",
    "keycaps": "1\ufe0f\u20e3",
    "flags (regional indicators)": "\U0001f1e8\U0001f1f3",
    "zwj family": "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "tag sequence (Scotland)": "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "private use": "\ue000\uf8ff",
    "mixed": "\u2728\U0001f525\U0001f4b0\u27a1\ufe0f",
}


@pytest.mark.parametrize("kind", sorted(PADDING))
def test_decoration_padding_cannot_push_an_ad_out_of_the_window(small_artifact, kind: str) -> None:
    scorer = Scorer.load(small_artifact)
    ad = "收*咔 加薇，长期高价收，秒结"
    bare = scorer.score(ad)
    pad = PADDING[kind] * (100_000 // len(PADDING[kind]))
    assert bare.decision != "pass" and bare.label != "normal"
    for padded_text in (pad + ad, ad + pad, pad[:50_000] + ad + pad[:50_000]):
        padded = scorer.score(padded_text)
        # never passed where the bare ad is not (keycaps leave their digit behind, so the text is not identical)
        assert padded.decision != "pass" and padded.label == bare.label, (kind, padded.notes)
        if kind not in ("keycaps",):
            assert padded.decision == bare.decision and padded.risk == pytest.approx(bare.risk, abs=0.01), kind
