from __future__ import annotations

import hashlib

import pytest

from duanka.errors import DataError
from duanka.tables import clean_text, iter_records, sha256_file, table_format


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
