from __future__ import annotations

import pytest

from duanka.normalize import normalize, normalize_with_offsets


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("收*咔 加薇", "收卡加微"),
        ("收 卡", "收卡"),
        ("收.卡", "收卡"),
        ("收📱卡", "收卡"),
        ("收\u200b卡", "收卡"),
        ("收購電話卡", "收购电话卡"),
        ("ＶＸ：ＫＫ１２３", "微信:kk123"),
        ("加V信详聊", "加微信详聊"),
        ("扣扣号", "qq号"),
        ("接🐴平台", "接码平台"),
        ("肆件套", "四件套"),
        ("兼zhi日jie", "兼职日结"),
        ("只需身fen证", "只需身份证"),
        ("两部手ji 开hu", "两部手机开户"),
        ("带sfz来", "带身份证来"),
        ("一张两百", "一张两百"),  # Chinese numerals stay readable
        ("价格3.5元", "价格3.5元"),  # a decimal point between digits is not a separator
        ("大陆 收拾", "大陆收拾"),
    ],
)
def test_normalize_undoes_evasion(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_latin_near_forms_need_word_boundaries() -> None:
    assert normalize("wxyz") == "wxyz"
    assert normalize("加 vx") == "加微信"


def test_sentence_punctuation_between_words_is_kept() -> None:
    assert normalize("你好，再见") == "你好,再见"


def test_whitespace_collapses_and_control_characters_go() -> None:
    assert normalize("  hello \n\n world\x07 ") == "hello world"
    assert normalize("\u200b\u200d") == ""


def test_offsets_point_back_into_the_original() -> None:
    raw = "快来 收*咔 加薇 详聊"
    normalized = normalize_with_offsets(raw)
    start = normalized.text.index("收卡")
    begin, end = normalized.to_original(start, start + 2)
    assert raw[begin:end] == "收*咔"
    begin, end = normalized.to_original(normalized.text.index("微"), normalized.text.index("微") + 1)
    assert raw[begin:end] == "薇"


def test_offsets_through_a_multi_character_replacement() -> None:
    raw = "加V信：abc"
    normalized = normalize_with_offsets(raw)
    at = normalized.text.index("微信")
    assert "V信" in raw[slice(*normalized.to_original(at, at + 2))]


def test_offsets_have_one_entry_per_normalized_character() -> None:
    for raw in ["收*咔 加薇", "ＶＸ１２３", "①②③", "收購電話卡", "😊😊 好"]:
        normalized = normalize_with_offsets(raw)
        assert len(normalized.starts) == len(normalized.ends) == len(normalized.text)
        assert all(0 <= s < e <= len(raw) for s, e in zip(normalized.starts, normalized.ends))


def test_bad_span_and_bad_type_are_refused() -> None:
    with pytest.raises(ValueError):
        normalize_with_offsets("收卡").to_original(1, 5)
    with pytest.raises(TypeError):
        normalize_with_offsets(None)  # type: ignore[arg-type]


def test_normalization_is_idempotent() -> None:
    for raw in ["收*咔 加薇，銀行咔 肆件套", "兼zhi日jie 只需身fen证", "ＶＸ：ｋｋ＿ｄｄ"]:
        once = normalize(raw)
        assert normalize(once) == once


def test_near_form_pattern_with_literal_first_branches_finds_the_same_matches() -> None:
    import csv
    import random
    import re
    from pathlib import Path

    from duanka.normalize import _map_chars_plain, _near_form_alternatives, _near_forms

    _, table = _near_forms()
    fast = re.compile("|".join(_near_form_alternatives(table, literal_first=True)))
    reference = re.compile("|".join(_near_form_alternatives(table, literal_first=False)))
    root = Path(__file__).resolve().parents[1]
    texts = []
    for name in ("data/posts.csv", "data/holdout.csv"):
        with (root / name).open(encoding="utf-8", newline="") as handle:
            texts += [_map_chars_plain(row["text"]) for row in csv.DictReader(handle)]
    rng = random.Random(5)
    pieces = [*table, "a", "v", "x", "w", " ", "信", "微", "加", "q", "z", "1"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) for _ in range(5_000)]
    assert len(texts) > 10_000
    differ = [t for t in texts if [m.span() for m in fast.finditer(t)] != [m.span() for m in reference.finditer(t)]]
    assert differ == []
