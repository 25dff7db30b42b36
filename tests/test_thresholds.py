"""Policies: targets resolve to thresholds that hold on the validation rows; a post decides per surface."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from duanka.cli import main
from duanka.errors import PolicyError
from duanka.labels import RISKY_LABELS
from duanka.training.features import risk_of
from duanka.training.thresholds import PolicySet, choose_thresholds, decision_rates, thresholds_for_rates

POLICIES = """
version: 1
policies:
  default: {description: training targets}
  strict_sms: {block_precision: 0.999, review_recall: 0.9}
  wide_review: {block_precision: 0.95, review_recall: 0.995}
  lenient: {review: 0.97, block: 0.99}
  eager: {review: 0.02, block: 0.05}
"""


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("policies") / "policies.yaml"
    path.write_text(POLICIES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_posts, small_holdout, fast_config, policy_file):
    from duanka.training.workflow import train_model, write_model

    run = train_model(small_posts, small_holdout, fast_config, policies=policy_file)
    write_model(run, tmp_path_factory.mktemp("policy-model") / "model")
    return run


def test_targets_resolve_to_thresholds_that_meet_them_on_validation_rows(trained) -> None:
    frame = trained.result.train_frame
    open_rows = trained.result.gate_open  # the rows the evidence gate leaves to the model's thresholds
    is_risky = frame["label"].isin(RISKY_LABELS).to_numpy()[open_rows]
    risk = risk_of(trained.result.validation_proba)[open_rows]
    for name, block_precision, review_recall in (("strict_sms", 0.999, 0.9), ("wide_review", 0.95, 0.995)):
        policy = trained.info.policies[name]
        blocked = risk >= policy["block"]
        if blocked.any():  # nothing blocked (block above every risk) also meets a precision target
            assert is_risky[blocked].mean() >= block_precision
        assert (is_risky & (risk >= policy["review"])).sum() / is_risky.sum() >= review_recall
        assert policy["validation"] == decision_rates(is_risky, risk, policy)
    # a stricter block target never blocks more than a looser one
    assert trained.info.policies["strict_sms"]["block"] >= trained.info.policies["wide_review"]["block"]


def test_default_policy_is_the_training_thresholds(trained) -> None:
    policies = trained.info.policies
    assert {k: policies["default"][k] for k in ("review", "block")} == trained.thresholds
    assert policies["lenient"]["review"] == 0.97 and policies["lenient"]["block"] == 0.99
    assert set(policies) == {"default", "strict_sms", "wide_review", "lenient", "eager"}


def test_the_same_post_decides_differently_under_two_policies(trained) -> None:
    from duanka import Scorer

    scorer = Scorer.load(trained.artifact_dir, strict=True)
    text = "收*咔 加薇，长期高价收"
    eager, lenient, default = (scorer.score(text, policy=p) for p in ("eager", "lenient", None))
    assert eager.risk == lenient.risk and 0.05 <= eager.risk < 0.97
    assert (eager.decision, eager.policy) == ("block", "eager")
    assert lenient.policy == "lenient" and lenient.decision != "block"  # pass, or review if a rule escalates
    assert default.policy == "default" and default.to_dict()["policy"] == "default"
    batch = scorer.score_batch([text, "今天天气很好"], policy="eager")
    assert [r.policy for r in batch] == ["eager", "eager"] and batch[0].decision == "block"


def test_unknown_policy_is_a_clear_error(trained) -> None:
    from duanka import Scorer

    scorer = Scorer.load(trained.artifact_dir, strict=True)
    with pytest.raises(PolicyError, match=r"unknown policy 'forum'.*default, eager, lenient, strict_sms"):
        scorer.score("收卡", policy="forum")


def test_an_artifact_without_policies_knows_only_default(artifact_copy) -> None:
    from duanka import Scorer

    manifest_path = artifact_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.pop("policies")
    content = json.dumps(manifest).encode("utf-8")
    manifest_path.write_bytes(content)
    # An unsigned artifact written without policies: its manifest's sha256 is recorded beside it.
    signature = json.loads((artifact_copy / "signature.json").read_text(encoding="utf-8"))
    signature["manifest_sha256"] = hashlib.sha256(content).hexdigest()
    (artifact_copy / "signature.json").write_text(json.dumps(signature), encoding="utf-8")
    scorer = Scorer.load(artifact_copy, strict=True)
    assert scorer.policies == {"default": scorer.thresholds}
    assert scorer.score("收卡加微信").policy == "default"


def test_score_cli_takes_a_policy(trained, capsys) -> None:
    model = str(trained.artifact_dir)
    assert main(["score", "收*咔 加薇，长期高价收", "--model", model, "--policy", "eager", "--compact"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "eager" and result["decision"] == "block"
    assert main(["score", "收卡", "--model", model, "--policy", "forum"]) == 2
    assert "unknown policy 'forum'" in capsys.readouterr().err


def test_shipped_policies_name_the_four_surfaces() -> None:
    assert PolicySet.load().names == ["comment", "default", "job_board", "sms"]


@pytest.mark.parametrize(
    ("spec", "cause"),
    [
        ("policies: {sms: {block: 0.9, block_precision: 0.99}}", "give block or block_precision, not both"),
        ("policies: {default: {block_precision: 0.9}}", "takes the training config's targets"),
        ("policies: {sms: {review: 0.9, block: 0.5}}", "review 0.9 is above block 0.5"),
        ("policies: {sms: {blok: 0.5}}", "unknown key(s) blok"),
        ("policies: {sms: {review_recall: 1.5}}", "review_recall must be in (0, 1]"),
        ("rules: []", "non-empty `policies` mapping"),
    ],
)
def test_invalid_policy_files_name_the_cause(tmp_path: Path, spec: str, cause: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(spec, encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        PolicySet.load(path)
    assert str(path) in str(raised.value) and cause in str(raised.value)


def test_choose_thresholds_on_a_small_example() -> None:
    risky = np.array([True, True, False, True, False])
    risk = np.array([0.9, 0.8, 0.6, 0.5, 0.1])
    assert choose_thresholds(risky, risk, 0.99, 0.97) == {"review": 0.5, "block": 0.8}


def test_thresholds_for_rates_flag_and_block_at_most_those_shares_of_the_traffic() -> None:
    rng = np.random.default_rng(3)
    risk = rng.random(10_000) ** 4  # mostly low, a long tail, as on ordinary traffic
    thresholds = thresholds_for_rates(risk, review_rate=0.005, block_rate=0.0002)
    assert np.mean(risk >= thresholds["block"]) <= 0.0002 and np.mean(risk >= thresholds["review"]) <= 0.005
    # the lowest such thresholds: one more allowed row just below each would exceed the rate
    ranked = np.sort(risk)[::-1]
    assert ranked[2] < thresholds["block"] and np.mean(risk >= ranked[2]) > 0.0002
    assert ranked[50] < thresholds["review"] and np.mean(risk >= ranked[50]) > 0.005
    assert thresholds["review"] <= thresholds["block"]
    assert thresholds_for_rates(risk, 1.0, 1.0) == {"review": 0.0, "block": 0.0}
