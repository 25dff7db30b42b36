from __future__ import annotations

import random

import pandas as pd

from duanka.text.normalize import normalize
from duanka.training.augment import augment_frame, detect_evasion, obfuscate, obfuscated_copy


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "text": [
                "高价收卡，长期收，价格300一张，加微信详聊",
                "兼职日结，只需身份证，帮忙实名认证一次200",
                "今天天气很好，出去走走",
            ],
            "label": ["card_trading", "recruitment_lure", "normal"],
            "group": ["g1", "g2", "g3"],
            "source": ["handwritten"] * 3,
        }
    )


def test_obfuscate_is_deterministic_under_a_seed() -> None:
    text = "高价收卡，长期收，加微信详聊"
    assert obfuscate(text, random.Random(3)) == obfuscate(text, random.Random(3))
    variants = {obfuscate(text, random.Random(seed)) for seed in range(20)}
    assert len(variants) > 5


def test_augmented_rows_keep_group_and_label_and_differ_after_normalization() -> None:
    frame = _frame()
    extra = augment_frame(frame, copies=2, seed=1)
    assert set(extra["label"]) <= {"card_trading", "recruitment_lure"}
    assert (extra["source"] == "augmented").all()
    origin = dict(zip(frame["group"], frame["label"]))
    assert all(origin[g] == label for g, label in zip(extra["group"], extra["label"]))
    seen = {normalize(t) for t in frame["text"]}
    assert not seen & {normalize(t) for t in extra["text"]}
    assert augment_frame(frame, copies=2, seed=1).equals(extra)


def test_obfuscated_copy_rewrites_only_risky_rows() -> None:
    frame = _frame()
    copy = obfuscated_copy(frame, seed=5)
    assert list(copy["id"]) == list(frame["id"])
    assert copy.loc[2, "text"] == frame.loc[2, "text"]
    assert (copy.loc[:1, "text"] != frame.loc[:1, "text"]).all()


def test_detect_evasion_names_tricks_and_ignores_plain_text() -> None:
    assert detect_evasion("今天天气很好，我们去吃饭吧") == set()
    assert {"separator", "near_form"} <= detect_evasion("收*咔 加薇")
    assert "traditional" in detect_evasion("收購電話卡")
    assert "fullwidth" in detect_evasion("ＶＸ１２３")
    assert "zero_width" in detect_evasion("收\u200b卡")
    assert "pinyin" in detect_evasion("高价sk，jz日结")
    assert "near_form" in detect_evasion("只需sfz就行")  # sfz is in near_forms.tsv: normalization undoes it


def test_every_table_trick_behaves_as_its_class_says() -> None:
    # One table for every trick: a rewrite listed as undone normalizes back to its term, a surviving one does not.
    from duanka.text import lexicon
    from duanka.training.augment import SURVIVING_TRICKS, TERM_TRICKS, UNDONE_TRICKS, trick_variants

    checked = {trick: 0 for trick in TERM_TRICKS}
    for term in lexicon.domain_terms():
        for trick in TERM_TRICKS:
            for variant in trick_variants(term, trick):
                checked[trick] += 1
                if trick in UNDONE_TRICKS:
                    assert normalize(variant) == normalize(term), (term, trick, variant)
                else:
                    assert trick in SURVIVING_TRICKS
                    assert normalize(variant) != normalize(term), (term, trick, variant)
    assert all(count > 0 for count in checked.values()), checked
    # the documented examples of each class
    assert "sk" in trick_variants("收卡", "pinyin_initials")
    assert trick_variants("身份证", "pinyin_initials") == []  # sfz is undone: a near-form, not a surviving trick
    assert "sfz" not in {v for t in lexicon.domain_terms() for v in trick_variants(t, "pinyin_initials")}
    assert "企鹅" not in {v for v in trick_variants("qq", "near_form")}  # only spellings near_forms.tsv undoes


def test_obfuscate_applies_a_surviving_trick_when_one_exists() -> None:
    text = "高价收卡，长期收，加微信详聊，日结"
    changed = sum(normalize(obfuscate(text, random.Random(seed))) != normalize(text) for seed in range(30))
    assert changed >= 20
