from __future__ import annotations

import pytest

from duanka.text.normalize import normalize, normalize_with_offsets


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

    from duanka.text.normalize import _map_chars_plain, _near_form_alternatives, _near_forms

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


def _eager_reference(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """The eager per-character algorithm normalization used before the offset map became lazy."""
    from duanka.text.normalize import _FILLER_RUN, _char_class, _map_char, _near_forms

    def mask(chars: list[str]) -> list[bool]:
        classes = "".join(_char_class(ch) for ch in chars)
        keep = [True] * len(chars)
        for run in _FILLER_RUN.finditer(classes):
            i, j = run.span()
            kinds = run.group()
            before = classes[i - 1] if i > 0 else ""
            after = classes[j] if j < len(classes) else ""
            if before == "h" and after == "h":
                if "p" not in kinds:
                    keep[i:j] = [False] * (j - i)
            elif {before, after} == {"h", "l"} and " " not in kinds and "p" not in kinds:
                keep[i:j] = [False] * (j - i)
            elif " " in kinds:
                seen_space = False
                for k in range(i, j):
                    if kinds[k - i] == " ":
                        if seen_space or not before or not after:
                            keep[k] = False
                        seen_space = True
        return keep

    def apply(chars: list[str], starts: list[int], ends: list[int]) -> tuple[list[str], list[int], list[int]]:
        keep = mask(chars)
        return (
            [c for c, k in zip(chars, keep) if k],
            [s for s, k in zip(starts, keep) if k],
            [e for e, k in zip(ends, keep) if k],
        )

    chars, starts, ends = [], [], []
    for index, ch in enumerate(text):
        for part in _map_char(ch):
            chars.append(part)
            starts.append(index)
            ends.append(index + 1)
    chars, starts, ends = apply(chars, starts, ends)
    pattern, table = _near_forms()
    flat = "".join(chars)
    if pattern.search(flat):
        out_chars, out_starts, out_ends = [], [], []
        cursor = 0
        for match in pattern.finditer(flat):
            begin, finish = match.span()
            out_chars += chars[cursor:begin]
            out_starts += starts[cursor:begin]
            out_ends += ends[cursor:begin]
            replacement = table[match.group()]
            out_chars += replacement
            out_starts += [starts[begin]] * len(replacement)
            out_ends += [ends[finish - 1]] * len(replacement)
            cursor = finish
        chars, starts, ends = apply(out_chars + chars[cursor:], out_starts + starts[cursor:], out_ends + ends[cursor:])
    return "".join(chars), tuple(starts), tuple(ends)


def _parity_texts() -> list[str]:
    """Holdout texts, an obfuscated copy, edge cases and generated stress text."""
    import random
    from pathlib import Path

    import pandas as pd

    from duanka.training.augment import obfuscated_copy

    root = Path(__file__).resolve().parents[1]
    frame = pd.read_csv(root / "data/holdout.csv", dtype=str, keep_default_na=False)
    channel = pd.read_csv(root / "data/holdout_channel.csv", dtype=str, keep_default_na=False)
    texts = [*frame["text"], *obfuscated_copy(frame, seed=3)["text"], *channel["text"]]
    zero_width = "\u200b\u200c\u200d\ufeff"
    texts += [
        "",
        " ",
        "\x00",
        "收\x00卡 加\x00微",
        "高价收卡" * 3_000,
        "收卡" + " " * 11_000 + "加微",
        "🙂🙂收📱卡🔥加薇",
        "Buy SIM cards cheap, DM me on telegram",
        zero_width.join("高价收银行卡长期收加微信秒结"),
        zero_width * 500 + "收卡" + zero_width * 500,
        "兼zhi日jie 只需身fen证 ① ＶＸ：ＫＫ１２３ ﬁ ㈠ 收購",
    ]
    rng = random.Random(11)
    pool = sorted(set("".join(texts[:500]))) + list(" \u200b*.·vxVX薇扣咔\x00\n\t🙂ｖｘ①ﬁ")
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(5_000)]
    return texts


def test_lazy_offsets_equal_the_eager_algorithm() -> None:
    from duanka.text.normalize import normalize_lazily

    texts = _parity_texts()
    assert len(texts) > 7_000
    differ = []
    for text in texts:
        expected = _eager_reference(text)
        eager = normalize_with_offsets(text)
        lazy = normalize_lazily(text)
        text_first = lazy.text  # read before the offsets exist, as scoring does
        if (eager.text, eager.starts, eager.ends) != expected or (text_first, lazy.starts, lazy.ends) != expected:
            differ.append(text[:40])
    assert differ == []


def test_lazy_offsets_are_built_only_when_read() -> None:
    from duanka.text.normalize import normalize_lazily

    lazy = normalize_lazily("快来 收*咔 加薇")
    assert lazy._starts is None  # nothing read yet: no map built
    assert lazy.to_original(lazy.text.index("收卡"), lazy.text.index("收卡") + 2) == (3, 6)
    assert lazy == normalize_with_offsets("快来 收*咔 加薇")


def test_spans_traced_back_lazily_equal_the_built_map() -> None:
    # to_original without the offset map (traced back through the recorded steps) = with the map built.
    import csv
    import random
    from pathlib import Path

    from duanka.text.normalize import normalize_lazily
    from duanka.training.augment import obfuscate

    root = Path(__file__).resolve().parents[1]
    with (root / "data" / "holdout.csv").open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    rng = random.Random(11)
    texts += [obfuscate(t, rng) for t in texts]
    texts += [
        "收\u200b卡 加 v 信，日jie",
        "ＶＸ：收＊咔",
        "壹张伍佰 sfz",
        "a  b",
        "🔥收📱卡🔥",
        "",
        "身fen证 身份zheng",
    ]
    checked = 0
    for text in texts:
        lazy, built = normalize_lazily(text), normalize_with_offsets(text)
        assert lazy.text == built.text
        size = len(lazy.text)
        spans = [(i, min(size, i + n)) for i in range(size) for n in (1, 2, 5)]
        assert [lazy.to_original(a, b) for a, b in spans] == [built.to_original(a, b) for a, b in spans], text
        checked += len(spans)
    assert checked > 100_000
