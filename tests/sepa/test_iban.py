"""IBAN normalisation, validation, masking and the column check intake uses."""

from __future__ import annotations

import re

import polars as pl
import pytest

from sepa.iban import check_iban_column, find_ibans, iban_problem, mask_iban, normalise_iban

# The wording may change; what it must be about may not.
CHECK_DIGITS = r"check ?sum|check digits"

VALID = [
    "DE89370400440532013000",
    "DE02120300000000202051",
    "FR7630006000011234567890189",
    "NL91ABNA0417164300",
    "AT611904300234573201",
    "GB33BUKB20201555555555",
]


@pytest.mark.parametrize(
    ("text", "compact"),
    [
        ("de89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("  NL91 ABNA 0417 1643 00\n", "NL91ABNA0417164300"),
        ("fr76\t3000 6000 0112 3456 7890 189", "FR7630006000011234567890189"),
        ("DE89370400440532013000", "DE89370400440532013000"),
        ("", ""),
    ],
)
def test_normalise_iban_drops_whitespace_and_upper_cases(text: str, compact: str) -> None:
    assert normalise_iban(text) == compact


@pytest.mark.parametrize("iban", VALID)
def test_valid_ibans_have_no_problem(iban: str) -> None:
    """Valid IBANs of several countries, GB included (a valid IBAN, even if not in the euro area)."""
    assert iban_problem(iban) is None


def test_printed_form_of_a_valid_iban_has_no_problem() -> None:
    """Spaces and lower case are not a problem: the IBAN is normalised before the check."""
    assert iban_problem("de89 3704 0044 0532 0130 00") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("DE89370400440532013001", CHECK_DIGITS),  # last digit changed
        ("DE88370400440532013000", CHECK_DIGITS),  # check digits changed
        ("DE8937040044053201300", "length"),  # one digit short
        ("DE893704004405320130000", "length"),  # one digit long
        ("XX89370400440532013000", "country"),  # no such country
    ],
    ids=["bad-account-digit", "bad-check-digits", "too-short", "too-long", "unknown-country"],
)
def test_invalid_ibans_are_explained(text: str, words: str) -> None:
    """The problem says what is wrong and shows the IBAN only masked."""
    problem = iban_problem(text)
    assert problem is not None
    assert problem.startswith(f"invalid IBAN {mask_iban(text)}: ")
    assert re.search(words, problem, re.IGNORECASE)
    assert text[4:-4] not in problem  # the middle of the account number never appears


@pytest.mark.parametrize(
    "text",
    [
        "DE89-3704-0044-0532-0130-00",  # dashes: invalid characters
        "DE89370400440532013O00",  # letter O for a zero: wrong national structure
        "DE89 3704 0044 0532 0130 00.",  # a trailing full stop
    ],
)
def test_problem_never_shows_the_whole_account_number(text: str) -> None:
    """Problems end up in rejects, status reasons, notifications and logs: like mask_iban, they show the
    country, check digits and last four only, whatever the reason the IBAN is invalid."""
    problem = iban_problem(text)
    assert problem is not None
    assert "0532013" not in problem.replace("-", "").replace(" ", "")


@pytest.mark.parametrize("text", ["", "DE", "not an iban", "1234567890"])
def test_garbage_is_a_problem_not_an_exception(text: str) -> None:
    assert iban_problem(text) is not None


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("DE89370400440532013000", "DE89 **** 3000"),
        ("de89 3704 0044 0532 0130 00", "DE89 **** 3000"),
        ("NL91ABNA0417164300", "NL91 **** 4300"),
        ("DE89123", "****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_iban_shows_country_check_digits_and_last_four(text: str | None, masked: str) -> None:
    assert mask_iban(text) == masked


def test_check_iban_column_normalises_and_flags() -> None:
    """The column is normalised in place; `<column>_problem` is null for valid and empty IBANs only;
    row order and the other columns are kept."""
    frame = pl.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5"],
            "customer_iban": [
                "de89 3704 0044 0532 0130 00",
                None,
                "DE89370400440532013001",
                "DE89370400440532013000",
                "GB33 BUKB 2020 1555 5555 55",
            ],
        }
    )
    checked = check_iban_column(frame, "customer_iban")
    assert checked.columns == ["order_id", "customer_iban", "customer_iban_problem"]
    assert checked["order_id"].to_list() == ["O1", "O2", "O3", "O4", "O5"]
    assert checked["customer_iban"].to_list() == [
        "DE89370400440532013000",
        None,
        "DE89370400440532013001",
        "DE89370400440532013000",
        "GB33BUKB20201555555555",
    ]
    problems = checked["customer_iban_problem"].to_list()
    assert problems[0] is None and problems[1] is None and problems[3] is None and problems[4] is None
    assert problems[2] is not None and "DE89 **** 3001" in problems[2]


def test_check_iban_column_on_an_empty_frame() -> None:
    """No rows: still the problem column, typed as text."""
    frame = pl.DataFrame({"iban": []}, schema={"iban": pl.String})
    checked = check_iban_column(frame, "iban")
    assert checked.schema == pl.Schema({"iban": pl.String, "iban_problem": pl.String})
    assert checked.is_empty()


def _found(text: str) -> list[str]:
    return [text[start:end] for start, end in find_ibans(text)]


@pytest.mark.parametrize(
    ("text", "ibans"),
    [
        ("refund R1 to DE89370400440532013000.", ["DE89370400440532013000"]),
        ("paid to DE89 3704 0044 0532 0130 00, thanks", ["DE89 3704 0044 0532 0130 00"]),
        ("a typo: DE89370400440532013001 (check digits)", ["DE89370400440532013001"]),  # invalid is still personal
        ("too short: DE8937040044053201300", ["DE8937040044053201300"]),
        ("x NO9386011117947 y", ["NO9386011117947"]),  # the shortest IBANs
        ("'FR7630006000011234567890189' is not accepted", ["FR7630006000011234567890189"]),
        ("| NL91ABNA0417164300 | GB33BUKB20201555555555 |", ["NL91ABNA0417164300", "GB33BUKB20201555555555"]),
        ("typed: de89 3704 0044 0532 0130 00", ["de89 3704 0044 0532 0130 00"]),
        ("typed: de89370400440532013000", ["de89370400440532013000"]),  # lower case, check digits hold
    ],
)
def test_find_ibans_finds_compact_grouped_valid_and_invalid(text: str, ibans: list[str]) -> None:
    assert _found(text) == ibans


@pytest.mark.parametrize(
    ("text", "iban"),
    [
        ("customer says sk94 1100 0000 0082 5195 1966 is closed", "sk94 1100 0000 0082 5195 1966"),
        ("AT61 1904 3002 3457 3201 2024", "AT61 1904 3002 3457 3201"),
    ],
)
def test_a_grouped_iban_ends_at_its_countrys_length(text: str, iban: str) -> None:
    """A short word or a year after a printed IBAN is not its last group."""
    assert _found(text) == [iban]


@pytest.mark.parametrize(
    "text",
    [
        "RF12ABCDEF0123456789AB",  # a refund id: RF is no IBAN country
        "CL34ABCDEF0123456789AB",  # a collection id
        "de12ab34cd56ef7890abcdef12",  # a lower-case hex id whose check digits do not hold
        "PO-2024-W21-0001 and DD-2024-W21-0001",  # MsgIds
        "DE89 **** 3000",  # already masked
        "DE89 is the prefix",
        "XDE89370400440532013000",  # inside a longer word
        "EUR 1234.56 on 2024-05-20",
    ],
)
def test_find_ibans_leaves_ids_and_prose_alone(text: str) -> None:
    assert find_ibans(text) == []
