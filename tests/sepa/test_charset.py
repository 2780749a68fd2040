"""Transliteration into the EPC basic Latin character set."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sepa.charset import is_epc, to_epc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jörg Österle & Söhne", "Joerg Oesterle + Soehne"),
        ("Ä Ö Ü ä ö ü ß", "Ae Oe Ue ae oe ue ss"),
        ("MÜLLER GMBH", "MUELLER GMBH"),  # capitals inside a capital word stay capitals
        ("ÖZTÜRK", "OEZTUERK"),
        ("Straße", "Strasse"),
        ("STRAßE", "STRASSE"),
        ("Œuvre ÆSIR", "Oeuvre AESIR"),
        ("Jo\u0308rg", "Joerg"),  # decomposed o + combining diaeresis
        ("Café Élise", "Cafe Elise"),
        ("Łódź", "Lodz"),
        ("Ærøskøbing", "Aeroskobing"),
        ("Åsa Øberg", "Asa Oberg"),
        ("Seán Ó Briain", "Sean O Briain"),
        ("Zoé D'Angelo", "Zoe D'Angelo"),
        ("Ñandú Çelik", "Nandu Celik"),
        ("snake_case", "snake-case"),
        ('say "hi"', "say 'hi'"),
        ("a;b", "a,b"),
        ("Danke!", "Danke."),
        ("kunde@example.org", "kunde(at)example.org"),
        ("50% *off* #1 =2", "50 off 1 2"),
        ("[R1] {x} <y>", "(R1) (x) (y)"),
        ("Remboursement «été»", "Remboursement 'ete'"),
        ("  a \t\n  b  ", "a b"),
        ("€ 12,50", "EUR 12,50"),
        ("Ref: 2024/05-17 (R1) ?", "Ref: 2024/05-17 (R1) ?"),  # all inside the set already
        ("🙂", ""),
        ("", ""),
    ],
)
def test_to_epc_transliterates(text: str, expected: str) -> None:
    assert to_epc(text) == expected


@pytest.mark.parametrize(
    ("text", "max_len", "expected"),
    [
        ("Jörg", 3, "Joe"),  # cut after transliteration, so the limit holds for the written text
        ("ab cd", 3, "ab"),  # no trailing space after the cut
        ("abc", 0, ""),
        ("abc", 10, "abc"),
        ("x" * 80, 70, "x" * 70),
    ],
)
def test_to_epc_cuts_to_max_len(text: str, max_len: int, expected: str) -> None:
    assert to_epc(text, max_len) == expected


def test_negative_max_len_is_refused() -> None:
    with pytest.raises(ValueError, match="max_len"):
        to_epc("abc", -1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Joerg Oesterle + Soehne", True), ("a-z A-Z 0-9 /-?:().,'+", True), ("", True), ("Jörg", False),
     ("a&b", False), ("a_b", False), ("tab\there", False), ("line\nbreak", False), ('"', False)],
)  # fmt: skip
def test_is_epc(text: str, expected: bool) -> None:
    assert is_epc(text) is expected


@given(st.text(), st.one_of(st.none(), st.integers(min_value=0, max_value=200)))
def test_to_epc_output_is_always_epc_and_within_max_len(text: str, max_len: int | None) -> None:
    out = to_epc(text, max_len)
    assert is_epc(out)
    assert max_len is None or len(out) <= max_len
    assert out == out.strip() and "  " not in out


@given(st.text())
def test_to_epc_is_idempotent(text: str) -> None:
    once = to_epc(text)
    assert to_epc(once) == once


@given(st.characters(min_codepoint=0x41, max_codepoint=0x24F, categories=["Lu", "Ll"]))
def test_no_latin_letter_is_dropped(letter: str) -> None:
    """Transliterate, never drop: every Latin letter (Latin-1 and Extended-A/B) gives at least one character."""
    assert to_epc(letter) != "", f"{letter!r} ({unicodedata.name(letter, '?')}) was dropped"
