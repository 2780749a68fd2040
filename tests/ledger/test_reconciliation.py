"""Reconciliation in the books: bank lines matched to payouts and collections, returns handled by their
reason's action, nothing booked twice, everything unmatched in the exceptions queue."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from ledger.payment_files import (
    PaymentFile,
    RunWindow,
    collectable_refunds,
    payable_refunds,
    plan_collections,
    record_collection_file,
    record_payout_file,
    release_files,
)
from ledger.postings import balance, ledger_total
from ledger.reconciliation import (
    LINE_COLUMNS,
    ReturnPolicy,
    list_exceptions,
    reconcile_bank_file,
    repeated_lines,
    unaccounted_lines,
)
from ledger.refunds import make_refunds_due, update_bank_details
from tests.ledger.shop import IBAN_CUSTOMER, Shop, integrated, merchant, order, refund

WINDOW = RunWindow("2024-W21", "main", date(2024, 5, 20))


@pytest.fixture
def sent(shop: Shop) -> Shop:
    """Two refunds of an integrated merchant paid out in a released file (EndToEndIds E1, E2)."""
    shop.load("merchants", [merchant(), integrated("M2", balance_cents=100_000)])
    shop.load("orders", [order("O1", "M2"), order("O2", "M2", customer_name="Zoé Müller")])
    shop.load("refunds", [refund("R1", 1000, "O1", merchant_id="M2"), refund("R2", 2500, "O2", merchant_id="M2")])
    make_refunds_due(shop.con, date(2024, 5, 20))
    payable = payable_refunds(shop.con, WINDOW)
    items = payable.select(
        pl.format("E{}", pl.col("refund_ref").str.slice(1)).alias("end_to_end_id"),
        pl.lit("PO-1").alias("payment_info_id"), "refund_id", "merchant_id",
        pl.col("payout_cents").alias("amount_cents"),
    )  # fmt: skip
    record_payout_file(
        shop.con,
        PaymentFile("PO-1", "PO-1.xml", "payout", "pain.001.001.03", WINDOW, 1, "abc", date(2024, 5, 21), "valid",
                    items),
        actor="test",
    )  # fmt: skip
    release_files(shop.con, ["PO-1.xml"], by="alice", sha256_on_disk={"PO-1.xml": "abc"})
    return shop


def line(**fields) -> dict:
    row = {c: None for c in LINE_COLUMNS}
    row.update(message_type="camt.054.001.08", message_id="BANK-1", account_iban="DE75512108001245126199",
               status="BOOK", currency="EUR", reversal=False, booking_date=date(2024, 5, 21),
               row_problem=None, reason_action=None, reason_text=None)  # fmt: skip
    row.update(fields)
    return row


def lines(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), infer_schema_length=None).with_columns(
        pl.col("amount_cents").cast(pl.Int64), pl.col("charges_cents").cast(pl.Int64)
    )


def status(shop: Shop, ref: str) -> str:
    return shop.refund(ref, "M2")["status"]


def test_booked_payout_completes_the_refund_and_empties_transit(sent: Shop) -> None:
    """A debit booked with our EndToEndId completes the refund; the money leaves the bank account."""
    done = reconcile_bank_file(sent.con, file_name="c1.xml", sha256="s1", lines=lines(
        line(entry_ref="N1", direction="DBIT", amount_cents=1000, end_to_end_id="E1", bank_tx_code="PMNT/ICDT/ESCT"),
        line(entry_ref="N2", direction="DBIT", amount_cents=2500, end_to_end_id="E2", bank_tx_code="PMNT/ICDT/ESCT"),
    ))  # fmt: skip
    assert (done.matched, done.exceptions) == (2, 0)
    assert (status(sent, "R1"), status(sent, "R2")) == ("completed", "completed")
    assert balance(sent.con, "platform:payouts_in_transit") == 0
    assert ledger_total(sent.con) == 0 and unaccounted_lines(sent.con).is_empty()


def test_returned_payout_asks_for_new_bank_details_and_owes_the_customer_again(sent: Shop) -> None:
    """AC04 (account closed): the refund goes back to awaiting bank details with a notification, the money is
    back in the customer payable, and the bank's charge is posted."""
    payable_before = balance(sent.con, "customers:payable")
    reconcile_bank_file(sent.con, file_name="c2.xml", sha256="s2", lines=lines(
        line(entry_ref="N9", direction="CRDT", amount_cents=1000, end_to_end_id="E1", bank_tx_code="PMNT/RCDT/RRTN",
             return_reason="AC04", reason_action="ask_new_iban", reason_text="account closed", charges_cents=150),
    ))  # fmt: skip
    assert status(sent, "R1") == "awaiting_bank_details"
    assert balance(sent.con, "customers:payable") == payable_before - 1000
    assert balance(sent.con, "platform:bank_charges") == 150
    notes = sent.notifications("R1", "M2")
    assert "refund_returned" in notes
    assert ledger_total(sent.con) == 0


def test_unknown_reason_goes_to_exceptions_never_to_a_default_action(sent: Shop) -> None:
    reconcile_bank_file(sent.con, file_name="c3.xml", sha256="s3", lines=lines(
        line(entry_ref="N7", direction="CRDT", amount_cents=2500, end_to_end_id="E2", bank_tx_code="PMNT/ICDT/RRTN",
             return_reason="ZZ99"),
    ))  # fmt: skip
    assert status(sent, "R2") == "returned"
    queue = list_exceptions(sent.con)
    assert queue["refund_ref"].to_list() == ["R2"] and "ZZ99" in queue["reason"][0]


def test_the_same_booking_twice_is_booked_once(sent: Shop) -> None:
    """The same file twice, and a statement repeating a notification's line, book nothing again."""
    booking = line(entry_ref="N1", direction="DBIT", amount_cents=1000, end_to_end_id="E1")
    first = reconcile_bank_file(sent.con, file_name="n.xml", sha256="a", lines=lines(booking))
    again = reconcile_bank_file(sent.con, file_name="n.xml", sha256="a", lines=lines(booking))
    statement = reconcile_bank_file(sent.con, file_name="s.xml", sha256="b",
                                    lines=lines({**booking, "message_type": "camt.053.001.08"}))  # fmt: skip
    assert (first.matched, again.already_imported, statement.new_lines) == (1, True, 0)
    settled = sent.con.execute("SELECT COUNT(*) FROM transfers WHERE kind = 'payout_executed'").fetchone()[0]
    assert settled == 1


def test_a_statement_books_only_its_lines_not_booked_before(sent: Shop) -> None:
    """A statement whose lines are partly known (a notification booked them) books the others alone, whatever
    their order in the file."""
    first = line(entry_ref="N1", direction="DBIT", amount_cents=1000, end_to_end_id="E1")
    second = line(entry_ref="N2", direction="DBIT", amount_cents=2500, end_to_end_id="E2")
    unknown = line(entry_ref="N3", direction="CRDT", amount_cents=777, counterparty_name="Somebody Else")
    reconcile_bank_file(sent.con, file_name="n.xml", sha256="a", lines=lines(first))
    statement = lines(*({**row, "message_type": "camt.053.001.08"} for row in (unknown, first, second)))
    done = reconcile_bank_file(sent.con, file_name="s.xml", sha256="b", lines=statement)
    assert (done.lines, done.new_lines, done.matched, done.exceptions) == (3, 2, 1, 1)
    stored = sent.con.execute("SELECT entry_ref, file_name FROM bank_lines ORDER BY entry_ref").fetchall()
    assert stored == [("N1", "n.xml"), ("N2", "s.xml"), ("N3", "s.xml")]
    assert status(sent, "R2") == "completed" and repeated_lines(sent.con).is_empty()
    assert repeated_lines(sent.con).is_empty()


def test_a_line_recorded_twice_past_the_reconciliation_is_flagged(sent: Shop) -> None:
    """bank_lines has no key on line_id (the reconciliation checks it): `repeated_lines`, which the asset check
    runs, finds a line written a second time by anything else."""
    booking = line(entry_ref="N1", direction="DBIT", amount_cents=1000, end_to_end_id="E1")
    reconcile_bank_file(sent.con, file_name="n.xml", sha256="a", lines=lines(booking))
    assert repeated_lines(sent.con).is_empty()
    sent.con.execute("INSERT INTO bank_lines SELECT * FROM bank_lines")
    repeated = repeated_lines(sent.con)
    assert repeated.height == 1 and repeated["times"].to_list() == [2]


def test_unreadable_unmatched_and_pending_lines_are_never_dropped(sent: Shop) -> None:
    done = reconcile_bank_file(sent.con, file_name="x.xml", sha256="x", lines=lines(
        line(entry_ref="A", direction="CRDT", amount_cents=None, row_problem="line 40: amount '1.234' has 3 decimals"),
        line(entry_ref="B", direction="CRDT", amount_cents=777, counterparty_name="Somebody Else"),
        line(entry_ref="C", direction="DBIT", amount_cents=1000, end_to_end_id="E1", status="PDNG"),
    ))  # fmt: skip
    assert (done.exceptions, done.ignored, done.matched) == (2, 1, 0)
    reasons = " ".join(list_exceptions(sent.con)["reason"].to_list())
    assert "3 decimals" in reasons and "no payment or collection of ours" in reasons
    assert status(sent, "R1") == "sent"
    assert unaccounted_lines(sent.con).is_empty()


def test_a_batch_booking_without_details_settles_the_whole_file(sent: Shop) -> None:
    done = reconcile_bank_file(sent.con, file_name="b.xml", sha256="b1", lines=lines(
        line(entry_ref="BATCH", direction="DBIT", amount_cents=3500, payment_info_id="PO-1"),
    ))  # fmt: skip
    assert done.matched == 2
    assert (status(sent, "R1"), status(sent, "R2")) == ("completed", "completed")


def test_a_batch_whose_amount_differs_is_an_exception(sent: Shop) -> None:
    done = reconcile_bank_file(sent.con, file_name="b.xml", sha256="b2", lines=lines(
        line(entry_ref="BATCH", direction="DBIT", amount_cents=3400, payment_info_id="PO-1"),
    ))  # fmt: skip
    assert (done.matched, done.exceptions) == (0, 1)
    assert status(sent, "R1") == "sent"


def test_pain002_reject_puts_the_refund_back(sent: Shop) -> None:
    """A pain.002 RJCT (AC01, IBAN wrong): the money never left; the customer is asked for a new IBAN."""
    reconcile_bank_file(sent.con, file_name="p.xml", sha256="p1", lines=lines(
        line(message_type="pain.002.001.03", message_id="PO-1", status="RJCT", direction=None, amount_cents=1000,
             end_to_end_id="E1", return_reason="AC01", reason_action="ask_new_iban", reason_text="IBAN incorrect"),
    ))  # fmt: skip
    assert status(sent, "R1") == "awaiting_bank_details"
    assert balance(sent.con, "platform:payouts_in_transit") == -2500
    assert ledger_total(sent.con) == 0


def test_similar_line_is_proposed_not_booked(sent: Shop) -> None:
    done = reconcile_bank_file(sent.con, file_name="q.xml", sha256="q1", lines=lines(
        line(entry_ref="Q", direction="DBIT", amount_cents=2500, counterparty_name="Zoe Mueller"),
    ))  # fmt: skip
    assert (done.proposed, done.matched) == (1, 0)
    assert status(sent, "R2") == "sent"
    proposal = sent.con.execute("SELECT matched_kind, status FROM proposed_matches").fetchall()
    assert proposal == [("payout", "proposed")]
    assert IBAN_CUSTOMER  # the customer's account is never the statement's own


def test_a_returned_payout_is_paid_again_once_the_customer_gives_new_details(sent: Shop) -> None:
    """Returned (AC04), new IBAN confirmed: the refund is payable again, goes into a second file and is
    released and settled under that file's own transfer ids; the first payout stays returned."""
    reconcile_bank_file(sent.con, file_name="r.xml", sha256="r1", lines=lines(
        line(entry_ref="R", direction="CRDT", amount_cents=1000, end_to_end_id="E1", bank_tx_code="PMNT/ICDT/RRTN",
             return_reason="AC04", reason_action="ask_new_iban", reason_text="account closed"),
    ))  # fmt: skip
    assert payable_refunds(sent.con, WINDOW).is_empty()
    update_bank_details(sent.con, "R1", iban="FR7630006000011234567890189", iban_problem=None, confirm=True,
                        today=date(2024, 5, 27), actor="customer", merchant_id="M2")  # fmt: skip
    again = payable_refunds(sent.con, RunWindow("2024-W22", "main", date(2024, 5, 27)))
    assert again["refund_ref"].to_list() == ["R1"]
    items = again.select(pl.lit("E1B").alias("end_to_end_id"), pl.lit("PO-2").alias("payment_info_id"), "refund_id",
                         "merchant_id", pl.col("payout_cents").alias("amount_cents"))  # fmt: skip
    record_payout_file(sent.con, PaymentFile("PO-2", "PO-2.xml", "payout", "pain.001.001.03",
                                             RunWindow("2024-W22", "main", date(2024, 5, 27)), 1, "def",
                                             date(2024, 5, 28), "valid", items), actor="test")  # fmt: skip
    release_files(sent.con, ["PO-2.xml"], by="alice", sha256_on_disk={"PO-2.xml": "def"})
    reconcile_bank_file(sent.con, file_name="ok.xml", sha256="ok", lines=lines(
        line(entry_ref="S", direction="DBIT", amount_cents=1000, end_to_end_id="E1B", bank_tx_code="PMNT/ICDT/ESCT"),
    ))  # fmt: skip
    assert status(sent, "R1") == "completed"
    kinds = dict(sent.con.execute("SELECT kind, COUNT(*) FROM transfers WHERE refund_id = ? GROUP BY kind",
                                  [sent.refund("R1", "M2")["refund_id"]]).fetchall())  # fmt: skip
    assert (kinds["payout_executed"], kinds["payout_returned"]) == (2, 1)
    # Each release is one transfer per file: PO-1 with R1 and R2, then PO-2 with R1 alone.
    released = sent.con.execute(
        "SELECT t.transfer_id, p.amount_cents FROM transfers t JOIN postings p USING (transfer_id) "
        "WHERE t.kind = 'payout_released' AND p.account = 'customers:payable' ORDER BY 1"
    ).fetchall()
    assert released == [("pay:PO-1", 3500), ("pay:PO-2", 1000)]
    assert balance(sent.con, "platform:payouts_in_transit") == -2500  # only R2 still on its way
    assert ledger_total(sent.con) == 0


def test_return_charges_can_be_passed_to_the_merchant(sent: Shop) -> None:
    """With the bank profile's return_charges_to = merchant, the bank's charge on a return is the merchant's."""
    merchant_pays = ReturnPolicy(charges_to="merchant")
    reconcile_bank_file(sent.con, file_name="c.xml", sha256="c", policy=merchant_pays, lines=lines(
        line(entry_ref="N9", direction="CRDT", amount_cents=1000, end_to_end_id="E1", bank_tx_code="PMNT/ICDT/RRTN",
             return_reason="AC04", reason_action="ask_new_iban", charges_cents=150),
    ))  # fmt: skip
    assert balance(sent.con, "merchant:M2:receivable") == 150
    assert balance(sent.con, "platform:bank_charges") == 0
    assert ledger_total(sent.con) == 0


def collected(shop: Shop, week: RunWindow, file_id: str) -> pl.DataFrame:
    """M1's due refunds collected in a released file `file_id`; returns the collections."""
    refunds, _ = collectable_refunds(shop.con, week)
    collections, covered = plan_collections(shop.con, refunds, week, collection_date=week.cutoff,
                                            per_refund_fee_cents=0)  # fmt: skip
    items = collections.select(pl.format("{}-DD", pl.col("collection_id")).alias("end_to_end_id"),
                               pl.lit(f"{file_id}-1").alias("payment_info_id"), "collection_id", "merchant_id",
                               "amount_cents")  # fmt: skip
    payment_file = PaymentFile(file_id, f"{file_id}.xml", "collection", "pain.008.001.02", week, 1, "h" + file_id,
                               week.cutoff, "valid", items)  # fmt: skip
    record_collection_file(shop.con, payment_file, collections, covered)
    release_files(shop.con, [f"{file_id}.xml"], by="alice", sha256_on_disk={f"{file_id}.xml": "h" + file_id})
    return collections


def returned_am04(shop: Shop, collection_id: str, sha: str) -> None:
    reconcile_bank_file(shop.con, file_name=f"{sha}.xml", sha256=sha, lines=lines(
        line(entry_ref=sha, direction="DBIT", amount_cents=1000, end_to_end_id=f"{collection_id}-DD",
             bank_tx_code="PMNT/IDDT/UPDD", return_reason="AM04", reason_action="retry"),
    ))  # fmt: skip


def test_a_batch_naming_the_collection_block_without_its_sequence_type_books_it(shop: Shop) -> None:
    """A direct-debit payment block is named after its sequence type (`DD-1-1-FRST`); a bank booking the batch
    under the block's name without it (`DD-1-1`) books the collections of that block, for their sum."""
    shop.load("merchants", [merchant()])
    shop.load("orders", [order("O1"), order("O2")])
    shop.load("refunds", [refund("R1", 1000, "O1"), refund("R2", 2500, "O2")])
    make_refunds_due(shop.con, date(2024, 5, 20))
    refunds, _ = collectable_refunds(shop.con, WINDOW)
    collections, covered = plan_collections(shop.con, refunds, WINDOW, collection_date=WINDOW.cutoff,
                                            per_refund_fee_cents=0)  # fmt: skip
    items = collections.select(pl.format("{}-DD", pl.col("collection_id")).alias("end_to_end_id"),
                               pl.lit("DD-1-1-FRST").alias("payment_info_id"), "collection_id", "merchant_id",
                               "amount_cents")  # fmt: skip
    record_collection_file(shop.con, PaymentFile("DD-1", "DD-1.xml", "collection", "pain.008.001.02", WINDOW, 1,
                                                 "h", WINDOW.cutoff, "valid", items), collections, covered)  # fmt: skip
    release_files(shop.con, ["DD-1.xml"], by="alice", sha256_on_disk={"DD-1.xml": "h"})
    total = int(collections["amount_cents"].sum())
    result = reconcile_bank_file(shop.con, file_name="batch.xml", sha256="batch", lines=lines(
        line(entry_ref="B", direction="CRDT", amount_cents=total, payment_info_id="DD-1-1",
             bank_tx_code="PMNT/IDDT/ESDD"),
    ))  # fmt: skip
    assert result.matched == collections.height
    assert set(shop.con.execute("SELECT status FROM collections").fetchall()) == {("booked",)}
    assert balance(shop.con, "platform:collections_in_transit") == 0


def test_a_collection_returned_for_insufficient_funds_is_presented_again_once(shop: Shop) -> None:
    """AM04: the merchant's receivable is reopened and its refunds are collected again in the next run; a second
    AM04 on the re-presentation is escalated and the refunds are not presented a third time."""
    shop.load("merchants", [merchant()])
    shop.load("orders", [order("O1")])
    shop.load("refunds", [refund("R1", 1000, "O1")])
    make_refunds_due(shop.con, date(2024, 5, 20))
    first = collected(shop, WINDOW, "DD-1")["collection_id"][0]
    returned_am04(shop, first, "ret1")
    assert balance(shop.con, "merchant:M1:receivable") == 1000
    assert "presented again" in list_exceptions(shop.con)["reason"][0]
    week22 = RunWindow("2024-W22", "main", date(2024, 5, 27))
    second = collected(shop, week22, "DD-2")
    assert second["sequence_type"].to_list() == ["RCUR"]
    returned_am04(shop, second["collection_id"][0], "ret2")
    assert collectable_refunds(shop.con, RunWindow("2024-W23", "main", date(2024, 6, 3)))[0].is_empty()
    assert "escalate" in list_exceptions(shop.con)["reason"][1]
    assert ledger_total(shop.con) == 0
