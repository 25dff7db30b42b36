from __future__ import annotations

from duanka.text import lexicon
from duanka.text.normalize import normalize


def test_tables_are_read_once_and_hold_what_their_readers_need() -> None:
    assert lexicon.near_forms() is lexicon.near_forms()
    assert ("vx", "微信") in lexicon.near_forms()
    assert lexicon.t2s()["購"] == "购" and lexicon.s2t()["购"] == "購"
    assert lexicon.pinyin_initials()["收卡"] == "sk" and lexicon.pinyin_syllables()["卡"] == "ka"
    terms = lexicon.domain_terms()
    assert "收卡" in terms and list(terms) == sorted(terms, key=len, reverse=True)


def test_domain_terms_are_written_in_normalized_form() -> None:
    # a term normalization would change could never be found in normalized text
    assert [t for t in lexicon.domain_terms() if normalize(t) != t] == []
