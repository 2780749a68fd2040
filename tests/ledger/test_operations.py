"""Finance-ops operations in the books: pending files cancelled, four eyes on release, exceptions resolved
with the action that fits them (and a second person above the write-off limit), proposals reviewed,
returned collections presented again, merchants blocked. Each is audited; a refused one changes nothing."""

from __future__ import annotations

import dataclasses
from datetime import date

import duckdb
import pytest

from ledger.audit import OperationRefused, list_operations
from ledger.collections import list_collections, represent_collection
from ledger.exceptions import ApprovalPolicy, list_proposals, resolve_exception, review_proposal
from ledger.merchants import list_merchants, set_merchant_blocked
from ledger.payment_files import (
    ReleaseRefused,
    RunWindow,
    cancel_file,
    collectable_refunds,
    file_problems,
    list_files,
    payable_refunds,
    record_payout_file,
    release_files,
)
from ledger.postings import balance, ledger_total
from ledger.reconciliation import list_exceptions, reconcile_bank_file
from tests.ledger import test_payment_files, test_reconciliation
from tests.ledger.shop import Shop, merchant, order, postings_snapshot, refund
from tests.ledger.test_payment_files import (
    WEEK21,
    payout_file,
    plan,
    record_collections,
    record_payouts,
    release,
    statuses,
    transfer_kinds,
)
from tests.ledger.test_reconciliation import (
    WINDOW,
    collected,
    line,
    lines,
    returned_am04,
    status,
)

# The prepared books of the payment-file and reconciliation tests, as fixtures here too.
books = test_payment_files.books
sent = test_reconciliation.sent

TODAY = date(2024, 5, 27)


def open_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return list_exceptions(con)["exception_id"].to_list()


def unmatched(shop: Shop, sha: str, **fields) -> str:
    """Reconcile one line nobody can match; return its exception's id."""
    before = set(open_ids(shop.con))
    reconcile_bank_file(shop.con, file_name=f"{sha}.xml", sha256=sha, lines=lines(
        line(entry_ref=sha, counterparty_name="Nobody We Know", **fields)
    ))  # fmt: skip
    (new,) = set(open_ids(shop.con)) - before
    return new


def resolve(shop: Shop, ident: str, action: str, **kwargs) -> dict:
    kwargs.setdefault("by", "alice")
    kwargs.setdefault("reason", "checked with the bank")
    return resolve_exception(shop.con, ident, action, today=TODAY, **kwargs)


# ----------------------------------------------------------------------------------------- files


def test_a_cancelled_payout_file_puts_its_refunds_back_to_due(books: duckdb.DuckDBPyConnection) -> None:
    """Nothing moved before release, so nothing is reversed; the refunds are payable again and the next file
    of the week gets a new number; the cancelled file is never released."""
    first = record_payouts(books, WEEK21)
    refs = [r for r, s in statuses(books).items() if s == "in_file"]
    kinds = transfer_kinds(books)
    row = cancel_file(books, first.file_name, by="alice", reason="wrong execution date")
    assert row["status"] == "cancelled" and row["cancelled_by"] == "alice"
    assert {statuses(books)[r] for r in refs} == {"due"}
    assert transfer_kinds(books) == kinds
    assert sorted(payable_refunds(books, WEEK21)["refund_ref"].to_list()) == sorted(refs)
    second = record_payouts(books, WEEK21)
    assert second.seq == first.seq + 1 and file_problems(books).is_empty()
    with pytest.raises(ReleaseRefused, match="cancelled, not waiting"):
        release(books, first)
    with pytest.raises(OperationRefused, match="only a file waiting for release"):
        cancel_file(books, first.file_name, by="alice", reason="again")
    release(books, second)
    with pytest.raises(OperationRefused, match="released: only a file waiting"):
        cancel_file(books, second.file_name, by="alice", reason="too late")
    log = list_operations(books)
    assert log.height == 1 and log["operation"][0] == "cancel_file" and log["reason"][0] == "wrong execution date"


def test_a_cancelled_collection_file_frees_its_refunds_under_new_ids(books: duckdb.DuckDBPyConnection) -> None:
    """The merchants' refunds are collectable again; the new collections have new ids (so new EndToEndIds)
    and the mandate's first use is still FRST, since the bank never saw the cancelled one."""
    first = record_collections(books, WEEK21, WEEK21.cutoff)
    old = set(first.items["collection_id"].to_list())
    cancel_file(books, first.file_name, by="alice", reason="collection date wrong")
    assert set(list_collections(books, status="cancelled")["collection_id"].to_list()) == old
    collections, _ = plan(books, WEEK21, WEEK21.cutoff)
    assert collections.height == len(old) and not old & set(collections["collection_id"].to_list())
    assert "RCUR" not in collections.filter(collections["collection"] != "per_refund")["sequence_type"].to_list()
    second = record_collections(books, WEEK21, WEEK21.cutoff)
    assert second.items.height == len(old) and file_problems(books).is_empty()


def test_four_eyes_the_preparer_does_not_release(books: duckdb.DuckDBPyConnection) -> None:
    """The person who prepared the run cannot release its file (names compared without case or blanks);
    someone else can; an installation that turns four eyes off can let anyone."""
    prepared = dataclasses.replace(payout_file(books, WEEK21, payable_refunds(books, WEEK21)), prepared_by="Alice")
    record_payout_file(books, prepared, actor="weekly run")
    on_disk = {prepared.file_name: prepared.sha256}
    with pytest.raises(ReleaseRefused, match="prepared by Alice, who may not also release it"):
        release_files(books, [prepared.file_name], by=" alice ", sha256_on_disk=on_disk)
    assert list_files(books)["status"].to_list() == ["written"]
    assert release_files(books, [prepared.file_name], by="alice", sha256_on_disk=on_disk, four_eyes=False).height == 1


def test_a_second_person_releases_what_the_first_prepared(books: duckdb.DuckDBPyConnection) -> None:
    prepared = dataclasses.replace(payout_file(books, WEEK21, payable_refunds(books, WEEK21)), prepared_by="alice")
    record_payout_file(books, prepared, actor="weekly run")
    released = release_files(
        books, [prepared.file_name], by="bob", sha256_on_disk={prepared.file_name: prepared.sha256}
    )
    assert released["prepared_by"].to_list() == ["alice"]
    assert list_files(books)["released_by"].to_list() == ["bob"]


# ----------------------------------------------------------------------------------------- exceptions


def test_an_unmatched_debit_booked_as_a_bank_charge(sent: Shop) -> None:
    ident = unmatched(sent, "fee1", direction="DBIT", amount_cents=735, bank_tx_code="ACMT/MDOP/CHRG")
    done = resolve(sent, ident[:8], "bank_charge")
    assert done["amount_cents"] == 735 and done["exception_id"] == ident
    assert balance(sent.con, "platform:bank_charges") == 735
    assert ident not in open_ids(sent.con) and ledger_total(sent.con) == 0
    with pytest.raises(OperationRefused, match="already resolved"):
        resolve(sent, ident, "bank_charge")
    assert balance(sent.con, "platform:bank_charges") == 735
    log = list_operations(sent.con)
    assert log["operation"].to_list() == ["resolve_exception:bank_charge"] and log["actor"][0] == "alice"


def test_money_that_is_not_ours_is_owed_back_to_its_sender(sent: Shop) -> None:
    """A credit nobody can place: booked into the bank and owed back; its return, a debit, settles that."""
    came_in = unmatched(sent, "in1", direction="CRDT", amount_cents=5000)
    resolve(sent, came_in, "send_back")
    assert balance(sent.con, "platform:to_send_back") == -5000
    went_out = unmatched(sent, "out1", direction="DBIT", amount_cents=5000)
    resolve(sent, went_out, "send_back")
    assert balance(sent.con, "platform:to_send_back") == 0 and ledger_total(sent.con) == 0


def test_a_write_off_above_the_limit_needs_a_second_person(sent: Shop) -> None:
    """Refused without an approver, or approved by the resolver themself, and nothing changes; with a
    second person it is booked and the approver recorded. Below the limit one person is enough."""
    ident = unmatched(sent, "big1", direction="DBIT", amount_cents=20_000)
    limit = ApprovalPolicy(write_off_approval_above_cents=10_000)
    before = postings_snapshot(sent.con)
    with pytest.raises(OperationRefused, match="second person must approve"):
        resolve(sent, ident, "write_off", approval=limit)
    with pytest.raises(OperationRefused, match="cannot approve their own"):
        resolve(sent, ident, "write_off", approval=limit, approved_by="ALICE")
    assert postings_snapshot(sent.con) == before and ident in open_ids(sent.con)
    done = resolve(sent, ident, "write_off", approval=limit, approved_by="bob")
    assert done["approved_by"] == "bob" and balance(sent.con, "platform:write_offs") == 20_000
    row = sent.con.execute("SELECT approved_by, amount_cents FROM exception_resolutions").fetchall()
    assert row == [("bob", 20_000)]
    small = unmatched(sent, "small1", direction="DBIT", amount_cents=900)
    resolve(sent, small, "write_off", approval=limit)
    assert balance(sent.con, "platform:write_offs") == 20_900 and ledger_total(sent.con) == 0


def test_an_unmatched_line_matched_by_hand_books_the_payout(sent: Shop) -> None:
    """Matched to R1 (same amount): R1 is completed exactly as matching by EndToEndId would; a line of a
    different amount, or to a refund never sent, is refused and changes nothing."""
    ident = unmatched(sent, "m1", direction="DBIT", amount_cents=1000, bank_tx_code="PMNT/ICDT/ESCT")
    before = postings_snapshot(sent.con)
    with pytest.raises(OperationRefused, match="amounts must agree"):
        resolve(sent, ident, "match", refund="R2")
    with pytest.raises(OperationRefused, match=r"refund \(its reference or id\) or the collection"):
        resolve(sent, ident, "match")
    assert postings_snapshot(sent.con) == before
    done = resolve(sent, ident, "match", refund=sent.refund("R1", "M2")["refund_id"])
    assert done["kind"] == "payout" and status(sent, "R1") == "completed"
    assert balance(sent.con, "platform:payouts_in_transit") == -2500
    matched = sent.con.execute("SELECT outcome, event, note FROM bank_lines WHERE line_id = ?", [ident]).fetchone()
    assert matched[:2] == ("matched", "executed") and "alice" in matched[2]


def test_actions_must_fit_what_the_exception_is_about(sent: Shop) -> None:
    ident = unmatched(sent, "d1", direction="DBIT", amount_cents=444)
    with pytest.raises(OperationRefused, match="pay_again does not apply to an exception about a line"):
        resolve(sent, ident, "pay_again")
    with pytest.raises(OperationRefused, match="cannot be dismissed"):
        resolve(sent, ident, "dismiss")
    with pytest.raises(OperationRefused, match="unknown action"):
        resolve(sent, ident, "pay_twice")
    with pytest.raises(OperationRefused, match="reason is required"):
        resolve(sent, ident, "bank_charge", reason="  ")
    assert ident in open_ids(sent.con)


def test_a_line_whose_amount_could_not_be_read_is_dismissed_once_explained(sent: Shop) -> None:
    reconcile_bank_file(sent.con, file_name="bad.xml", sha256="bad", lines=lines(
        line(entry_ref="A", direction="CRDT", amount_cents=None, row_problem="line 40: amount '1.234' has 3 decimals"),
    ))  # fmt: skip
    (ident,) = open_ids(sent.con)
    before = postings_snapshot(sent.con)
    with pytest.raises(OperationRefused, match="does not apply"):
        resolve(sent, ident, "bank_charge")
    resolve(sent, ident, "dismiss", reason="bank resent the corrected statement")
    assert postings_snapshot(sent.con) == before and open_ids(sent.con) == []


def returned_unknown(sent: Shop) -> str:
    reconcile_bank_file(sent.con, file_name="z.xml", sha256="z", lines=lines(
        line(entry_ref="Z", direction="CRDT", amount_cents=2500, end_to_end_id="E2", bank_tx_code="PMNT/ICDT/RRTN",
             return_reason="MS03", reason_action="manual", reason_text="reason not specified"),
    ))  # fmt: skip
    (ident,) = open_ids(sent.con)
    return ident


def test_a_returned_payout_is_paid_again_to_the_same_account(sent: Shop) -> None:
    ident = returned_unknown(sent)
    with pytest.raises(OperationRefused, match="still returned"):
        resolve(sent, ident, "dismiss")
    resolve(sent, ident, "pay_again", reason="customer's bank had a technical problem")
    assert status(sent, "R2") == "due"
    assert payable_refunds(sent.con, RunWindow("2024-W22", "main", TODAY))["refund_ref"].to_list() == ["R2"]


def test_a_returned_payout_asks_the_customer_for_new_bank_details(sent: Shop) -> None:
    ident = returned_unknown(sent)
    resolve(sent, ident, "ask_bank_details", reason="the account looks closed")
    assert status(sent, "R2") == "awaiting_bank_details"
    assert "bank_details_needed" in sent.notifications("R2", "M2")


def own_account_collection_returned_twice(shop: Shop) -> str:
    """M1's collection returned for insufficient funds, presented again, returned again: escalated."""
    shop.load("merchants", [merchant()])
    shop.load("orders", [order("O1")])
    shop.load("refunds", [refund("R1", 1000, "O1")])
    from ledger.refunds import make_refunds_due

    make_refunds_due(shop.con, date(2024, 5, 20))
    returned_am04(shop, collected(shop, WINDOW, "DD-1")["collection_id"][0], "ret1")
    week22 = RunWindow("2024-W22", "main", date(2024, 5, 27))
    second = collected(shop, week22, "DD-2")["collection_id"][0]
    returned_am04(shop, second, "ret2")
    assert list_collections(shop.con, status="returned")["collection_id"].to_list() == [second]
    return second


def test_a_returned_collection_is_presented_again_by_hand(shop: Shop) -> None:
    """The automatic presentation is used up; finance ops present it a third time once the merchant has
    topped up: the refund is collectable in the next run, the exception resolved."""
    second = own_account_collection_returned_twice(shop)
    week23 = RunWindow("2024-W23", "main", date(2024, 6, 3))
    assert collectable_refunds(shop.con, week23)[0].is_empty()
    escalated = list_exceptions(shop.con).filter(list_exceptions(shop.con)["collection_id"] == second)
    resolve(shop, escalated["exception_id"][0], "represent", reason="merchant topped up")
    assert collectable_refunds(shop.con, week23)[0]["refund_ref"].to_list() == ["R1"]
    assert second in list_collections(shop.con, status="represented")["collection_id"].to_list()
    with pytest.raises(OperationRefused, match="only a returned collection"):
        represent_collection(shop.con, second, by="bob", reason="again")


def test_a_returned_collection_written_off_closes_the_merchants_debt(shop: Shop) -> None:
    second = own_account_collection_returned_twice(shop)
    assert balance(shop.con, "merchant:M1:receivable") == 1000
    first_exception = list_exceptions(shop.con)["exception_id"][0]  # the auto-presented one: informational
    resolve(shop, first_exception, "dismiss", reason="presented again automatically")
    (ident,) = open_ids(shop.con)
    resolve(shop, ident, "write_off", reason="merchant insolvent")
    assert balance(shop.con, "merchant:M1:receivable") == 0
    assert balance(shop.con, "platform:write_offs") == 1000
    assert list_collections(shop.con, status="written_off")["collection_id"].to_list() == [second]
    assert ledger_total(shop.con) == 0


def test_a_proposed_match_confirmed_books_it_and_declined_queues_it(sent: Shop) -> None:
    reconcile_bank_file(sent.con, file_name="q.xml", sha256="q1", lines=lines(
        line(entry_ref="Q", direction="DBIT", amount_cents=2500, counterparty_name="Zoe Mueller"),
    ))  # fmt: skip
    (proposal,) = list_proposals(sent.con)["line_id"].to_list()
    review_proposal(sent.con, proposal[:10], True, by="alice", reason="name and amount agree")
    assert status(sent, "R2") == "completed" and list_proposals(sent.con).is_empty()
    with pytest.raises(OperationRefused, match="already confirmed"):
        review_proposal(sent.con, proposal, False, by="bob", reason="changed my mind")
    reconcile_bank_file(sent.con, file_name="q2.xml", sha256="q2", lines=lines(
        line(entry_ref="Q2", direction="DBIT", amount_cents=1000, counterparty_name="Anna Kunde"),
    ))  # fmt: skip
    pending = list_proposals(sent.con)
    assert pending["refund_ref"].to_list() == ["R1"]
    review_proposal(sent.con, pending["line_id"][0], False, by="bob", reason="different customer")
    assert status(sent, "R1") == "sent"
    assert "declined by bob" in list_exceptions(sent.con)["reason"][0]


# ----------------------------------------------------------------------------------------- merchants


def test_a_blocked_merchant_is_neither_collected_from_nor_its_customers_paid(books: duckdb.DuckDBPyConnection) -> None:
    """Blocked by finance ops: out of both runs until unblocked; every change is in the operations log."""
    collectable = collectable_refunds(books, WEEK21)[0]["merchant_id"].unique().to_list()
    payable = payable_refunds(books, WEEK21)["merchant_id"].unique().to_list()
    target = next(m for m in collectable)
    other = next(m for m in payable)
    set_merchant_blocked(books, target, True, by="alice", reason="mandate disputed")
    set_merchant_blocked(books, other, True, by="alice", reason="under review")
    refunds, skipped = collectable_refunds(books, WEEK21)
    assert target not in refunds["merchant_id"].to_list()
    assert skipped.filter(skipped["merchant_id"] == target)["skip_reason"].to_list() == [
        "merchant is blocked by finance ops"
    ]
    assert other not in payable_refunds(books, WEEK21)["merchant_id"].to_list()
    assert set(list_merchants(books, blocked=True)["merchant_id"].to_list()) == {target, other}
    with pytest.raises(OperationRefused, match="already blocked"):
        set_merchant_blocked(books, target, True, by="alice", reason="again")
    set_merchant_blocked(books, other, False, by="bob", reason="review done")
    assert other in payable_refunds(books, WEEK21)["merchant_id"].to_list()
    assert list_operations(books)["operation"].to_list().count("block_merchant") == 2


def test_a_new_merchants_export_does_not_unblock_a_merchant(shop: Shop) -> None:
    shop.load("merchants", [merchant()])
    set_merchant_blocked(shop.con, "M1", True, by="alice", reason="mandate disputed")
    shop.load("merchants", [merchant(name="Shop M1 renamed")])
    assert list_merchants(shop.con, blocked=True)["name"].to_list() == ["Shop M1 renamed"]
    with pytest.raises(OperationRefused, match="no merchant 'M9'"):
        set_merchant_blocked(shop.con, "M9", True, by="alice", reason="typo")
