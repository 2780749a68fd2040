"""A statement's balances: continuity checked when both can be read, and said when they cannot."""

from __future__ import annotations

import pytest

from sepa.bank_files import read_bank_file
from sepa.statement_checks import balance_gaps
from tests.sepa.test_camt_reader import balance, camt_document, entry

OPENING, CLOSING = balance("OPBD", "100.00", "CRDT"), balance("CLBD", "112.50", "CRDT")


def gaps(kind: str, balances: str) -> list[str]:
    return balance_gaps(read_bank_file(camt_document([entry()], kind=kind, balances=balances)))


def test_balances_that_add_up_are_no_gap() -> None:
    assert gaps("camt.053", OPENING + CLOSING) == []


def test_a_gap_is_described_in_cents() -> None:
    assert gaps("camt.053", OPENING + balance("CLBD", "112.51", "CRDT")) == [
        "statement S-1: opening balance 10000 cents plus booked entries 1250 gives 11250, but the closing balance "
        "is 11251"
    ]


@pytest.mark.parametrize("balances", [OPENING, CLOSING, ""], ids=["no closing", "no opening", "none"])
def test_a_statement_without_both_balances_says_continuity_was_not_checked(balances: str) -> None:
    assert gaps("camt.053", balances) == [
        "statement S-1: balance continuity not checked: its opening or closing balance is missing"
    ]


def test_an_unreadable_balance_is_named_with_its_line() -> None:
    (gap,) = gaps("camt.053", OPENING + balance("CLBD", "1.2.3", "CRDT"))
    assert gap.startswith("statement S-1: balance continuity not checked: line ") and "CLBD" in gap


@pytest.mark.parametrize("kind", ["camt.054", "camt.052"])
def test_notifications_and_reports_need_no_balances(kind: str) -> None:
    assert gaps(kind, "") == []
