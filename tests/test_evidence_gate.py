from __future__ import annotations

import numpy as np
import pytest

from duanka import Scorer
from duanka.scoring.evidence_gate import decision_risk, gate_for, trade_terms_in
from duanka.text.chars import has_han
from duanka.text.normalize import normalize

# Written for this test: posts with no Chinese text, and Chinese posts with no trade term at all.
NO_CHINESE = [
    "Responsible for thermal design of outdoor telecom cabinets; 5+ years with CFD tools.",
    "Senior payments engineer: build settlement services, on-call rotation, Go/Kotlin.",
    "lol same here, see you at 8 tomorrow!!",
    "😂😂😂🙏",
    "2333333",
    "Selling my old bike, 30 bucks, pick up downtown.",
    "Need 5 people for weekend moving help, paid cash daily, DM me",
]
NO_TRADE_TERM = [
    "你不懂，你不懂的",
    "今天的晚霞真好看，下班路上拍了好多照片",
    "某集团宣布新能源车项目落户本市，预计年内投产",
    "周末带娃去公园，人好多",
]


def test_gate_classes() -> None:
    assert gate_for(normalize("收*咔 加薇，长期高价收")).ceiling == "block"
    assert gate_for(normalize("Selling CN SIM cards, real-name verified")).ceiling == "review"
    for text in NO_TRADE_TERM:
        assert gate_for(normalize(text)).ceiling == "pass", text
    assert trade_terms_in(normalize("出一类卡，飞机联系")) and has_han("收卡") and not has_han("sim card")


def test_decision_risk_follows_the_gate() -> None:
    texts = [normalize(t) for t in ("收卡加微信", "今天天气很好", "sell sim cards")]
    seen = decision_risk(np.array([0.9, 0.9, 0.9]), texts, block=0.8)
    assert seen[0] == 0.9 and seen[1] == 0.0 and 0.79 < seen[2] < 0.8


@pytest.mark.parametrize("text", NO_CHINESE + NO_TRADE_TERM)
def test_the_model_alone_never_blocks_these(small_artifact, text: str) -> None:
    scorer = Scorer.load(small_artifact, strict=True)
    result = scorer.score(text)
    assert result.decision != "block"
    if text in NO_TRADE_TERM or not trade_terms_in(normalize(text)):
        assert result.decision == "pass"


def test_the_gate_names_itself_when_it_acts(small_artifact, monkeypatch) -> None:
    scorer = Scorer.load(small_artifact, strict=True)
    # the model would block everything under the default policy
    monkeypatch.setitem(scorer.policies, "default", {"review": 0.0, "block": 0.0})
    english = scorer.score("Selling CN SIM cards, real-name verified, DM")
    assert english.decision == "review" and any(n.startswith("gate: no Chinese text") for n in english.notes)
    chat = scorer.score("今天的晚霞真好看")
    assert chat.decision == "pass" and any("no card, number, code" in n for n in chat.notes)
    assert scorer.score("收*咔 加薇，长期高价收").decision == "block"
