"""Recording shop exports: duplicates are recorded once, a file loaded twice changes nothing, bad rows
become precise rejects (file, line, column, problem) while the good rows load, unreadable files are
refused with a clear message, and IBANs are normalised."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import accounts
from ledger.intake import _split_duplicates_in_file, list_rejects, record_refused_file, refund_id_for
from ledger.intake_files import LINE, IntakeFileError, discover, kind_of, read_shop_file
from ledger.postings import balance
from tests.ledger.shop import (
    HEADERS,
    IBAN_BAD_CHECK,
    IBAN_CUSTOMER,
    Shop,
    merchant,
    order,
    payment,
    postings_snapshot,
    record,
    refund,
    table_counts,
    write_rows,
)


def build_base(shop: Shop) -> None:
    """M1 and M3 (own account); order O1 of M1, order O3 of M3; unmatched payment P1 of M1."""
    shop.load("merchants", [merchant("M1"), merchant("M3")])
    shop.load("orders", [order("O1"), order("O3", merchant_id="M3")])
    shop.load("payments", [payment("P1")])


@pytest.fixture
def base(shop_from: Callable[[str, Callable[[Shop], None]], Shop]) -> Shop:
    """A private copy of the ledger build_base makes: no refunds, no rejects yet."""
    shop = shop_from("intake_base", build_base)
    assert shop.refund_count() == 0 and shop.rejects().is_empty()
    return shop


# --- duplicates ----------------------------------------------------------------------------------


def test_duplicate_ref_in_one_file_is_recorded_once(base: Shop) -> None:
    """(M1, R1) twice in one file: one refund, the second row (line 3) a 'duplicate' reject naming line 2."""
    result = base.load("refunds", [refund("R1", 1000), refund("R1", 1000)])

    assert base.refund_count() == 1
    assert (result.rows_total, result.rows_loaded, result.rows_rejected) == (2, 1, 1)
    rejects = base.rejects()
    assert rejects.select("line", "column_name", "value", "severity").rows() == [(3, "refund_ref", "R1", "duplicate")]
    assert "already appears on line 2" in rejects["problem"][0]
    assert balance(base.con, accounts.CUSTOMER_PAYABLE) == -1000  # paid once


def test_same_ref_of_two_merchants_is_two_refunds(base: Shop) -> None:
    """The reference is unique per merchant, not globally."""
    base.load("refunds", [refund("R1", 1000), refund("R1", 1000, "O3", merchant_id="M3")])
    assert base.refund_count() == 2
    assert base.rejects().is_empty()


def test_duplicate_ref_in_a_later_file_is_rejected_and_the_first_unchanged(base: Shop) -> None:
    """A second submission (even with another amount) is reported as a duplicate, not paid again."""
    base.load("refunds", [refund("R1", 1000)])
    first = base.refund("R1")
    money = postings_snapshot(base.con)

    result = base.load("refunds", [refund("R1", 2000, requested_on="2024-05-12"), refund("R2", 500)])

    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert base.refund("R1") == first
    dup = base.rejects().filter(pl.col("severity") == "duplicate").row(0, named=True)
    assert (dup["file_name"], dup["line"], dup["column_name"]) == ("refunds_102.csv", 2, "refund_ref")
    assert "already recorded from refunds_101.csv line 2 (now scheduled)" in dup["problem"]
    assert "not paid again" in dup["problem"]
    # Only R2 was booked.
    assert len(postings_snapshot(base.con)) == len(money) + 2
    assert balance(base.con, accounts.CUSTOMER_PAYABLE) == -1500


def test_valid_row_after_a_rejected_row_with_the_same_ref_is_recorded(base: Shop) -> None:
    """Line 2 names an unknown order and is rejected; line 3 is the corrected row with the same reference.
    Nothing was recorded from line 2, so line 3 is not a duplicate: R1 must be recorded from it (as it is
    when line 2 fails on a bad number instead)."""
    base.load("refunds", [refund("R1", 1000, "O9"), refund("R1", 1000, "O1")])
    assert base.refund("R1")["source_line"] == 3


def test_valid_row_after_an_unparseable_row_with_the_same_ref_is_recorded(base: Shop) -> None:
    """The control case for the test above: line 2's amount does not parse, line 3 is recorded."""
    base.load("refunds", [refund("R1", "ten"), refund("R1", 1000)])  # type: ignore[arg-type]
    assert base.refund("R1")["source_line"] == 3


def test_loading_the_same_file_twice_changes_nothing(shop: Shop) -> None:
    """Merchants (with a booked balance), orders and refunds (with rejects) loaded again, and a renamed
    copy: every table keeps its row count, and each result says it was already loaded."""
    paths = [
        shop.write("merchants", [merchant(), merchant("M2", funding="integrated", balance_cents=5000, mandate_id="")]),
        shop.write("orders", [order("O1"), order("O2", merchant_id="M2")]),
        shop.write("refunds", [refund("R1", 1000), refund("R1", 1000), refund("R2", 99999), refund("R3", 10, "O9")]),
    ]
    assert not any(record(shop.con, p).already_loaded for p in paths)
    counts = table_counts(shop.con)
    assert (counts["merchants"], counts["refunds"], counts["rejects"], counts["transfers"]) == (2, 2, 2, 2)

    again = [record(shop.con, p) for p in paths]
    copy = shop.folder / "refunds_copy.csv"
    copy.write_bytes(paths[-1].read_bytes())
    again.append(record(shop.con, copy))

    assert all(r.already_loaded and (r.rows_loaded, r.rows_rejected) == (0, 0) for r in again)
    assert table_counts(shop.con) == counts


def test_reloading_a_merchants_file_does_not_book_its_balance_twice(shop: Shop) -> None:
    """The integrated balance is booked once per change, not per load."""
    path = shop.write("merchants", [merchant("M2", funding="integrated", balance_cents=5000, mandate_id="")])
    record(shop.con, path)
    record(shop.con, path)
    assert balance(shop.con, accounts.merchant_balance("M2")) == -5000


def test_refund_id_is_deterministic_and_sepa_safe() -> None:
    """22 characters of [A-Z0-9], the same for the same (merchant, ref), different across merchants."""
    rid = refund_id_for("M1", "R-000123")
    assert re.fullmatch(r"RF[0-9A-F]{20}", rid)
    assert rid == refund_id_for("M1", "R-000123")
    assert rid != refund_id_for("M2", "R-000123")
    assert refund_id_for("M1", "R1") != refund_id_for("M1R", "1")  # the separator keeps fields apart


# --- rejects: file, line, column, problem --------------------------------------------------------


def test_missing_required_column_refuses_the_file_naming_it(tmp_path: Path) -> None:
    """A refunds file without amount_cents cannot be read at all; the message names the column."""
    header = [c for c in HEADERS["refunds"] if c != "amount_cents"]
    path = write_rows(tmp_path, "refunds.csv", [{k: v for k, v in refund("R1", 1).items() if k in header}], header)
    with pytest.raises(IntakeFileError, match="missing required column amount_cents"):
        read_shop_file(path)


def test_missing_optional_column_takes_its_default(tmp_path: Path) -> None:
    """Columns with a default (waiting_days, reason, ...) may be left out."""
    header = ["merchant_id", "name", "iban", "funding"]
    path = write_rows(tmp_path, "merchants.csv", [{k: merchant()[k] for k in header}], header)
    rows = read_shop_file(path).rows
    assert rows.select("waiting_days", "refund_window_days", "collection", "only_refund_paid").rows() == [
        (7, 56, "weekly", False)
    ]


def test_bad_cells_reject_their_row_and_the_others_load(shop: Shop) -> None:
    """A non-numeric amount (line 3), a bad date (line 5), an unknown merchant (line 6): each a reject
    naming line, column, value and problem; lines 2 and 4 load."""
    shop.load("merchants", [merchant()])
    result = shop.load(
        "orders",
        [
            order("O1"),
            order("O2", amount_cents="12,50"),
            order("O3"),
            order("O4", ordered_on="2024-02-30"),
            order("O5", merchant_id="NOBODY"),
        ],
    )
    assert (result.rows_total, result.rows_loaded, result.rows_rejected) == (5, 2, 3)
    assert sorted(r[0] for r in shop.con.execute("SELECT order_id FROM orders").fetchall()) == ["O1", "O3"]
    assert shop.rejects().select("line", "column_name", "value", "problem", "severity").rows() == [
        (3, "amount_cents", "12,50", "not a whole number of cents", "error"),
        (5, "ordered_on", "2024-02-30", "not a date in the form YYYY-MM-DD", "error"),
        (6, "merchant_id", "NOBODY", "unknown merchant NOBODY (load its merchants file first)", "error"),
    ]


def test_unknown_order_or_payment_rejects_the_refund_row(base: Shop) -> None:
    """Refunds against an order or payment never loaded are rejected, the others recorded."""
    result = base.load(
        "refunds",
        [
            refund("R1", 100),
            refund("R2", 100, "O404"),
            refund("R3", 100, None, payment_id="P404"),
            refund("R4", 100, None, payment_id="P1"),
        ],
    )
    assert (result.rows_loaded, result.rows_rejected) == (2, 2)
    assert base.rejects().select("line", "column_name", "value", "problem").rows() == [
        (3, "order_id", "O404", "unknown order O404 (load its orders file first)"),
        (4, "payment_id", "P404", "unknown payment P404 (load its payments file first)"),
    ]
    assert {r[0] for r in base.con.execute("SELECT refund_ref FROM refunds").fetchall()} == {"R1", "R4"}


@pytest.mark.parametrize(
    ("fields", "column", "problem"),
    [
        ({"amount_cents": 0}, "amount_cents", "must be greater than 0"),
        ({"amount_cents": -5}, "amount_cents", "must be greater than 0"),
        ({"amount_cents": "1.5"}, "amount_cents", "not a whole number of cents"),
        ({"requested_on": "10.05.2024"}, "requested_on", "not a date in the form YYYY-MM-DD"),
        ({"refund_ref": "R" * 36}, "refund_ref", "has the wrong length"),
        ({"payment_id": "P1"}, None, "exactly one of order_id and payment_id must be given"),
    ],
)
def test_refund_row_rules(base: Shop, fields: dict[str, object], column: str | None, problem: str) -> None:
    """Each rule of refunds.csv rejects the row with its own words; the good row beside it loads."""
    bad = refund("BAD", 100) | fields
    base.load("refunds", [refund("GOOD", 100), bad])
    rejects = base.rejects()
    assert rejects.height == 1
    row = rejects.row(0, named=True)
    assert (row["line"], row["column_name"]) == (3, column)
    assert problem in row["problem"]
    assert base.refund_count() == 1


def test_order_of_another_merchant_is_rejected(base: Shop) -> None:
    """A refund may only be asked for by the merchant the order belongs to."""
    base.load("refunds", [refund("R1", 100, "O1", merchant_id="M3")])
    assert base.refund_count() == 0
    assert "order or payment O1 belongs to merchant M1, not M3" in base.rejects()["problem"][0]


def test_merchant_with_an_invalid_iban_is_recorded_with_a_warning(shop: Shop) -> None:
    """Its refunds are real: the merchant is kept, the bad IBAN reported as a warning (not an error)."""
    result = shop.load("merchants", [merchant(iban=IBAN_BAD_CHECK)])
    assert (result.rows_loaded, result.rows_rejected) == (1, 0)
    row = shop.rejects().row(0, named=True)
    assert (row["line"], row["column_name"], row["severity"]) == (2, "iban", "warning")
    assert "invalid IBAN" in row["problem"]
    problem = shop.con.execute("SELECT iban_problem FROM merchants").fetchone()[0]
    assert re.search(r"check ?sum|check digits", problem, re.IGNORECASE)


def test_non_utf8_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """A Latin-1 export names the line and the byte and asks for UTF-8."""
    path = tmp_path / "orders.csv"
    text = ",".join(HEADERS["orders"]) + "\nO1,M1,Jürgen Müller,,,100,100,2024-05-01,1,0,true\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(IntakeFileError, match=r"orders.csv: line 2: not UTF-8 \(byte 0xfc\); export the file as UTF-8"):
        read_shop_file(path)


def test_utf8_with_bom_and_umlauts_is_read(tmp_path: Path) -> None:
    """A UTF-8 byte order mark does not spoil the first column name; umlauts survive."""
    path = tmp_path / "orders.csv"
    text = ",".join(HEADERS["orders"]) + "\nO1,M1,Jürgen Müller,,,100,100,2024-05-01,1,0,true\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    shop_file = read_shop_file(path)
    assert shop_file.rejects.is_empty()
    assert shop_file.rows.select("order_id", "customer_name").rows() == [("O1", "Jürgen Müller")]


def test_ibans_with_spaces_and_lower_case_are_normalised_and_accepted(shop: Shop) -> None:
    """'de02 1203 0000 0000 2020 51' is stored as DE02120300000000202051 and the refund is scheduled."""
    shop.load("merchants", [merchant(iban="de89 3704 0044 0532 0130 00")])
    shop.load("orders", [order("O1", customer_iban="de02 1203 0000 0000 2020 51")])
    shop.load("refunds", [refund("R1", 100)])
    assert shop.con.execute("SELECT iban, iban_problem FROM merchants").fetchone() == ("DE89370400440532013000", None)
    assert shop.con.execute("SELECT customer_iban, customer_iban_problem FROM orders").fetchone() == (
        IBAN_CUSTOMER,
        None,
    )
    assert (shop.refund("R1")["status"], shop.refund("R1")["customer_iban"]) == ("scheduled", IBAN_CUSTOMER)


def test_list_rejects_by_file(shop: Shop) -> None:
    """list_rejects gives one file's rejects by its content hash, all of them without a filter."""
    shop.load("merchants", [merchant()])
    first = read_shop_file(shop.write("orders", [order("O1", amount_cents="x")]))
    record(shop.con, first.path)
    second = read_shop_file(shop.write("orders", [order("O2", ordered_on="x"), order("O3", ordered_on="y")]))
    record(shop.con, second.path)
    assert list_rejects(shop.con, [first.sha256])["column_name"].to_list() == ["amount_cents"]
    assert list_rejects(shop.con, [second.sha256])["line"].to_list() == [2, 3]
    assert list_rejects(shop.con, []).is_empty()
    assert list_rejects(shop.con).height == 3


def test_refused_file_is_noted_once(shop: Shop) -> None:
    """A whole file that cannot be read is listed with the rejects once per content."""
    record_refused_file(shop.con, "refunds.csv", "abc", "refunds.csv: missing required column amount_cents")
    record_refused_file(shop.con, "refunds.csv", "abc", "refunds.csv: missing required column amount_cents")
    rejects = list_rejects(shop.con)
    assert rejects.select("file_name", "line", "severity").rows() == [("refunds.csv", 0, "file")]


# --- file kinds and load order -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("refunds.csv", "refunds"),
        ("Refunds_2024-05.parquet", "refunds"),
        ("orders-week20.csv", "orders"),
        ("excluded_ibans.csv", "excluded_ibans"),
        ("merchants 2024.csv", "merchants"),
    ],
)
def test_kind_of_reads_the_file_name(name: str, kind: str) -> None:
    assert kind_of(Path(name)) == kind


@pytest.mark.parametrize("name", ["refund.csv", "ordersX.csv", "bank.xml", "payments2024.csv"])
def test_kind_of_refuses_unknown_names(name: str) -> None:
    with pytest.raises(IntakeFileError, match="cannot tell what the file holds"):
        kind_of(Path(name))


def test_discover_orders_files_for_loading(tmp_path: Path) -> None:
    """Merchants before excluded IBANs, orders, payments and refunds; unknown files last; other suffixes ignored."""
    for name in ["refunds.csv", "orders_b.csv", "notes.csv", "merchants.csv", "payments.parquet", "orders_a.csv"]:
        (tmp_path / name).write_text("x\n")
    (tmp_path / "readme.txt").write_text("x\n")
    names = [p.name for p in discover([tmp_path])]
    assert names == ["merchants.csv", "orders_a.csv", "orders_b.csv", "payments.parquet", "refunds.csv", "notes.csv"]


def test_parquet_exports_are_read_too(tmp_path: Path) -> None:
    """A Parquet export (typed columns) loads like the CSV; rows are numbered from 1."""
    path = tmp_path / "payments.parquet"
    pl.DataFrame([payment("P1"), payment("P2", amount_cents=-1)]).write_parquet(path)
    shop_file = read_shop_file(path)
    assert shop_file.rows["payment_id"].to_list() == ["P1"]
    assert shop_file.rejects.select("_line", "column_name").rows() == [(2, "amount_cents")]


def test_blank_lines_are_layout_not_rows(tmp_path: Path) -> None:
    """A blank line between rows is skipped silently; the rows after it keep their physical line numbers."""
    path = tmp_path / "refunds.csv"
    path.write_text(
        "refund_ref,merchant_id,order_id,payment_id,amount_cents,requested_on,reason\n"
        "R1,M1,O1,,100,2024-05-10,x\n"
        ",,,,,,\n"
        "\n"
        "R2,M1,O1,,abc,2024-05-10,y\n",
        encoding="utf-8",
    )
    shop_file = read_shop_file(path)
    assert shop_file.rows["refund_ref"].to_list() == ["R1"]
    assert shop_file.rejects.select("_line", "column_name").rows() == [(5, "amount_cents")]


def test_refund_ids_hashed_in_bulk_equal_one_by_one() -> None:
    import duckdb

    from ledger.intake import with_refund_ids

    rows = pl.DataFrame({"merchant_id": ["M1", "M1", "Müller & Söhne", "M-2"],
                         "refund_ref": ["R-000123", "r-000123", "Rückgabe 1", "R\x1f1"]})  # fmt: skip
    with duckdb.connect() as con:
        bulk = with_refund_ids(con, rows)
    assert bulk["refund_id"].to_list() == [refund_id_for(m, r) for m, r in rows.iter_rows()]
    assert bulk["refund_id"].n_unique() == 4


@given(
    st.lists(st.tuples(st.one_of(st.none(), st.sampled_from("MN")), st.sampled_from(["R1", "R2", "R3"])), max_size=30),
    st.randoms(use_true_random=False),
)
def test_duplicates_in_a_file_are_those_the_window_over_all_rows_finds(
    keys: list[tuple[str | None, str]], rng: random.Random
) -> None:
    """Looking for repeated keys only among rows whose keys hash alike finds what the window over every row
    finds: the same rows kept, in their order, and the same rejects naming the first line."""
    lines = list(range(2, len(keys) + 2))
    rng.shuffle(lines)
    rows = pl.DataFrame(
        {LINE: lines, "merchant_id": [m for m, _ in keys], "refund_ref": [r for _, r in keys]},
        schema={LINE: pl.Int64, "merchant_id": pl.String, "refund_ref": pl.String},
    )
    kept, rejects = _split_duplicates_in_file(rows, ["merchant_id", "refund_ref"])
    marked = rows.with_columns(pl.col(LINE).min().over("merchant_id", "refund_ref").alias("_first"))
    assert kept.to_dicts() == marked.filter(pl.col(LINE) == pl.col("_first")).drop("_first").to_dicts()
    expected = marked.filter(pl.col(LINE) != pl.col("_first"))
    assert rejects[LINE].to_list() == expected[LINE].to_list()
    assert rejects["problem"].to_list() == [
        None
        if m is None
        else f"duplicate: merchant_id {m} refund_ref {r} already appears on line {f} of this file; recorded once"
        for m, r, f in expected.select("merchant_id", "refund_ref", "_first").iter_rows()
    ]
