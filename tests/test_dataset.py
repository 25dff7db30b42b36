from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from duanka.errors import DataError
from duanka.training.dataset import DataWarning, load_posts, near_duplicates, validate_posts

ROOT = Path(__file__).resolve().parents[1]
HEADER = "id,text,label,group,source\n"


def _csv(tmp_path: Path, body: str, name: str = "posts.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_posts(path)
    return str(info.value)


def test_valid_file_loads_with_all_columns(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "1,高价收卡 长期收,card_trading,g1,handwritten\n2,今天吃什么好呢,normal,g2,handwritten\n"
        "3,兼职办卡一张三百,recruitment_lure,g3,handwritten\n",
    )
    frame = load_posts(path)
    assert list(frame.columns[:5]) == ["id", "text", "label", "group", "source"]
    assert len(frame) == 3


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "nolabel.csv"
    path.write_text("id,text\n1,你好\n", encoding="utf-8")
    message = _error(path)
    assert "nolabel.csv" in message and "missing column(s) label" in message


def test_empty_text_is_an_error_with_its_row(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path, "1,今天吃什么好呢,normal,g1,h\n2,   ,normal,g2,h\n"))
    assert "posts.csv: row 2 (line 3): empty text" in message


def test_non_string_text_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    rows = [
        {"id": "1", "text": "今天吃什么好呢", "label": "normal", "group": "g1", "source": "h"},
        {"id": "2", "text": 12345, "label": "normal", "group": "g2", "source": "h"},
        {"id": "3", "text": None, "label": "normal", "group": "g3", "source": "h"},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    message = _error(path)
    assert "row 2 (line 2): text is not a string (int)" in message
    assert "row 3 (line 3): empty text" in message


def test_unknown_label(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path, "1,今天吃什么好呢,normal,g1,h\n2,收卡收卡收卡,spam,g2,h\n"))
    assert "row 2 (line 3): unknown label 'spam'" in message


def test_exact_duplicates(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path, "1,今天吃什么好呢,normal,g1,h\n2,今天吃什么好呢,normal,g2,h\n"))
    assert "rows 1, 2: exact duplicate text" in message


def test_duplicates_after_normalization(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path, "1,收卡 加微信,card_trading,g1,h\n2,收*咔 加V信,card_trading,g2,h\n"))
    assert "rows 1, 2: duplicate after normalization" in message


def test_conflicting_labels(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path, "1,收卡 加微信,card_trading,g1,h\n2,收卡 加微信,normal,g2,h\n"))
    assert "conflicting labels (card_trading, normal)" in message


def test_broken_csv_row_is_reported_not_raised(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path, "1,今天吃什么好呢,normal,g1,h\n2,too,many,fields,here,and,more\n"))
    assert "row 2 (line 3)" in message and "expected 5 fields" in message


def test_broken_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text('{"text": "今天吃什么好呢", "label": "normal"}\n{"text": "oops"\n', encoding="utf-8")
    assert "row 2 (line 2): unreadable: invalid JSON" in _error(path)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'"):
        load_posts(tmp_path / "posts.xlsx")
    with pytest.raises(DataError, match="no such file"):
        load_posts(tmp_path / "absent.csv")


def test_parquet_is_read(tmp_path: Path) -> None:
    path = tmp_path / "posts.parquet"
    pd.DataFrame(
        {
            "id": ["1", "2"],
            "text": ["高价收卡长期收", "今天吃什么好呢"],
            "label": ["card_trading", "normal"],
            "group": ["a", "b"],
            "source": ["h", "h"],
        }
    ).to_parquet(path)
    assert len(validate_posts(path).frame) == 2


def test_warnings_for_imbalance_and_short_texts(tmp_path: Path) -> None:
    rows = "".join(f"{i},今天吃点什么呢朋友们{i},normal,g{i},h\n" for i in range(30))
    path = _csv(tmp_path, rows + "99,收卡,card_trading,g99,h\n")
    with pytest.warns(DataWarning) as caught:
        load_posts(path)
    messages = " ".join(str(w.message) for w in caught)
    assert "no rows labeled recruitment_lure" in messages
    assert "row 31: very short text" in messages


def test_optional_columns_are_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "minimal.csv"
    path.write_text("text,label\n高价收卡长期收,card_trading\n今天吃什么好呢,normal\n", encoding="utf-8")
    with pytest.warns(DataWarning, match="no 'group' column"):
        frame = load_posts(path)
    assert list(frame["group"]) == ["row-1", "row-2"]


# ------------------------------------------------------------------ the shipped corpus
POSTS = ROOT / "data" / "posts.csv"
HOLDOUT = ROOT / "data" / "holdout.csv"
shipped = pytest.mark.skipif(not POSTS.exists(), reason="shipped corpus not present")


@shipped
def test_shipped_files_are_valid_and_large_enough() -> None:
    posts = validate_posts(POSTS)
    holdout = validate_posts(HOLDOUT)
    assert posts.ok, posts.errors
    assert holdout.ok, holdout.errors
    counts = posts.summary()["labels"]
    assert len(posts.frame) >= 4000 and counts["card_trading"] >= 1000 and counts["recruitment_lure"] >= 1000
    assert counts["normal"] >= 2000
    assert (posts.frame["source"] == "handwritten").sum() >= 2500
    assert (posts.frame["source"] != "handwritten").sum() <= len(posts.frame) / 3
    assert len(holdout.frame) >= 800


@shipped
def test_holdout_shares_no_group_and_no_normalized_or_near_duplicate_text() -> None:
    from duanka.text.normalize import normalize

    posts = validate_posts(POSTS).frame
    holdout = validate_posts(HOLDOUT).frame
    assert not set(posts["group"]) & set(holdout["group"])
    assert not {normalize(t) for t in posts["text"]} & {normalize(t) for t in holdout["text"]}
    assert near_duplicates(holdout["text"].tolist(), posts["text"].tolist(), threshold=0.9) == []


@shipped
def test_derived_rows_keep_their_source_group() -> None:
    posts = validate_posts(POSTS).frame
    handwritten = posts[posts["source"] == "handwritten"]
    assert handwritten["group"].is_unique
    derived = posts[posts["source"] != "handwritten"]
    origin = dict(zip(handwritten["group"], handwritten["label"]))
    assert all(origin.get(g) == label for g, label in zip(derived["group"], derived["label"]))


@shipped
def test_no_real_looking_phone_or_id_numbers() -> None:
    phone = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
    id_number = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
    for path in (POSTS, HOLDOUT):
        for text in validate_posts(path).frame["text"]:
            assert not phone.search(text), text
            assert not id_number.search(text), text


def test_a_few_very_short_rows_are_counted_not_warned_about(tmp_path: Path) -> None:
    # Real chat has a few (收到, 666); a notable share (over 2%) usually means a broken column.
    labels = ["card_trading", "recruitment_lure", "normal"]
    rows = "".join(f"{i},今天吃点什么呢朋友们{i},{labels[i % 3]},g{i},h\n" for i in range(100))
    few = validate_posts(_csv(tmp_path, rows + "200,收到,normal,g200,h\n"))
    assert not [w for w in few.warnings if "very short" in w] and few.summary()["short_rows"] == 1
    many = rows + "".join(f"{300 + k},好{k},normal,g{300 + k},h\n" for k in range(3))
    (tmp_path / "many").mkdir()
    report = validate_posts(_csv(tmp_path / "many", many))
    assert any("very short text" in w and "3 of 103 rows" in w for w in report.warnings)
