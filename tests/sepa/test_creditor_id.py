"""SEPA creditor identifiers."""

from __future__ import annotations

import pytest

from sepa.creditor_id import creditor_id_problem, normalise_creditor_id


@pytest.mark.parametrize(
    "cid",
    [
        "DE98ZZZ09999999999",
        "de98 zzz0 9999 9999 99",
        " DE98ZZZ09999999999\n",
        "ES23ZZZ47690558N",
        "NL42ZZZ123456780001",
    ],
)
def test_valid_creditor_ids(cid: str) -> None:
    assert creditor_id_problem(cid) is None


@pytest.mark.parametrize(
    "cid",
    ["DE97ZZZ09999999999", "DE98ZZZ09999999998", "DE98ZZZ09999999989"],
    ids=["check-digits", "last-digit", "swapped-digits"],
)
def test_wrong_check_digits(cid: str) -> None:
    problem = creditor_id_problem(cid)
    assert problem is not None and "check digits" in problem


@pytest.mark.parametrize("cid", ["", "   ", "DE98", "XYZ", "9898ZZZ09999999999", "DE98ZZZ0999-9999999", "DE98ZZZ"])
def test_garbage_is_a_problem_not_an_exception(cid: str) -> None:
    assert creditor_id_problem(cid) is not None


def test_normalise_creditor_id() -> None:
    assert normalise_creditor_id("de98 zzz0 9999 9999 99") == "DE98ZZZ09999999999"
