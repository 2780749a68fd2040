"""Payment files in the books: which refunds are collected and paid, the file registry, and the release that
moves money. Plain ledger tests on an in-memory DuckDB; files are recorded by hand as the outbox would."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import duckdb
import polars as pl
import pytest

from ledger import accounts
from ledger.intake import refund_id_for
from ledger.payment_files import (
    COLLECTION,
    PAYOUT,
    PaymentFile,
    ReleaseRefused,
    RunWindow,
    collectable_refunds,
    file_problems,
    hold_unpayable,
    list_files,
    next_seq,
    payable_refunds,
    plan_collections,
    record_collection_file,
    record_payout_file,
    release_files,
)
from ledger.postings import balance, ledger_total, unbalanced_transfers
from ledger.refunds import make_refunds_due
from tests.ledger.shop import (
    HEADERS,
    IBAN_BAD_CHECK,
    IBAN_CARRIER,
    IBAN_MERCHANT,
    Shop,
    integrated,
    merchant,
    order,
    postings_snapshot,
    record,
    refund,
)

PLATFORM_IBAN = "DE75512108001245126199"
FEE = 50
WEEK21 = RunWindow("2024-W21", "main", date(2024, 5, 20))
WEEK21_MIDWEEK = RunWindow("2024-W21", "midweek", date(2024, 5, 23), ("twice_weekly",))
WEEK22 = RunWindow("2024-W22", "main", date(2024, 5, 27))

# M1 own account, weekly; M2 integrated; M3 own account, a direct debit per refund (with a fee); M4 own account
# without a mandate; M5 own account with an IBAN whose check digits are wrong; M6 own account, paid on release.
MERCHANTS = [
    merchant("M1", pay_on_release="false"),
    integrated("M2", balance_cents=100_000, pay_on_release="false"),
    merchant("M3", collection="per_refund", pay_on_release="false"),
    merchant("M4", mandate_id="", mandate_signed_on="", pay_on_release="false"),
    merchant("M5", iban=IBAN_BAD_CHECK, pay_on_release="false"),
    merchant("M6", pay_on_release="true"),
]
ORDERS = [
    order("O1"),
    # The seed's instalment plan: 400 EUR in 4 x 100, two paid; a refund of 250 pays out 50.
    order("O1I", amount_cents=40_000, paid_cents=20_000, instalments=4, instalments_paid=2),
    order("O2", "M2"),
    order("O3", "M3"),
    order("O4", "M4"),
    order("O5", "M5"),
    order("O6", "M6"),
]
# Requested 2024-05-10: due on 2024-05-17 (7 waiting days), so due by Monday 2024-05-20.
REFUNDS = [
    refund("R1", 1000),
    refund("R1I", 25_000, "O1I"),
    refund("R1L", 500, requested_on="2024-05-19"),  # due 2024-05-26: not in week 21's run
    refund("R2", 1500, "O2", merchant_id="M2"),
    refund("R3A", 500, "O3", merchant_id="M3"),
    refund("R3B", 700, "O3", merchant_id="M3"),
    refund("R4", 900, "O4", merchant_id="M4"),
    refund("R5", 800, "O5", merchant_id="M5"),
    refund("R6", 1200, "O6", merchant_id="M6"),
]


def rid(ref: str, merchant_id: str) -> str:
    return refund_id_for(merchant_id, ref)


def load(shop: Shop, merchants: list[dict[str, Any]], orders: list[dict[str, Any]], refunds: list[dict[str, Any]],
         due_by: date = WEEK21.cutoff) -> None:  # fmt: skip
    """Record the exports as intake does (every row must load), then the nightly step for `due_by`."""
    results = [
        record(shop.con, shop.write("merchants", merchants, [*HEADERS["merchants"], "pay_on_release"])),
        shop.load("orders", orders),
        shop.load("refunds", refunds),
    ]
    assert [r.rows_rejected for r in results] == [0, 0, 0], results
    make_refunds_due(shop.con, due_by)


def _six_merchants(shop: Shop) -> None:
    load(shop, MERCHANTS, ORDERS, REFUNDS)


@pytest.fixture
def books(shop_from: Callable[[str, Callable[[Shop], None]], Shop]) -> duckdb.DuckDBPyConnection:
    """The six merchants and their refunds, made due for week 21 (a private copy of a ledger built once)."""
    return shop_from("payment_files_six_merchants", _six_merchants).con


def plan(con: duckdb.DuckDBPyConnection, window: RunWindow, on: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    refunds, _ = collectable_refunds(con, window)
    return plan_collections(con, refunds, window, collection_date=on, per_refund_fee_cents=FEE)


def collection_file(con: duckdb.DuckDBPyConnection, window: RunWindow, collections: pl.DataFrame) -> PaymentFile:
    """A pain.008 file as the outbox records it (identifiers made up, amounts the collections')."""
    seq = next_seq(con, window, COLLECTION)
    msg_id = f"DD-{window.partition_key}-{seq:04d}"
    return PaymentFile(
        file_id=msg_id, file_name=f"{msg_id}.xml", kind=COLLECTION, message_type="pain.008.001.02", window=window,
        seq=seq, sha256=f"{msg_id:0<64}"[:64], requested_on=collections["collection_date"][0], validation="valid",
        items=collections.select(
            (pl.col("collection_id") + "-DD").alias("end_to_end_id"), pl.lit(f"{msg_id}-1").alias("payment_info_id"),
            "collection_id", "merchant_id", "amount_cents",
        ),
    )  # fmt: skip


def payout_file(con: duckdb.DuckDBPyConnection, window: RunWindow, payable: pl.DataFrame) -> PaymentFile:
    """A pain.001 file as the outbox records it."""
    seq = next_seq(con, window, PAYOUT)
    msg_id = f"PO-{window.partition_key}-{seq:04d}"
    return PaymentFile(
        file_id=msg_id, file_name=f"{msg_id}.xml", kind=PAYOUT, message_type="pain.001.001.03", window=window,
        seq=seq, sha256=f"{msg_id:0<64}"[:64], requested_on=window.cutoff, validation="valid",
        items=payable.select(
            (pl.col("refund_id") + "-PO").alias("end_to_end_id"), pl.lit(f"{msg_id}-1").alias("payment_info_id"),
            "refund_id", "merchant_id", pl.col("payout_cents").alias("amount_cents"),
        ),
    )  # fmt: skip


def record_collections(con: duckdb.DuckDBPyConnection, window: RunWindow, on: date) -> PaymentFile:
    collections, covered = plan(con, window, on)
    payment_file = collection_file(con, window, collections)
    record_collection_file(con, payment_file, collections, covered)
    return payment_file


def record_payouts(con: duckdb.DuckDBPyConnection, window: RunWindow) -> PaymentFile:
    payment_file = payout_file(con, window, payable_refunds(con, window))
    record_payout_file(con, payment_file, actor="weekly run")
    return payment_file


def release(con: duckdb.DuckDBPyConnection, *files: PaymentFile, by: str = "anna") -> pl.DataFrame:
    """Release files whose bytes on disk are unchanged."""
    return release_files(
        con, [f.file_name for f in files], by=by, sha256_on_disk={f.file_name: f.sha256 for f in files}
    )


def statuses(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT refund_ref, status FROM refunds").fetchall())


def transfer_kinds(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT kind, COUNT(*) FROM transfers GROUP BY kind").fetchall())


def test_one_collection_per_own_account_merchant_for_the_sum_of_its_payouts(books: duckdb.DuckDBPyConnection) -> None:
    """Each own-account merchant is collected once for the payouts of its due refunds (the instalment refund
    counts with the 50 EUR it pays out, not the 250 EUR asked); a per-refund merchant gets one debit per refund
    with the fee added; integrated merchants and refunds not yet due are never collected."""
    collections, covered = plan(books, WEEK21, date(2024, 5, 21))
    got = sorted(collections.select("merchant_id", "refunds_cents", "fee_cents", "amount_cents", "refunds").iter_rows())
    assert got == [
        ("M1", 6000, 0, 6000, 2),
        ("M3", 500, FEE, 500 + FEE, 1),
        ("M3", 700, FEE, 700 + FEE, 1),
        ("M6", 1200, 0, 1200, 1),
    ]
    assert collections["collection_id"].n_unique() == 4
    assert (collections["collection_date"] == date(2024, 5, 21)).all()
    by_refund = dict(covered.iter_rows())
    assert set(by_refund) == {rid("R1", "M1"), rid("R1I", "M1"), rid("R3A", "M3"), rid("R3B", "M3"), rid("R6", "M6")}
    assert by_refund[rid("R1", "M1")] == by_refund[rid("R1I", "M1")]
    assert by_refund[rid("R3A", "M3")] != by_refund[rid("R3B", "M3")]


def _scrambled_refunds(shop: Shop) -> None:
    # Exported neither by merchant, nor by date, nor by reference; two merchants of each funding.
    owners = {"O1": "M1", "O7": "M7", "O2": "M2", "O8": "M8"}
    refunds = [
        refund(f"R{n}", 100 + n, order_id, merchant_id=owners[order_id], requested_on=f"2024-05-{day:02d}")
        for n, (order_id, day) in enumerate(
            [
                ("O8", 9),
                ("O1", 10),
                ("O2", 8),
                ("O7", 9),
                ("O1", 8),
                ("O2", 10),
                ("O8", 8),
                ("O7", 8),
                ("O1", 9),
                ("O2", 9),
                ("O8", 10),
                ("O1", 8),
            ]
        )
    ]
    load(shop, [merchant("M1"), merchant("M7"), integrated("M2", balance_cents=100_000),
                integrated("M8", balance_cents=100_000)],
         [order(o, m) for o, m in owners.items()], refunds)  # fmt: skip


def test_a_run_takes_the_refunds_by_merchant_request_date_and_reference(
    shop_from: Callable[[str, Callable[[Shop], None]], Shop],
) -> None:
    """Files list their transactions in one order whatever the order of the exports: by merchant, then the
    day the refund was asked for, then its reference."""
    con = shop_from("payment_files_scrambled", _scrambled_refunds).con

    def in_order(frame: pl.DataFrame) -> list[tuple[str, str, str]]:
        days = dict(con.execute("SELECT refund_id, CAST(requested_on AS VARCHAR) FROM refunds").fetchall())
        return [(row["merchant_id"], days[row["refund_id"]], row["refund_ref"]) for row in frame.iter_rows(named=True)]

    collectable = in_order(collectable_refunds(con, WEEK21)[0])
    payable = in_order(payable_refunds(con, WEEK21))
    assert [m for m, _, _ in collectable] == ["M1"] * 4 + ["M7"] * 2
    assert [m for m, _, _ in payable] == ["M2"] * 3 + ["M8"] * 3
    assert collectable == sorted(collectable) and payable == sorted(payable)
    assert [ref for m, _, ref in collectable if m == "M1"] == ["R11", "R4", "R8", "R1"]  # 8th, 8th, 9th, 10th


def test_merchants_that_cannot_be_debited_are_skipped_with_the_reason(books: duckdb.DuckDBPyConnection) -> None:
    """No mandate, or an IBAN that fails its check: the merchant is reported with why, how many refunds and how
    much; the other merchants are still collected."""
    refunds, skipped = collectable_refunds(books, WEEK21)
    reasons = {row["merchant_id"]: row for row in skipped.iter_rows(named=True)}
    assert set(reasons) == {"M4", "M5"}
    assert reasons["M4"]["skip_reason"] == "no SEPA mandate (mandate_id and mandate_signed_on) for the merchant"
    assert reasons["M5"]["skip_reason"].startswith("merchant's IBAN cannot be debited: ")
    assert (reasons["M4"]["refunds"], reasons["M4"]["payout_cents"]) == (1, 900)
    assert (reasons["M5"]["refunds"], reasons["M5"]["payout_cents"]) == (1, 800)
    assert set(refunds["merchant_id"]) == {"M1", "M3", "M6"}


def test_first_collection_under_a_mandate_is_frst_and_later_ones_rcur(books: duckdb.DuckDBPyConnection) -> None:
    """FRST on a mandate's first use (one per mandate, even for per-refund debits), RCUR on the next week's
    collection once the first is recorded; refunds already collected are not collected again."""
    collections, _ = plan(books, WEEK21, date(2024, 5, 21))
    sequence = collections.group_by("merchant_id").agg(pl.col("sequence_type").sort()).sort("merchant_id")
    assert sequence.rows() == [("M1", ["FRST"]), ("M3", ["FRST", "RCUR"]), ("M6", ["FRST"])]
    assert dict(collections.select("merchant_id", "mandate_id").unique().iter_rows()) == {
        "M1": "MANDATE-M1", "M3": "MANDATE-M3", "M6": "MANDATE-M6"}  # fmt: skip

    record_collections(books, WEEK21, date(2024, 5, 21))
    make_refunds_due(books, WEEK22.cutoff)  # R1L's waiting period ends on 2024-05-26
    later, covered = plan(books, WEEK22, date(2024, 5, 28))
    assert later.select("merchant_id", "refunds_cents", "sequence_type").rows() == [("M1", 500, "RCUR")]
    assert covered["refund_id"].to_list() == [rid("R1L", "M1")]


def test_files_are_numbered_across_the_runs_of_a_week(books: duckdb.DuckDBPyConnection) -> None:
    """A week's files of one kind are numbered on across its main and midweek runs; each kind and week counts
    on its own, so every file has its own MsgId."""
    assert next_seq(books, WEEK21, COLLECTION) == 1
    record_collections(books, WEEK21, date(2024, 5, 21))
    assert next_seq(books, WEEK21, COLLECTION) == 2
    assert next_seq(books, WEEK21_MIDWEEK, COLLECTION) == 2
    assert next_seq(books, WEEK21, PAYOUT) == 1
    assert next_seq(books, WEEK22, COLLECTION) == 1


def test_own_account_refunds_are_paid_only_once_their_money_is_secured(books: duckdb.DuckDBPyConnection) -> None:
    """Integrated merchants' due refunds are payable at once. An own-account merchant's are not while its
    collection is only written or released, unless it is paid on release; once the bank has booked the
    collection they are payable."""
    payable = lambda w: sorted(payable_refunds(books, w)["refund_ref"])  # noqa: E731
    assert payable(WEEK21) == ["R2"]
    collections = record_collections(books, WEEK21, date(2024, 5, 21))
    assert payable(WEEK21) == ["R2"]

    release(books, collections)
    assert payable(WEEK22) == ["R2", "R6"]  # M6 is paid on release; M1 and M3 wait for the booking

    # Bank reconciliation marks a collection booked in the product; here the test does it by hand.
    books.execute("UPDATE collections SET status = 'booked' WHERE merchant_id = 'M1'")
    assert payable(WEEK22) == ["R1", "R1I", "R2", "R6"]
    frame = payable_refunds(books, WEEK22).filter(pl.col("refund_ref") == "R1I")
    assert frame["payout_cents"].to_list() == [5000]


def test_a_refund_in_a_written_payout_file_is_not_payable_again(books: duckdb.DuckDBPyConnection) -> None:
    """Recording a payout file moves its refunds from due to in_file with an audit event; the next run does not
    find them payable, so nothing is paid twice."""
    payout = record_payouts(books, WEEK21)
    assert payout.items["refund_id"].to_list() == [rid("R2", "M2")]
    assert statuses(books)["R2"] == "in_file"
    event = books.execute(
        "SELECT from_status, to_status, actor, reason FROM refund_events WHERE refund_id = ? ORDER BY event_seq DESC",
        [rid("R2", "M2")],
    ).fetchone()
    assert event == ("due", "in_file", "weekly run", f"in payout file {payout.file_name}")
    assert payable_refunds(books, WEEK22).is_empty()
    registry = list_files(books)
    assert registry.select("file_name", "kind", "n_tx", "ctrl_sum_cents", "status").rows() == [
        (payout.file_name, "payout", 1, 1500, "written")]  # fmt: skip


def _own_accounts_as_customer_ibans(shop: Shop) -> None:
    refs = ("R-OK", "R-PLATFORM", "R-MERCHANT", "R-CARRIER")
    load(
        shop,
        [merchant("M1"), integrated("M2", balance_cents=100_000)],
        [order("O2", "M2")],
        [refund(ref, 1000, "O2", merchant_id="M2") for ref in refs],
    )
    shop.load("excluded_ibans", [{"iban": IBAN_CARRIER, "owner": "Parcel Express", "kind": "carrier"}])
    # Made due with IBANs intake would have refused: the last guard must still catch them.
    for ref, iban in (("R-PLATFORM", PLATFORM_IBAN), ("R-MERCHANT", IBAN_MERCHANT), ("R-CARRIER", IBAN_CARRIER)):
        shop.con.execute("UPDATE refunds SET customer_iban = ? WHERE refund_ref = ?", [iban, ref])


@pytest.fixture
def own_ibans(shop_from: Callable[[str, Callable[[Shop], None]], Shop]) -> Shop:
    """M2's four due refunds: one to a customer, one each to the platform's, M1's and a carrier's account."""
    return shop_from("payment_files_own_ibans", _own_accounts_as_customer_ibans)


def test_nothing_is_paid_to_the_platform_or_a_merchant_or_an_excluded_account(own_ibans: Shop) -> None:
    """A due refund whose IBAN is the platform's, any merchant's own, or an excluded account's is held back:
    awaiting bank details, the reason naming whose account it is, an audit event; the others stay payable."""
    con = own_ibans.con
    payable, held = hold_unpayable(con, payable_refunds(con, WEEK21), [PLATFORM_IBAN], actor="weekly run")
    assert payable["refund_ref"].to_list() == ["R-OK"]
    assert dict(held.select("refund_ref", "owner").iter_rows()) == {
        "R-PLATFORM": "the platform's own account",
        "R-MERCHANT": "a merchant's own account",
        "R-CARRIER": "Parcel Express (carrier)",
    }
    rows = con.execute(
        "SELECT refund_ref, status, status_reason, iban_problem FROM refunds WHERE refund_ref <> 'R-OK'"
    ).fetchall()
    for ref, status, reason, problem in rows:
        assert status == "awaiting_bank_details", ref
        assert reason == problem and reason.startswith("not paid: the IBAN on record is "), (ref, reason)
    events = con.execute(
        "SELECT COUNT(*) FROM refund_events WHERE from_status = 'due' AND to_status = 'awaiting_bank_details' "
        "AND actor = 'weekly run'"
    ).fetchone()[0]
    assert events == 3
    assert payable_refunds(con, WEEK21)["refund_ref"].to_list() == ["R-OK"]


def test_a_held_back_refund_asks_the_customer_for_new_bank_details(own_ibans: Shop) -> None:
    """Holding a refund back for bank details is a customer-facing event (DESIGN section 2): the customer is
    asked for an IBAN with a `bank_details_needed` notification, as intake does for a refund without one.
    Without it the refund waits for details nobody asked for."""
    before = own_ibans.notifications("R-PLATFORM", "M2")
    _, held = hold_unpayable(own_ibans.con, payable_refunds(own_ibans.con, WEEK21), [PLATFORM_IBAN], actor="weekly run")
    assert "R-PLATFORM" in held["refund_ref"].to_list()
    assert own_ibans.notifications("R-PLATFORM", "M2") == [*before, "bank_details_needed"]


def test_release_posts_collections_fees_and_payouts_once(books: duckdb.DuckDBPyConnection) -> None:
    """Recording files moves no money. Releasing them posts each collection against the merchant's receivable
    (per-refund fees to the platform's fee income first) and each payout file's sum from customers:payable to
    payouts in transit; refunds become sent, collections released, files released by whoever released them; the ledger
    still sums to zero and a second release is refused without posting anything."""
    collections = record_collections(books, WEEK21, date(2024, 5, 21))
    payouts = record_payouts(books, WEEK21)
    assert set(transfer_kinds(books)) == {"refund_booked", "instalments_cancelled", "merchant_balance"}

    released = release(books, collections, payouts, by="anna")
    assert sorted(released["file_name"]) == sorted([collections.file_name, payouts.file_name])
    kinds = transfer_kinds(books)
    assert (kinds["collection_released"], kinds["collection_fee"], kinds["payout_released"]) == (4, 2, 1)
    assert balance(books, accounts.PLATFORM_FEES) == -2 * FEE
    assert balance(books, accounts.COLLECTIONS_IN_TRANSIT) == 6000 + 550 + 750 + 1200
    assert balance(books, accounts.PAYOUTS_IN_TRANSIT) == -1500
    for merchant_id in ("M3", "M6"):  # owed for its refunds (and fees), now being collected
        assert balance(books, accounts.merchant_receivable(merchant_id)) == 0, merchant_id
    assert balance(books, accounts.merchant_receivable("M1")) == 500  # R1L, still in its waiting period
    assert balance(books, accounts.merchant_receivable("M4")) == 900  # skipped: still owed
    assert ledger_total(books) == 0 and unbalanced_transfers(books).is_empty()

    assert statuses(books)["R2"] == "sent"
    assert statuses(books)["R1"] == "due"  # collected, not yet paid
    assert set(books.execute("SELECT DISTINCT status FROM collections").fetchall()) == {("released",)}
    registry = list_files(books)
    assert registry.select("status", "released_by").unique().rows() == [("released", "anna")]
    assert registry["released_at"].null_count() == 0

    before = postings_snapshot(books)
    with pytest.raises(ReleaseRefused, match=re.escape(f"{payouts.file_name} is released, not waiting for release")):
        release(books, payouts, by="bob")
    assert postings_snapshot(books) == before
    assert list_files(books)["released_by"].to_list() == ["anna", "anna"]


def test_release_refuses_a_file_changed_on_disk_or_missing(books: duckdb.DuckDBPyConnection) -> None:
    """A file whose bytes no longer hash to what was recorded, or that is gone from the outbox, is refused with
    a message naming it, and nothing at all is posted, not even for the good file released with it."""
    collections = record_collections(books, WEEK21, date(2024, 5, 21))
    payouts = record_payouts(books, WEEK21)
    before = postings_snapshot(books)
    names = [collections.file_name, payouts.file_name]
    changed = {collections.file_name: collections.sha256, payouts.file_name: "0" * 64}
    with pytest.raises(ReleaseRefused, match=re.escape(f"{payouts.file_name} changed on disk since it was written")):
        release_files(books, names, by="anna", sha256_on_disk=changed)
    missing = {collections.file_name: collections.sha256, payouts.file_name: None}
    with pytest.raises(ReleaseRefused, match=re.escape(f"{payouts.file_name} is not in the outbox")):
        release_files(books, names, by="anna", sha256_on_disk=missing)
    with pytest.raises(ReleaseRefused, match=re.escape("not in the file registry: NOPE.xml")):
        release_files(books, ["NOPE.xml"], by="anna", sha256_on_disk={})
    assert postings_snapshot(books) == before
    assert list_files(books)["status"].to_list() == ["written", "written"]
    assert statuses(books)["R2"] == "in_file"


def test_release_refuses_a_file_whose_control_sum_is_not_the_ledgers(books: duckdb.DuckDBPyConnection) -> None:
    """A registry row whose control sum differs from its transactions is a problem that blocks its release."""
    payouts = record_payouts(books, WEEK21)
    assert file_problems(books).is_empty()
    books.execute("UPDATE payment_files SET ctrl_sum_cents = ctrl_sum_cents + 1")
    assert file_problems(books).rows() == [(payouts.file_name, "control sum 1501 cents, items 1500, ledger 1500")]
    before = postings_snapshot(books)
    with pytest.raises(ReleaseRefused, match=re.escape(f"{payouts.file_name}: control sum 1501 cents")):
        release(books, payouts)
    assert postings_snapshot(books) == before


def test_a_refund_in_two_live_files_is_a_problem(books: duckdb.DuckDBPyConnection) -> None:
    """The registry knows if a refund slipped into two live files: both are flagged and neither is released."""
    first = record_payouts(books, WEEK21)
    second = "PO-2024-W21-0002"
    books.execute(
        "INSERT INTO payment_files SELECT ? AS file_id, ? AS file_name, kind, message_type, partition_key, run_label, "
        "2 AS seq, n_tx, ctrl_sum_cents, sha256, requested_on, validation, status, created_at, released_at, "
        "released_by, prepared_by, cancelled_at, cancelled_by, cancel_reason FROM payment_files",
        [second, f"{second}.xml"],
    )
    books.execute(
        "INSERT INTO payment_file_items SELECT ?, end_to_end_id, payment_info_id, refund_id, collection_id, "
        "merchant_id, amount_cents, outcome FROM payment_file_items",
        [second],
    )
    problems = file_problems(books).filter(pl.col("problem").str.starts_with("also in another file"))
    assert sorted(problems["file_name"]) == [first.file_name, f"{second}.xml"]
    with pytest.raises(ReleaseRefused, match="also in another file"):
        release(books, first)
