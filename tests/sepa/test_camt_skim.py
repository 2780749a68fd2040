"""Entries read from their text (`sepa.camt_skim`) read exactly what libxml2's parse of them reads.

Every test compares a file read with the skimmer against the same file read without it: rows, statements,
notes, and errors word for word (their line numbers included). Each also checks that entries were in fact
read from their text, or, where the text must be left to libxml2, that the file still reads the same.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sepa.camt as camt
import sepa.camt_skim as camt_skim
from sepa.bank_files import BankFile, BankFileError, read_bank_file
from sepa.bank_messages import write_camt053, write_camt054
from tests.sepa.test_bank_file_fuzz import ANY_EDIT, SPLICE, mutate, splice
from tests.sepa.test_camt_fast_paths import PLAIN, _entries
from tests.sepa.test_camt_reader import camt_document

OWN_IBAN = "DE89370400440532013000"


def _camt054(tmp_path: Path, n: int = 56) -> bytes:
    path = tmp_path / "ntf.xml"
    write_camt054(path, msg_id="MSG-1", created_at=datetime(2024, 5, 22, 10), account_iban=OWN_IBAN,
                  entries=_entries(n))  # fmt: skip
    return path.read_bytes()


def _camt053(tmp_path: Path, n: int = 56) -> bytes:
    path = tmp_path / "stmt.xml"
    write_camt053(path, msg_id="MSG-1", created_at=datetime(2024, 5, 22, 10), statement_id="STMT-1",
                  account_iban=OWN_IBAN, opening_balance_cents=10**9, entries=_entries(n),
                  booking_date=date(2024, 5, 21))  # fmt: skip
    return path.read_bytes()


@pytest.fixture(autouse=True)
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read a few entries at a time, so that small documents are skimmed too and entries
    straddle the reads."""
    monkeypatch.setattr(camt_skim, "_READ", 4096)


@pytest.fixture
def skimmed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many entries each reading took from their text."""
    counted: list[int] = []
    original = camt_skim.Skimmer.take

    def spy(self: camt_skim.Skimmer, element: object) -> object:
        found = original(self, element)  # type: ignore[arg-type]
        if found is not None:
            counted.append(len(found))
        return found

    monkeypatch.setattr(camt_skim.Skimmer, "take", spy)
    return counted


def _outcome(data: bytes, *, skim: bool = True) -> tuple[object, ...]:
    previous, camt.SKIM_ENTRIES = camt.SKIM_ENTRIES, skim
    try:
        bank_file: BankFile = read_bank_file(data)
    except BankFileError as exc:
        return ("error", str(exc))
    finally:
        camt.SKIM_ENTRIES = previous
    rows = bank_file.rows
    return ("ok", bank_file.message_type, bank_file.message_id, bank_file.account_iban, bank_file.statements,
            bank_file.notes, rows.schema, rows.to_dict(as_series=False))  # fmt: skip


def _same(data: bytes) -> tuple[object, ...]:
    outcome = _outcome(data)
    assert outcome == _outcome(data, skim=False)
    return outcome


@pytest.mark.parametrize("make", [_camt054, _camt053], ids=["camt.054", "camt.053"])
@pytest.mark.parametrize("reads", [4096, 64 * 1024])
def test_indented_entries_are_read_from_their_text(
    tmp_path: Path, make, reads: int, skimmed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(camt_skim, "_READ", reads)
    data = make(tmp_path, n=300)
    outcome = _same(data)
    assert outcome[0] == "ok"
    # All but those read before the first entry was parsed and its structure known: the parser asks for
    # 32 KiB at a time.
    known = data.index(b"</Ntry>") + 2 * 32 * 1024 + reads
    assert sum(skimmed) >= data.count(b"<Ntry>", known) > 10, "entries should have been read from their text"


def test_awkward_entries_read_as_parsed(skimmed: list[int]) -> None:
    # Each structure met twice: the second time it is known, and read from its text when plain.
    outcome = _same(camt_document(PLAIN * 8))
    assert outcome[0] == "ok"
    assert sum(skimmed) > 2 * len(PLAIN)


def _in_entry_at(data: bytes, nth: int) -> int:
    start = 0
    for _ in range(nth):
        start = data.index(b"<Ntry>", start + 1)
    return start


def _in_entry(data: bytes, old: bytes, new: bytes, nth: int = 40) -> bytes:
    """`old` replaced by `new` in the `nth` entry (well after the first, whose structure is then known)."""
    at = data.index(old, _in_entry_at(data, nth))
    return data[:at] + new + data[at + len(old) :]


_NAME = "Kunde 39 Müller".encode()
EDITS = {
    "an entity": (_NAME, b"Kunde &amp; Co"),
    "a character reference": (_NAME, b"Kunde &#252;"),
    "CDATA": (_NAME, b"<![CDATA[Kunde <39>]]>"),
    "a comment": (b"<RmtInf>", b"<RmtInf><!-- note -->"),
    "a processing instruction": (b"<RmtInf>", b"<RmtInf><?note x?>"),
    "a control character": (_NAME, b"Kunde \x01"),
    "a byte that is not UTF-8": (_NAME, b"Kunde \xff"),
    "a carriage return": (_NAME, b"Kunde\r\n39"),
    "]]> in a text": (_NAME, b"Kunde ]]> 39"),
    "> in a text": (_NAME, b"Kunde > 39"),
    "a bracket in a text": (_NAME, b"Kunde [39]"),
    "U+FFFE": (_NAME, "Kunde \ufffe".encode()),
    "a private-use character": (_NAME, "Kunde \uf000".encode()),
    "single quotes": (b'Ccy="EUR"', b"Ccy='EUR'"),
    "a newline in an attribute": (b'Ccy="EUR"', b'Ccy="EU\nR"'),
    "a tab in an attribute": (b'Ccy="EUR"', b'Ccy="EUR\t"'),
    "< in an attribute": (b'Ccy="EUR"', b'Ccy="E<R"'),
    "an unknown currency": (b'Ccy="EUR"', b'Ccy="EURO"'),
    "an amount not plain": (b"</Amt>", b" </Amt>"),
    "an attribute on Ntry": (b"<Ntry>", b'<Ntry id="x">'),
    "a marker of our own": (b"<Ntry>", b'<Ntry skim0123456789abcdef="0"/><Ntry>'),
    "a space in a tag": (b"</Amt>", b"</Amt >"),
    "an element too many": (b"</RmtInf>", b"</RmtInf><Oops/>"),
    "not well-formed": (b"</RmtInf>", b"</RmtInf><Oops>"),
    "an end tag missing": (b"</Ustrd>", b""),
    "a nested entry": (b"<RmtInf>", b"<RmtInf><Ntry></Ntry>"),
    "a long remittance": (b"Erstattung", b"Erstattung " + b"x" * 70_000),
    "an empty element": (b"<Ustrd>Erstattung 39</Ustrd>", b"<Ustrd/>"),
    "blank text": (b"<Ustrd>Erstattung 39</Ustrd>", b"<Ustrd>  \n  </Ustrd>"),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_what_libxml2_would_read_differently_is_left_to_it(
    tmp_path: Path, edit: tuple[bytes, bytes], skimmed: list[int]
) -> None:
    data = _in_entry(_camt054(tmp_path), *edit)
    _same(data)
    assert sum(skimmed) > 0


def test_an_error_after_entries_read_from_text_names_the_same_line(tmp_path: Path, skimmed: list[int]) -> None:
    data = _in_entry(_camt054(tmp_path), b"</RmtInf>", b"</RmtInf><Oops>", nth=52)
    outcome = _same(data)
    assert outcome[0] == "error" and "line" in str(outcome[1])
    assert sum(skimmed) > 0


def test_a_row_problem_names_the_line_of_its_entry(tmp_path: Path, skimmed: list[int]) -> None:
    data = _camt054(tmp_path)
    details = data.index(b"<TxDtls>", _in_entry_at(data, 50))
    at = data.index(b'Ccy="EUR"', details)  # the transaction's amount, the one its row reads
    data = data[:at] + b'Ccy="EURO"' + data[at + len(b'Ccy="EUR"') :]
    outcome = _same(data)
    rows = pl.DataFrame(outcome[7])
    problems = rows["row_problem"].drop_nulls().to_list()
    line = data[: data.index(b"EURO")].count(b"\n") + 1
    assert problems == [f"line {line}: Amt currency 'EURO' is not an ISO currency code"]
    assert sum(skimmed) > 0


@pytest.mark.parametrize(
    "change",
    [
        lambda data: data.replace(b"\n", b"\r\n"),  # line ends normalised by the parser: left to it
        lambda data: data.replace(b"<Ntfctn>", b"<!-- a comment --><Ntfctn>", 1),  # the scan stops for good
        lambda data: data.replace(b"UTF-8", b"ISO-8859-1", 1).replace("ü".encode(), "ü".encode("latin-1")),
        lambda data: b"\xef\xbb\xbf" + data,  # a byte-order mark
        lambda data: data[: -len(b"</Document>\n") - 200],  # cut short
    ],
    ids=["crlf", "comment-first", "latin-1", "bom", "truncated"],
)
def test_whole_documents_read_as_parsed(tmp_path: Path, change) -> None:
    _same(change(_camt054(tmp_path)))


def test_a_comment_between_entries_stops_the_reading_from_text(tmp_path: Path, skimmed: list[int]) -> None:
    # A comment opened between two entries and closed in the text of a later one: libxml2 reads the entries
    # between as a comment, so must the reading from text (which sees only the bytes handed on).
    data = _camt054(tmp_path, n=300)
    third_last = data.rindex(b"<Ntry>", 0, data.rindex(b"<Ntry>", 0, data.rindex(b"<Ntry>")))
    closing = data.index(b"</Ustrd>", data.rindex(b"<Ntry>"))
    data = data[:third_last] + b"<!-- " + data[third_last:closing] + b" -->" + data[closing:]
    outcome = _same(data)
    assert outcome[0] != "ok"  # the last entry's end tags without their start: not well-formed
    assert sum(skimmed) > 100  # the entries before the comment were read from their text


def test_the_document_mutated_is_read_from_its_text(skimmed: list[int]) -> None:
    assert _same(_DOCUMENT)[0] == "ok"
    assert sum(skimmed) > 10


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ANY_EDIT, max_size=4), st.lists(SPLICE, max_size=2))
def test_mutated_documents_read_as_parsed(
    edits: list[tuple[str, int, int]], moves: list[tuple[str, int, int, int]]
) -> None:
    _same(mutate(splice(_DOCUMENT, moves), edits))


def _document() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return _camt054(Path(folder), n=40)


_DOCUMENT = _document()


def test_entries_parsed_after_all_are_few(tmp_path: Path, skimmed: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    # Every amount valid but not plain (` 7.25`): each entry read from its text is parsed after all, and
    # after a few the rest of the file is left to libxml2 (the reading runs a few hundred entries ahead).
    monkeypatch.setattr(camt, "KEPT_ENTRIES", 64)
    data = _camt054(tmp_path, n=1000).replace(b"</Amt>", b" </Amt>")
    outcome = _same(data)
    assert outcome[0] == "ok" and len(outcome[7]["entry_ref"]) == 1000
    assert 0 < sum(skimmed) < 600, "the rest should have gone to libxml2"
