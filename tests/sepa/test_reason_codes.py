"""The return/reject reason catalogue: every code SEPA returns use is there, with the right action."""

from __future__ import annotations

import pytest

from sepa.reason_codes import CATALOGUE, Action, ReasonCode, reason

REQUIRED = [
    "AC01", "AC03", "AC04", "AC06", "AC13", "AG01", "AG02", "AM04", "AM05", "BE01", "BE05", "CNOR", "DNOR", "FF01",
    "MD01", "MD02", "MD06", "MD07", "MS02", "MS03", "RC01", "RR01", "RR02", "RR03", "RR04", "SL01", "FOCR", "DUPL",
    "TECH", "FRAD", "CUST", "NARR", "DU01", "UPAY", "ED05",
]  # fmt: skip
EXPECTED_ACTIONS = {
    Action.ASK_NEW_IBAN: ["AC01", "AC04", "AC06", "BE01"],
    Action.RETRY: ["AM04"],
    Action.ESCALATE: ["MD01", "MD06", "MS02"],
    Action.MANUAL: ["MD07", "FRAD"],
    Action.CAUTIOUS: ["MS03", "NARR"],
}


@pytest.mark.parametrize("code", REQUIRED)
def test_every_required_code_is_catalogued(code: str) -> None:
    entry = reason(code)
    assert isinstance(entry, ReasonCode), code
    assert entry.code == code
    assert entry.meaning and entry.name
    assert entry.schemes and entry.schemes <= {"SCT", "SDD"}
    assert isinstance(entry.action, Action)


@pytest.mark.parametrize(("action", "codes"), list(EXPECTED_ACTIONS.items()))
def test_actions(action: Action, codes: list[str]) -> None:
    assert {c: reason(c).action for c in codes} == dict.fromkeys(codes, action)


def test_direct_debit_only_codes_name_sdd() -> None:
    for code in ("MD01", "MD06", "AM04"):
        assert "SDD" in reason(code).schemes
    assert reason("MD01").schemes == {"SDD"}
    assert "SCT" in reason("AC01").schemes and "SDD" in reason("AC01").schemes


def test_ms03_says_what_it_hides() -> None:
    note = reason("MS03").note
    assert "AM04" in note and "MD07" in note


@pytest.mark.parametrize("code", ["XX99", "ZZZZ", "AC99", "", None, "AC0", "AC011"])
def test_unknown_codes_give_none(code: str | None) -> None:
    assert reason(code) is None


def test_lookup_is_tolerant_of_case_and_blanks() -> None:
    assert reason(" ac01\n") is reason("AC01")


def test_catalogue_keys_match_codes() -> None:
    assert all(key == entry.code and len(key) == 4 for key, entry in CATALOGUE.items())
    assert {a.value for a in Action} == {"ask_new_iban", "retry", "escalate", "manual", "cautious"}
