"""The frames behind the charts, on a real ledger: payment-file volumes per week, return rates by reason code
and the age of open refunds and exceptions, with numbers worked out by hand below."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from ledger.payment_files import (
    PaymentFile,
    RunWindow,
    next_seq,
    record_collection_file,
    record_payout_file,
    release_files,
)
from ledger.reconciliation import LINE_COLUMNS, reconcile_bank_file
from ledger.refunds import make_refunds_due
from ledger.reports import AGE_BUCKETS, ageing, return_rates, weekly_volumes
from tests.ledger.shop import Shop, integrated, merchant, order, refund

W24, W25 = "2024-W24", "2024-W25"
TODAY = date(2024, 6, 20)

# M2 is integrated (its balance pays every refund at once). Refund, payout and requested_on, so that on TODAY:
# R1 is 2 days old, R2 7 (last day of 0-7), R3 8, R4 30 (last day of 15-30), R5 41, R7 71 (order O7 is older,
# so its request window is); R6 asks for more than twice its order and is refused at intake.
REFUNDS = [
    ("R1", 1000, "2024-06-18"),
    ("R2", 2500, "2024-06-13"),
    ("R3", 4000, "2024-06-12"),
    ("R4", 700, "2024-05-21"),
    ("R5", 1200, "2024-05-10"),
    ("R6", 9000, "2024-05-10"),
    ("R7", 300, "2024-04-10"),
    ("R8", 1500, "2024-06-14"),
]


def payout_file(shop: Shop, file_id: str, week: str, refs: list[str]) -> None:
    """Record a payout file of `week` paying the refunds `refs` (EndToEndId E-<ref>), as the weekly run does."""
    rows = [shop.refund(ref, "M2") for ref in refs]
    items = pl.DataFrame(
        {
            "end_to_end_id": [f"E-{r['refund_ref']}" for r in rows],
            "payment_info_id": [file_id] * len(rows),
            "refund_id": [r["refund_id"] for r in rows],
            "merchant_id": ["M2"] * len(rows),
            "amount_cents": [r["payout_cents"] for r in rows],
        }
    )
    window = RunWindow(week, "main", date(2024, 6, 10))
    record_payout_file(
        shop.con,
        PaymentFile(file_id, f"{file_id}.xml", "payout", "pain.001.001.03", window,
                    next_seq(shop.con, window, "payout"), f"sha-{file_id}",
                    date(2024, 6, 11), "valid", items),
        actor="test",
    )  # fmt: skip


def collection_file(shop: Shop, file_id: str, week: str, amount_cents: int) -> None:
    """Record a pain.008 of `week` collecting `amount_cents` from M1 in one direct debit."""
    window = RunWindow(week, "main", date(2024, 6, 17))
    collections = pl.DataFrame(
        {
            "collection_id": [f"C-{file_id}"],
            "merchant_id": ["M1"],
            "mandate_id": ["MANDATE-M1"],
            "sequence_type": ["FRST"],
            "collection_date": [date(2024, 6, 19)],
            "refunds_cents": [amount_cents],
            "fee_cents": [0],
            "amount_cents": [amount_cents],
        }
    )
    items = collections.select(
        pl.lit(f"E-{file_id}").alias("end_to_end_id"), pl.lit(file_id).alias("payment_info_id"),
        "collection_id", "merchant_id", "amount_cents",
    )  # fmt: skip
    record_collection_file(
        shop.con,
        PaymentFile(file_id, f"{file_id}.xml", "collection", "pain.008.001.02", window, 1, f"sha-{file_id}",
                    date(2024, 6, 19), "valid", items),
        collections,
        pl.DataFrame(schema={"refund_id": pl.String, "collection_id": pl.String}),
    )  # fmt: skip


def bank_line(**fields) -> dict:
    row = {c: None for c in LINE_COLUMNS}
    row.update(message_type="camt.054.001.08", message_id="BANK-1", account_iban="DE75512108001245126199",
               status="BOOK", currency="EUR", reversal=False, booking_date=date(2024, 6, 19),
               row_problem=None, reason_action=None, reason_text=None)  # fmt: skip
    row.update(fields)
    return row


def reconcile(shop: Shop, name: str, *rows: dict, balance_gaps: list[str] | None = None) -> None:
    lines = pl.DataFrame(list(rows), infer_schema_length=None).with_columns(
        pl.col("amount_cents").cast(pl.Int64), pl.col("charges_cents").cast(pl.Int64)
    )
    reconcile_bank_file(shop.con, file_name=name, sha256=f"sha-{name}", lines=lines, balance_gaps=balance_gaps)


def age_exception(con: duckdb.DuckDBPyConnection, line_filter: str, created_at: datetime) -> None:
    """Exceptions are stamped with the wall clock when raised; give one a known age."""
    con.execute(
        f"UPDATE exceptions SET created_at = ? WHERE line_id IN (SELECT line_id FROM bank_lines WHERE {line_filter})",
        [created_at],
    )


@pytest.fixture
def books(shop: Shop) -> Shop:
    """Two weeks of files and one bank file, every number chosen to be checked by hand.

    W24: payout PO-24 (R5: 1 x EUR 12.00). W25: payout PO-25A (R1, R2, R8: 3 x, EUR 50.00), payout PO-25B
    (R3: EUR 40.00), collection DD-25 (M1, EUR 50.50), and PO-25X (R4) cancelled before release.
    The bank: R8 booked (completed), R1 returned AC04 (account closed), R2 returned without a reason code
    (to exceptions), a credit of EUR 7.77 nobody can place, and a statement whose balances do not add up."""
    shop.load("merchants", [merchant("M1"), integrated("M2", balance_cents=100_000)])
    orders = [order(f"O{n}", "M2") for n in range(1, 9) if n != 7]
    orders.append(order("O7", "M2", ordered_on="2024-03-01"))
    shop.load("orders", orders)
    shop.load("refunds", [refund(ref, cents, f"O{ref[1:]}", merchant_id="M2", requested_on=on)
                          for ref, cents, on in REFUNDS])  # fmt: skip
    make_refunds_due(shop.con, date(2024, 6, 30))
    payout_file(shop, "PO-24", W24, ["R5"])
    payout_file(shop, "PO-25A", W25, ["R1", "R2", "R8"])
    payout_file(shop, "PO-25B", W25, ["R3"])
    payout_file(shop, "PO-25X", W25, ["R4"])
    # What cancelling a file before release leaves in the registry (the refund's own status does not matter here).
    shop.con.execute("UPDATE payment_files SET status = 'cancelled' WHERE file_id = 'PO-25X'")
    collection_file(shop, "DD-25", W25, 5050)
    release_files(
        shop.con, ["PO-25A.xml", "PO-25B.xml"], by="alice",
        sha256_on_disk={"PO-25A.xml": "sha-PO-25A", "PO-25B.xml": "sha-PO-25B"},
    )  # fmt: skip
    reconcile(
        shop, "camt054-1.xml",
        bank_line(entry_ref="N8", direction="DBIT", amount_cents=1500, end_to_end_id="E-R8"),
        bank_line(entry_ref="N1", direction="CRDT", amount_cents=1000, end_to_end_id="E-R1",
                  bank_tx_code="PMNT/RCDT/RRTN", return_reason="AC04", reason_action="ask_new_iban",
                  reason_text="account closed"),
        bank_line(entry_ref="N2", direction="CRDT", amount_cents=2500, end_to_end_id="E-R2",
                  bank_tx_code="PMNT/RCDT/RRTN"),
        bank_line(entry_ref="N9", direction="CRDT", amount_cents=777, counterparty_name="Somebody Else"),
        bank_line(entry_ref="N10", direction="CRDT", amount_cents=555, counterparty_name="Nobody Either"),
        balance_gaps=["opening EUR 0.00 + entries EUR 10.00 <> closing EUR 20.00"],
    )  # fmt: skip
    age_exception(shop.con, "entry_ref = 'N2'", datetime(2024, 6, 5, 9, 0))  # 15 days on TODAY
    age_exception(shop.con, "entry_ref = 'N9'", datetime(2024, 6, 20, 8, 0))  # raised on TODAY
    age_exception(shop.con, "entry_ref = 'N10'", datetime(2024, 6, 1, 8, 0))
    shop.con.execute(
        "UPDATE exceptions SET status = 'resolved' WHERE line_id IN (SELECT line_id FROM bank_lines "
        "WHERE entry_ref = 'N10')"
    )
    # The balance gap has no bank line: its amount is unknown (0) and it is 80 days old on TODAY.
    shop.con.execute(
        "UPDATE exceptions SET created_at = ? WHERE line_id NOT IN (SELECT line_id FROM bank_lines)",
        [datetime(2024, 4, 1, 12, 0)],
    )
    return shop


def test_the_books_are_what_the_numbers_below_assume(books: Shop) -> None:
    statuses = dict(books.con.execute("SELECT refund_ref, status FROM refunds").fetchall())
    assert statuses == {
        "R1": "awaiting_bank_details", "R2": "returned", "R3": "sent", "R4": "in_file", "R5": "in_file",
        "R6": "rejected", "R7": "due", "R8": "completed",
    }  # fmt: skip
    assert books.con.execute("SELECT COUNT(*) FROM exceptions WHERE status = 'open'").fetchone()[0] == 3


def test_weekly_volumes_count_the_files_not_cancelled_per_week_and_kind(books: Shop) -> None:
    """W25's payouts: PO-25A (3, EUR 50.00) and PO-25B (1, EUR 40.00); the cancelled PO-25X is left out.
    W24 has no collection file: it shows as 0."""
    assert weekly_volumes(books.con).rows() == [
        (W24, "collection", 0, 0),
        (W24, "payout", 1, 1200),
        (W25, "collection", 1, 5050),
        (W25, "payout", 4, 9000),
    ]
    assert weekly_volumes(books.con, last_weeks=1)["week"].unique().to_list() == [W25]
    assert weekly_volumes(books.con, until_week=W24).rows() == [(W24, "collection", 0, 0), (W24, "payout", 1, 1200)]


def test_weekly_volumes_wants_at_least_one_week(books: Shop) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        weekly_volumes(books.con, last_weeks=0)


def test_return_rates_of_a_week_divide_by_that_weeks_transactions(books: Shop) -> None:
    """W25 has 4 payouts in files not cancelled (R1, R2, R8, R3): one returned for AC04, one without a code."""
    frame = return_rates(books.con, W25)
    assert frame.columns == ["kind", "reason", "lines", "amount_cents", "transactions", "rate"]
    assert frame.select("kind", "reason", "lines", "amount_cents", "transactions").rows() == [
        ("payout", "(none)", 1, 2500, 4),
        ("payout", "AC04", 1, 1000, 4),
    ]
    assert frame["rate"].to_list() == [0.25, 0.25]


def test_return_rates_of_all_weeks_and_of_a_week_without_returns(books: Shop) -> None:
    """Over every week the payouts are 5 (W24's R5 too); W24 itself had no return."""
    frame = return_rates(books.con)
    assert frame.select("reason", "lines", "transactions").rows() == [("(none)", 1, 5), ("AC04", 1, 5)]
    assert frame["rate"].to_list() == [0.2, 0.2]
    assert return_rates(books.con, W24).is_empty()


def test_ageing_buckets_open_refunds_and_exceptions(books: Shop) -> None:
    """Open refunds: R1 (2 days) and R2 (7) in 0-7, R3 (8) in 8-14, R4 (30) in 15-30, R5 (41) in 31-60, R7 (71)
    over 60; R6 (rejected) and R8 (completed) are done. Open exceptions: the unplaced EUR 7.77 (today) in 0-7,
    R2's return (15 days, its line's EUR 25.00) in 15-30, the balance gap (80 days, no line: 0) over 60; the
    resolved one is not counted."""
    frame = ageing(books.con, TODAY)
    assert frame.columns == ["what", "bucket", "items", "amount_cents"]
    buckets = [label for label, _ in AGE_BUCKETS]
    assert frame["bucket"].to_list() == buckets * 2
    refunds = frame.filter(pl.col("what") == "refunds").select("items", "amount_cents").rows()
    exceptions = frame.filter(pl.col("what") == "exceptions").select("items", "amount_cents").rows()
    assert refunds == [(2, 3500), (1, 4000), (1, 700), (1, 1200), (1, 300)]
    assert exceptions == [(1, 777), (0, 0), (1, 2500), (0, 0), (1, 0)]


def test_ageing_on_an_earlier_day_counts_newer_items_as_new(books: Shop) -> None:
    """On 2024-06-01, R1, R2 and R3 (requested later) and the exceptions raised later count as 0 days old."""
    frame = ageing(books.con, date(2024, 6, 1))
    refunds = dict(frame.filter(pl.col("what") == "refunds").select("bucket", "items").iter_rows())
    assert refunds == {"0-7 days": 3, "8-14 days": 1, "15-30 days": 1, "31-60 days": 1, "over 60 days": 0}


def test_empty_ledger_gives_empty_frames_and_zero_buckets(con: duckdb.DuckDBPyConnection) -> None:
    assert weekly_volumes(con).is_empty()
    assert return_rates(con).is_empty() and return_rates(con, W25).is_empty()
    frame = ageing(con, TODAY)
    assert frame.height == 2 * len(AGE_BUCKETS)
    assert frame["items"].sum() == 0 and frame["amount_cents"].sum() == 0
