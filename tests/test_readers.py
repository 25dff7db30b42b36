from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from duanka.errors import DataError
from duanka.files.readers import clean_text, iter_records, sha256_file, table_format


def test_sha256_file(tmp_path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_formats_and_clean_text(tmp_path) -> None:
    assert table_format("a.JSONL") == "jsonl"
    with pytest.raises(DataError, match="unknown file type"):
        table_format("a.xlsx")
    assert clean_text("a\x00b") == ("ab", ["nul_removed"])


def test_records_keep_row_numbers_and_errors(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\n\nnot json\n{"text": "b"}\n', encoding="utf-8")
    records = list(iter_records(path))
    assert [r.row for r in records] == [1, 2, 3]
    assert records[1].error and "invalid JSON" in records[1].error and records[1].line == 3
    assert records[2].values == {"text": "b"}


BAD = Path(__file__).parent / "fixtures" / "bad_inputs"

# file -> one (row, id, cause or None) per row a reader of the file counts, in order
EXPECTED = {
    "unclosed_quote.csv": [
        (1, "a", None),
        (2, "b", "malformed quote: a quoted field opened on line 3"),
        (3, "c", None),
        (4, "d", None),
        (5, "e", None),
        (6, "f", None),
    ],
    "stray_quote.csv": [
        (1, "a", "malformed quote: a quoted field opened on line 2"),
        (2, "b", None),
        (3, "c", None),
        (4, "d", None),
        (5, "e", None),
    ],
    "invalid_utf8.csv": [(1, "a", None), (2, "b", "invalid UTF-8 at byte offset 28 (line 3)"), (3, "c", None)],
    "invalid_utf8.jsonl": [(1, "a", None), (2, "b", "invalid UTF-8 at byte offset 51 (line 2)"), (3, "c", None)],
    "mixed.jsonl": [
        (1, "a", None),
        (2, "b", None),
        (3, "c", None),
        (4, "d", None),
        (5, None, "key 'text' appears twice"),
        (6, None, "invalid JSON"),
        (7, "g", None),
        (8, "h", None),
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_corpus_loses_and_renumbers_no_row(name: str) -> None:
    records = list(iter_records(BAD / name))
    assert [(r.row, r.values.get("id")) for r in records] == [(row, ident) for row, ident, _ in EXPECTED[name]]
    for (_, _, cause), record in zip(EXPECTED[name], records):
        assert (record.error is None) == (cause is None)
        if cause:
            assert cause in record.error


def test_gbk_file_is_refused_with_the_fix_or_read_with_its_encoding() -> None:
    with pytest.raises(DataError, match=r"gbk.csv: not UTF-8: .*GBK/GB18030.*iconv -f GB18030 -t UTF-8.*--encoding"):
        list(iter_records(BAD / "gbk.csv"))
    records = list(iter_records(BAD / "gbk.csv", encoding="gb18030"))
    assert records[0].values["text"] == "收卡加微信 长期高价收" and not any(r.error for r in records)
    with pytest.raises(DataError, match="unknown encoding"):
        list(iter_records(BAD / "gbk.csv", encoding="klingon"))


def test_duplicated_column_is_refused() -> None:
    with pytest.raises(DataError, match=r"line 1: column 'text' appears twice \(columns 2 and 3\)"):
        list(iter_records(BAD / "duplicate_text_header.csv"))


def test_unclosed_quote_in_a_large_file_costs_only_its_row(tmp_path) -> None:
    lines = ["id,text"] + [f"{i},第{i}行 普通内容" for i in range(1, 10_001)]
    lines[10] = '10,"这一行的引号没有关上'
    lines[4_768] = '4768,这一行有个"引号'
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = list(iter_records(path))
    assert [r.row for r in records] == list(range(1, 10_001))
    assert [r.values.get("id") for r in records] == [str(i) for i in range(1, 10_001)]
    assert [r.row for r in records if r.error] == [10] and records[9].line == 11


def test_many_unclosed_quotes_stay_linear_and_each_is_its_own_error(tmp_path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text("id,text\n" + "".join(f'{i},"open\n' for i in range(1, 2_001)), encoding="utf-8")
    records = list(iter_records(path))
    assert [r.row for r in records] == list(range(1, 2_001)) and all("malformed quote" in r.error for r in records)


def test_long_fields_are_truncated_not_errors(tmp_path) -> None:
    from duanka.files.readers import MAX_FIELD_CHARS

    path = tmp_path / "long.csv"
    path.write_text(f"id,text\n1,{'长' * 200_000}\n2,{'x' * (MAX_FIELD_CHARS + 5)}\n3,ok\n", encoding="utf-8")
    records = list(iter_records(path))
    assert [r.error for r in records] == [None, None, None]
    assert len(records[0].values["text"]) == 200_000 and len(records[1].values["text"]) == MAX_FIELD_CHARS
    assert any("truncated" in n for n in records[1].notes)


def _long_field_file(path, lines: int, close: bool) -> None:
    """id,text with row 1's quoted text spanning ``lines`` ASCII lines (closed or not), then rows 2 and 3."""
    body = "".join(f"line {i:06d} of one long legal field, xx\n" for i in range(lines))
    with path.open("w", encoding="utf-8") as handle:
        handle.write('id,text\n1,"start\n' + body)
        handle.write('end of the field",\n' if not close else 'end of the field"\n')
        handle.write("2,two\n3,three\n")


def test_one_legal_field_over_120000_lines_is_one_row(tmp_path) -> None:
    from duanka.files.readers import MAX_FIELD_CHARS, MAX_RECORD_CHARS

    path = tmp_path / "long_field.csv"
    _long_field_file(path, 120_000, close=True)
    assert path.stat().st_size > 4_400_000 > MAX_RECORD_CHARS
    records = list(iter_records(path))
    assert [(r.row, r.line, r.values.get("id"), r.error) for r in records] == [
        (1, 2, "1", None),
        (2, 120_004, "2", None),
        (3, 120_005, "3", None),
    ]
    text = records[0].values["text"]
    assert len(text) == MAX_FIELD_CHARS and text.startswith("start\nline 000000 of one long legal field, xx\n")
    assert any("truncated" in note for note in records[0].notes)
    assert records[1].values["text"] == "two"


def test_a_broken_quote_past_the_record_limit_is_still_one_error_naming_row_and_line(tmp_path) -> None:
    path = tmp_path / "long_broken.csv"
    _long_field_file(path, 120_000, close=False)  # the quote closes, but the record then has 3 fields
    records = list(iter_records(path))
    assert len(records) == 120_004  # the broken row, its 120,001 lines read again as rows, rows 2 and 3
    first = records[0]
    assert first.row == 1 and first.line == 2 and first.values.get("id") == "1"  # read leniently, kept
    assert "malformed quote: a quoted field opened on line 2" in first.error
    assert "reading resumes on line 3" in first.error
    assert records[1].line == 3 and records[-1].values == {"id": "3", "text": "three"}
    never = tmp_path / "never_closes.csv"
    never.write_text('id,text\n1,"open\n' + "".join(f"{i},row {i} {'x' * 40}\n" for i in range(2, 100_002)))
    records = list(iter_records(never))
    assert [r.values.get("id") for r in records] == [str(i) for i in range(1, 100_002)]
    assert records[0].line == 2 and "does not close properly" in records[0].error
    assert not any(r.error for r in records[1:])
