"""Shop exports nobody should send: wrong encodings, formulas for names, absurd amounts, unknown merchants,
IBANs written carelessly or wrongly. A file that cannot be read is refused whole naming the file, line and
problem; a bad row is rejected with file, line, column and problem while the good rows load; a name that
looks like a spreadsheet formula is data, and stays text in the weekly Excel report; an IBAN is normalised,
and an invalid one is handled as the README says, shown masked.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from lxml import etree

from ledger.intake import list_rejects, record_refused_file
from ledger.intake_files import IntakeFileError, file_sha256, read_shop_file
from pipelines.definitions import build_definitions
from pipelines.jobs import nightly_run_config, weekly_run_config
from pipelines.settings import Home
from sepa.iban import mask_iban
from tests.conftest import write_csv
from tests.ledger.shop import (
    HEADERS,
    IBAN_BAD_CHECK,
    IBAN_CARRIER,
    IBAN_CUSTOMER,
    IBAN_CUSTOMER_2,
    IBAN_MERCHANT,
    Shop,
    integrated,
    merchant,
    order,
    payment,
    postings_snapshot,
    record,
    refund,
    table_counts,
)
from tests.reliability.figures import tally

# Names as an attacker writes them: each would be a formula if a spreadsheet took it at its word.
FORMULAS = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://x.io","y")',
    "+1+1",
    "-2-3",
    "@SUM(A1:A9)",
    "=1+1",
]


def spaced(iban: str, lower: bool = False) -> str:
    """An IBAN as people type it: in groups of four, perhaps in lower case."""
    text = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return text.lower() if lower else text


# --- encodings: the whole file refused ---------------------------------------------------------------------------

ORDERS_TEXT = ",".join(HEADERS["orders"]) + (
    "\nO1,M1,Anna Kunde,,,100,100,2024-05-01,1,0,true\nO2,M1,“Jo” Müller,,,100,100,2024-05-01,1,0,true\n"
)


@pytest.mark.parametrize(
    ("encoding", "problem"),
    [
        ("utf-16", "line 1: UTF-16 (byte order mark 0xfffe), not UTF-8"),
        ("utf-16-le", "line 1: a NUL byte (0x00), so not UTF-8 text (UTF-16?)"),
        ("utf-16-be", "line 1: a NUL byte (0x00), so not UTF-8 text (UTF-16?)"),
        ("utf-32", "line 1: UTF-32 (byte order mark 0xfffe0000), not UTF-8"),
        ("cp1252", "line 3: not UTF-8 (byte 0x93)"),  # the opening quote before Jo
        ("latin-1", "line 3: not UTF-8 (byte 0xfc)"),  # ü (the quotes written as apostrophes)
    ],
)
def test_a_file_not_in_utf8_is_refused_whole_naming_file_line_and_byte(shop: Shop, encoding: str, problem: str) -> None:
    """UTF-16 with or without its byte order mark, UTF-32, Windows-1252, Latin-1: refused whole with a message
    naming the file, the line and what is wrong, and asking for UTF-8; nothing of it is recorded, and the
    refusal is listed with the rejects."""
    text = ORDERS_TEXT if encoding != "latin-1" else ORDERS_TEXT.replace("“", "'").replace("”", "'")
    path = shop.folder / "orders_week20.csv"
    shop.folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    before = table_counts(shop.con)

    with pytest.raises(IntakeFileError) as caught:
        read_shop_file(path)
    message = str(caught.value)
    assert message == f"orders_week20.csv: {problem}; export the file as UTF-8"
    record_refused_file(shop.con, path.name, file_sha256(path), message)
    counts = table_counts(shop.con)
    assert counts == {**before, "rejects": before["rejects"] + 1}
    refused = list_rejects(shop.con).row(0, named=True)
    assert (refused["file_name"], refused["line"], refused["severity"], refused["problem"]) == (
        "orders_week20.csv", 0, "file", message)  # fmt: skip
    tally("hostile shop rows refused")


def test_utf8_with_a_byte_order_mark_is_accepted(shop: Shop) -> None:
    """Excel's "CSV UTF-8" starts with a byte order mark: the file loads, names intact."""
    shop.load("merchants", [merchant("M1")])
    path = shop.folder / "orders_bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ORDERS_TEXT.encode("utf-8"))
    result = record(shop.con, path)
    assert (result.rows_loaded, result.rows_rejected) == (2, 0)
    names = shop.con.execute("SELECT customer_name FROM orders ORDER BY order_id").fetchall()
    assert names == [("Anna Kunde",), ("“Jo” Müller",)]


# --- formulas for names: data, and text in the report ------------------------------------------------------------


def test_names_that_look_like_formulas_are_recorded_as_written(shop: Shop) -> None:
    """Merchant names, customer names, payer names and refund references starting with =, +, - or @ are
    accepted exactly as written (they are data, not instructions)."""
    shop.load("merchants", [merchant(f"M{i}", name=name) for i, name in enumerate(FORMULAS, start=1)])
    shop.load("orders", [order(f"O{i}", customer_name=name) for i, name in enumerate(FORMULAS, start=1)])
    shop.load("payments", [payment(f"P{i}", payer_name=name) for i, name in enumerate(FORMULAS, start=1)])
    result = shop.load("refunds", [refund(name, 100, f"O{i}") for i, name in enumerate(FORMULAS, start=1)])
    assert shop.rejects().is_empty() and result.rows_loaded == len(FORMULAS)

    def column(sql: str) -> list[str]:
        return [row[0] for row in shop.con.execute(sql).fetchall()]

    assert column("SELECT name FROM merchants ORDER BY merchant_id") == FORMULAS
    assert column("SELECT customer_name FROM orders ORDER BY order_id") == FORMULAS
    assert column("SELECT payer_name FROM payments ORDER BY payment_id") == FORMULAS
    assert sorted(column("SELECT refund_ref FROM refunds")) == sorted(FORMULAS)


def workbook_cells(path: Path) -> list[tuple[str, str, str | None, str, bool]]:
    """Every cell of every worksheet of an .xlsx: (sheet part, reference, type, text, has a formula).

    Read from the workbook's XML (openpyxl is not a dependency of this project): a formula is an `<f>`
    element in its cell, a shared string (`t="s"`) is looked up in `xl/sharedStrings.xml`."""
    ns = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as book:
        names = book.namelist()
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            root = etree.fromstring(book.read("xl/sharedStrings.xml"))
            shared = ["".join(si.itertext()) for si in root.iterfind("x:si", ns)]
        cells = []
        for part in sorted(n for n in names if n.startswith("xl/worksheets/sheet")):
            root = etree.fromstring(book.read(part))
            for cell in root.iterfind(".//x:sheetData/x:row/x:c", ns):
                kind = cell.get("t")
                value = cell.find("x:v", ns)
                if kind == "s" and value is not None:
                    text = shared[int(value.text or "0")]
                elif kind == "inlineStr":
                    text = "".join(cell.find("x:is", ns).itertext())  # type: ignore[union-attr]
                else:
                    text = value.text or "" if value is not None else ""
                cells.append((part, cell.get("r") or "", kind, text, cell.find("x:f", ns) is not None))
    return cells


def test_formulas_in_names_stay_text_in_the_weekly_report(home: Home) -> None:
    """A week's export whose merchant and customer names and refund references are formulas goes through the
    nightly and weekly runs and the weekly reconciliation report: no cell of the workbook is a formula, and
    every such name is in it as the text the shop wrote."""
    week = "2024-05-20"
    shop = home.shop_inbox
    write_csv(shop, "merchants.csv", [
        merchant("M1", name=FORMULAS[1]),  # own account: its collection is in the week's collections sheet
        integrated("M2", balance_cents=100_000, name=FORMULAS[4]),
    ])  # fmt: skip
    # M2's customers: paid from its balance in the week's payout file (their names in the payouts sheet).
    write_csv(shop, "orders.csv", [
        order(f"O{i}", "M2", customer_name=name, customer_iban=IBAN_CUSTOMER) for i, name in enumerate(FORMULAS)
    ] + [order("O9", "M1", customer_name=FORMULAS[0], customer_iban=IBAN_CUSTOMER_2)])  # fmt: skip
    write_csv(shop, "refunds.csv", [
        refund(ref, 1000 + i, f"O{i}", merchant_id="M2", requested_on="2024-05-08")
        for i, ref in enumerate(["=1+2", "+R2", "-R3", "@R4", "=R5", "=R6"])
    ] + [refund("=R9", 2000, "O9", requested_on="2024-05-08")])  # fmt: skip
    defs = build_definitions(home)
    with dg.DagsterInstance.ephemeral(tempdir=str(home.dagster)) as instance:
        for job, config, partition in [
            ("nightly", nightly_run_config(week), None),
            ("weekly", weekly_run_config("main"), week),
            ("report", None, week),
        ]:
            result = defs.resolve_job_def(job).execute_in_process(
                run_config=config or {}, instance=instance, partition_key=partition
            )
            assert result.success, job

    cells = workbook_cells(home.reports / "reconciliation-2024-W21.xlsx")
    assert len(cells) > 20
    formulas = [cell for cell in cells if cell[4] or cell[2] == "str"]
    assert formulas == [], formulas
    written = {*FORMULAS, "=1+2", "+R2", "-R3", "@R4", "=R5", "=R6"}  # names (customers, merchants) and refs
    as_text = {text for _part, _ref, kind, text, _f in cells if kind in ("s", "inlineStr")}
    assert written <= as_text, f"not in the workbook as text: {sorted(written - as_text)}"
    assert not any(text in written for _part, _ref, kind, text, _f in cells if kind not in ("s", "inlineStr"))


# --- absurd amounts: the row rejected, the rest loaded -----------------------------------------------------------

ABSURD_AMOUNTS = [
    ("-500", "must be greater than 0"),
    ("0", "must be greater than 0"),
    ("1000000000000000", "must be at most 100000000"),  # 10^15 cents: ten trillion euros
    ("9223372036854775807", "must be at most 100000000"),  # the largest int64
    ("9223372036854775808", "not a whole number of cents"),  # one more than int64 holds
    ("99999999999999999999999", "not a whole number of cents"),
    ("12.50", "not a whole number of cents"),  # euros with cents, not cents
    ("1e5", "not a whole number of cents"),
    ("1E5", "not a whole number of cents"),
    ("12,50", "not a whole number of cents"),
    ("0x10", "not a whole number of cents"),
    ("NaN", "not a whole number of cents"),
    ("١٢٣", "not a whole number of cents"),  # Arabic-Indic digits
    ("=100*100", "not a whole number of cents"),
]


@pytest.mark.parametrize("kind", ["orders", "payments", "refunds"])
def test_absurd_amounts_reject_their_rows_naming_file_line_column_and_problem(shop: Shop, kind: str) -> None:
    """One file, a good row on line 2 and one absurd amount per line after it: each bad line is a reject with
    its file, line, column, value and problem; only the good row is recorded; nothing absurd is booked."""
    shop.load("merchants", [merchant("M1")])
    if kind == "refunds":
        shop.load("orders", [order("O1")])
    make = {
        "orders": lambda i, amount: order(f"O{i}", amount_cents=amount),
        "payments": lambda i, amount: payment(f"P{i}", amount_cents=amount),
        "refunds": lambda i, amount: refund(f"R{i}", amount),
    }[kind]
    rows = [make(0, 100)] + [make(i, amount) for i, (amount, _) in enumerate(ABSURD_AMOUNTS, start=1)]
    result = shop.load(kind, rows)

    assert (result.rows_total, result.rows_loaded, result.rows_rejected) == (len(rows), 1, len(ABSURD_AMOUNTS))
    expected = [
        (result.file_name, line, "amount_cents", amount, problem, "error")
        for line, (amount, problem) in enumerate(ABSURD_AMOUNTS, start=3)
    ]
    assert shop.rejects().rows() == expected
    assert shop.con.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0] == 1  # type: ignore[index]
    if kind == "refunds":
        assert shop.con.execute("SELECT SUM(amount_cents) FROM postings WHERE amount_cents > 0").fetchone()[0] == 100
    tally("hostile shop rows refused", result.rows_rejected)


def test_an_empty_amount_and_a_negative_balance_are_rejected(shop: Shop) -> None:
    """An amount left empty is required; an integrated merchant's balance cannot be negative or absurd."""
    result = shop.load("merchants", [
        merchant("M1"), integrated("M2", balance_cents=-1), integrated("M3", balance_cents=10**15),
    ])  # fmt: skip
    refunds = shop.load("refunds", [refund("R1", None)])  # type: ignore[arg-type]
    assert (result.rows_loaded, result.rows_rejected, refunds.rows_rejected) == (1, 2, 1)
    assert shop.rejects().select("line", "column_name", "problem").rows() == [
        (3, "balance_cents", "must be at least 0"),
        (4, "balance_cents", "must be at most 10000000000"),
        (2, "amount_cents", "is empty but required"),
    ]
    assert postings_snapshot(shop.con) == []  # no balance was booked from the rejected rows
    tally("hostile shop rows refused", 3)


# --- unknown merchants --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["orders", "payments", "refunds"])
def test_rows_of_unknown_merchants_are_rejected_and_the_others_load(shop: Shop, kind: str) -> None:
    """A merchant never loaded, one whose id differs only in case, and one whose id is not SEPA-safe: each row
    is rejected naming the merchant; the known merchant's row loads."""
    shop.load("merchants", [merchant("M1")])
    if kind == "refunds":
        shop.load("orders", [order("O1")])
    make = {
        "orders": lambda i, m: order(f"O{i + 2}", merchant_id=m),
        "payments": lambda i, m: payment(f"P{i}", merchant_id=m),
        "refunds": lambda i, m: refund(f"R{i}", 100, merchant_id=m),
    }[kind]
    result = shop.load(kind, [make(i, m) for i, m in enumerate(["M1", "NOBODY", "m1", "=M1"])])

    assert (result.rows_loaded, result.rows_rejected) == (1, 3)
    assert shop.rejects().select("line", "column_name", "value", "problem").rows() == [
        (3, "merchant_id", "NOBODY", "unknown merchant NOBODY (load its merchants file first)"),
        (4, "merchant_id", "m1", "unknown merchant m1 (load its merchants file first)"),
        (5, "merchant_id", "=M1", "contains characters outside the SEPA set or is longer than 35"),
    ]
    tally("hostile shop rows refused", result.rows_rejected)


# --- IBANs -----------------------------------------------------------------------------------------------------------


def test_ibans_with_spaces_and_lower_case_are_normalised_everywhere(shop: Shop) -> None:
    """Merchant, customer, payer and excluded IBANs typed in groups and in lower case are stored compact and
    upper case, accepted without a reject, and a refund to such a customer is scheduled."""
    shop.load("merchants", [merchant("M1", iban=spaced(IBAN_MERCHANT, lower=True))])
    shop.load("excluded_ibans", [{"iban": spaced(IBAN_CARRIER, lower=True), "owner": "Parcel Co", "kind": "carrier"}])
    shop.load("orders", [order("O1", customer_iban=spaced(IBAN_CUSTOMER, lower=True))])
    shop.load("payments", [payment("P1", payer_iban="  " + spaced(IBAN_CUSTOMER_2) + " ")])
    shop.load("refunds", [refund("R1", 100), refund("R2", 100, None, payment_id="P1")])

    assert shop.rejects().is_empty()
    stored = shop.con.execute(
        "SELECT (SELECT iban FROM merchants), (SELECT iban FROM excluded_ibans), (SELECT customer_iban FROM orders), "
        "(SELECT payer_iban FROM payments)"
    ).fetchone()
    assert stored == (IBAN_MERCHANT, IBAN_CARRIER, IBAN_CUSTOMER, IBAN_CUSTOMER_2)
    assert [(shop.refund(r)["status"], shop.refund(r)["customer_iban"]) for r in ("R1", "R2")] == [
        ("scheduled", IBAN_CUSTOMER),
        ("scheduled", IBAN_CUSTOMER_2),
    ]


def _said_anywhere(shop: Shop) -> str:
    """Every problem, reason and notification text the ledger keeps for people."""
    parts = [
        *shop.rejects()["problem"].to_list(),
        *[r[0] or "" for r in shop.con.execute("SELECT status_reason FROM refunds").fetchall()],
        *[r[0] or "" for r in shop.con.execute("SELECT iban_problem FROM refunds").fetchall()],
        *[r[0] or "" for r in shop.con.execute("SELECT reason FROM refund_events").fetchall()],
        *[r[0] for r in shop.con.execute("SELECT data FROM notifications").fetchall()],
    ]
    return "\n".join(parts)


def test_a_merchant_with_an_invalid_iban_is_recorded_with_a_masked_warning(shop: Shop) -> None:
    """README: the merchant is recorded (its refunds are real) and the IBAN reported as a warning; the
    message shows the IBAN masked, never whole."""
    bad = "DE89370400440532013001"  # the merchant IBAN with its last digit changed
    result = shop.load("merchants", [merchant("M1", iban=spaced(bad, lower=True))])
    assert (result.rows_loaded, result.rows_rejected) == (1, 0)
    row = shop.rejects().row(0, named=True)
    assert (row["line"], row["column_name"], row["severity"]) == (2, "iban", "warning")
    assert row["problem"] == (
        f"invalid IBAN {mask_iban(bad)}: check digits do not match; merchant recorded, but nothing can be "
        "collected until the IBAN is corrected"
    )
    assert bad not in _said_anywhere(shop)


@pytest.mark.parametrize(
    ("iban", "problem"),
    [
        (IBAN_BAD_CHECK, "check digits do not match"),
        ("XX00 1234 5678 9012 34", "unknown country code"),
        ("DE89 3704 0044 0532 0130", "wrong length for its country"),
    ],
)
def test_a_customer_with_an_invalid_iban_waits_for_bank_details(shop: Shop, iban: str, problem: str) -> None:
    """README: a refund to a customer without a usable IBAN waits for the customer's bank details (and the
    customer is asked); the reason names the problem with the IBAN masked, never whole. So does a refund
    against an unmatched payment whose payer IBAN is invalid."""
    shop.load("merchants", [merchant("M1")])
    shop.load("orders", [order("O1", customer_iban=iban)])
    shop.load("payments", [payment("P1", payer_iban=iban)])
    result = shop.load("refunds", [refund("R1", 100), refund("R2", 100, None, payment_id="P1")])

    assert result.statuses == {"awaiting_bank_details": 2}
    reason = f"invalid IBAN {mask_iban(iban)}: {problem}"
    for ref in ("R1", "R2"):
        recorded = shop.refund(ref)
        assert (recorded["status"], recorded["status_reason"], recorded["iban_problem"]) == (
            "awaiting_bank_details", reason, reason)  # fmt: skip
        assert shop.notifications(ref) == ["bank_details_needed"]
    compact = re.sub(r"\s", "", iban).upper()
    assert compact not in _said_anywhere(shop)


def test_an_invalid_excluded_iban_is_refused_masked(shop: Shop) -> None:
    """An excluded account must be a real IBAN: an invalid one is rejected (the good one beside it loads)."""
    bad = "AT611904300234573209"
    result = shop.load("excluded_ibans", [
        {"iban": spaced(bad), "owner": "Parcel Co", "kind": "carrier"},
        {"iban": IBAN_CARRIER, "owner": "Parcel Co", "kind": "carrier"},
    ])  # fmt: skip
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert shop.rejects().select("line", "column_name", "problem", "severity").rows() == [
        (2, "iban", f"invalid IBAN {mask_iban(bad)}: check digits do not match", "error")
    ]
    assert bad not in _said_anywhere(shop)
    tally("hostile shop rows refused", result.rows_rejected)


# --- duplicates --------------------------------------------------------------------------------------------------


def test_the_same_refund_again_is_refused_and_paid_once(shop: Shop) -> None:
    """The same refund_ref of the same merchant in a later file, and the very same file again: the first is
    reported as a duplicate, the second changes nothing; the customer is owed the money once."""
    shop.load("merchants", [merchant("M1")])
    shop.load("orders", [order("O1")])
    first = shop.write("refunds", [refund("R1", 1000)])
    record(shop.con, first)
    money = postings_snapshot(shop.con)

    later = shop.load("refunds", [refund("R1", 1000, requested_on="2024-05-11")])
    assert (later.rows_loaded, later.rows_rejected) == (0, 1)
    assert shop.rejects()["severity"].to_list() == ["duplicate"]
    again = record(shop.con, first)
    assert again.already_loaded and (again.rows_loaded, again.rows_rejected) == (0, 0)
    assert postings_snapshot(shop.con) == money and shop.refund_count() == 1
    payable = shop.con.execute("SELECT SUM(amount_cents) FROM postings WHERE account = 'customers:payable'").fetchone()
    assert payable == (-1000,)
    tally("duplicates refused", 2)


def test_reject_values_keep_what_the_shop_wrote(shop: Shop) -> None:
    """A reject shows the cell as written (trimmed), so the shop can find and fix it."""
    shop.load("merchants", [merchant("M1")])
    shop.load("orders", [order("O1", amount_cents="  12.50  ")])
    assert pl.DataFrame(shop.rejects()).select("value", "problem").rows() == [("12.50", "not a whole number of cents")]
