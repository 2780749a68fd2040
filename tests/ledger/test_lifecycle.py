"""The refund lifecycle: which status changes are allowed, that illegal ones are refused without a
trace, that every change is audited, and that manual changes by finance ops move no money."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import pytest

from ledger.intake import refund_id_for
from ledger.lifecycle import MANUAL, TRANSITIONS, IllegalTransition, Status, allowed, change_status
from ledger.postings import balances
from ledger.refunds import make_refunds_due, refund_history, set_manual_status
from tests.ledger.shop import Shop, merchant, order, postings_snapshot, refund, table_counts

S = Status


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        (None, S.SCHEDULED, True),
        (None, S.DUE, False),  # nothing is due before its waiting period
        (None, S.IN_FILE, False),
        (S.SCHEDULED, S.DUE, True),
        (S.DUE, S.IN_FILE, True),
        (S.IN_FILE, S.SENT, True),
        (S.SENT, S.COMPLETED, True),
        (S.SENT, S.RETURNED, True),
        (S.RETURNED, S.AWAITING_BANK_DETAILS, True),
        (S.COMPLETED, S.DUE, False),
        (S.COMPLETED, S.RETURNED, True),  # a bank may return a transfer after booking it
        (S.COMPLETED, S.DUE, False),
        (S.REJECTED, S.SCHEDULED, False),
        (S.IN_FILE, S.OPEN, False),  # money in flight: not by hand
        (S.SENT, S.IN_PROGRESS, False),
        (S.SCHEDULED, S.OPEN, True),
        (S.AWAITING_BANK_DETAILS, S.IN_PROGRESS, True),
        (S.BLOCKED, S.ALREADY_REFUNDED, True),
        (S.IN_PROGRESS, S.OPEN, True),
        (S.IN_PROGRESS, S.DUE, False),
        (S.OPEN, S.DUE, True),
        (S.ALREADY_REFUNDED, S.OPEN, False),
        (S.SCHEDULED, S.COMPLETED, False),
    ],
)
def test_allowed_transitions(src: Status | None, dst: Status, ok: bool) -> None:
    """The transition table, spot-checked against the status model of DESIGN.md."""
    assert allowed(src, dst) is ok
    assert allowed(None if src is None else str(src), str(dst)) is ok  # plain strings work too


def test_every_status_has_a_row_and_final_statuses_have_no_way_out() -> None:
    """Rejected and already refunded are final; completed leaves only when the bank returns the transfer;
    every status appears in the table."""
    assert set(TRANSITIONS) == {None, *Status}
    for final in (S.REJECTED, S.ALREADY_REFUNDED):
        assert TRANSITIONS[final] == frozenset()
    assert TRANSITIONS[S.COMPLETED] == frozenset({S.RETURNED, S.AWAITING_BANK_DETAILS})


def test_money_in_flight_cannot_be_taken_in_hand() -> None:
    """No manual status may be set on a refund in a payment file or sent to the bank."""
    for src in (S.IN_FILE, S.SENT, S.COMPLETED, S.REJECTED):
        assert not (TRANSITIONS[src] & MANUAL), src


def test_allowed_refuses_unknown_statuses() -> None:
    """A misspelt status is an error, not a silent False."""
    with pytest.raises(ValueError):
        allowed("scheduled", "payed")


# --- change_status on recorded refunds ----------------------------------------------------------


def build_books(shop: Shop) -> None:
    """M1 with four refunds: R1 scheduled, R2 rejected (over the limit), R3 completed (instalment
    reduced, nothing to pay), R4 scheduled."""
    shop.load("merchants", [merchant()])
    shop.load(
        "orders",
        [order("O1"), order("O2", amount_cents=40000, paid_cents=20000, instalments=4, instalments_paid=2)],
    )
    shop.load(
        "refunds",
        [
            refund("R1", 1000),
            refund("R2", 9000),
            refund("R3", 6000, "O2"),
            refund("R4", 500, requested_on="2024-05-11"),
        ],
    )


@pytest.fixture
def books(shop_from: Callable[[str, Callable[[Shop], None]], Shop]) -> Shop:
    """A private copy of the ledger build_books makes."""
    shop = shop_from("lifecycle_books", build_books)
    assert [shop.refund(r)["status"] for r in ("R1", "R2", "R3", "R4")] == [
        "scheduled",
        "rejected",
        "completed",
        "scheduled",
    ]
    return shop


def change(shop: Shop, ref: str, to: str, reason: str = "test", actor: str = "tester") -> pl.DataFrame:
    return change_status(
        shop.con,
        pl.DataFrame({"refund_id": [refund_id_for("M1", ref)], "to_status": [to], "reason": [reason]}),
        actor=actor,
    )


@pytest.mark.parametrize(("ref", "to"), [("R3", "due"), ("R2", "scheduled"), ("R1", "completed"), ("R1", "in_file")])
def test_illegal_change_is_refused_and_leaves_no_trace(books: Shop, ref: str, to: str) -> None:
    """completed -> due, rejected -> scheduled, scheduled -> completed or in_file: refused, nothing written."""
    before_status = books.refund(ref)["status"]
    before = table_counts(books.con)
    with pytest.raises(IllegalTransition, match=f"refund {ref}: {before_status} -> {to}"):
        change(books, ref, to)
    assert books.refund(ref)["status"] == before_status
    assert table_counts(books.con) == before


def test_change_of_an_unknown_refund_is_refused(books: Shop) -> None:
    """A refund id the ledger does not know cannot change status."""
    with pytest.raises(IllegalTransition, match="not in the ledger"):
        change_status(
            books.con, pl.DataFrame({"refund_id": ["RFNOPE"], "to_status": ["due"], "reason": ["x"]}), actor="t"
        )


def test_legal_change_updates_status_and_writes_one_event(books: Shop) -> None:
    """scheduled -> due: status and reason updated, one audit event with from, to, actor and reason."""
    events = change(books, "R1", "due", reason="confirmed by phone", actor="ops:alice")
    assert events.select("from_status", "to_status", "actor", "reason").rows() == [
        ("scheduled", "due", "ops:alice", "confirmed by phone")
    ]
    row = books.refund("R1")
    assert (row["status"], row["status_reason"]) == ("due", "confirmed by phone")
    assert books.events("R1").rows()[-1] == ("scheduled", "due", "ops:alice", "confirmed by phone")


def test_in_file_cannot_be_set_to_open_by_hand(books: Shop) -> None:
    """Once in a payment file a refund cannot be reopened by finance ops."""
    change(books, "R1", "due")
    change(books, "R1", "in_file")
    with pytest.raises(IllegalTransition, match="in_file -> open"):
        set_manual_status(books.con, "R1", "open", actor="ops:alice", reason="customer called")
    assert books.refund("R1")["status"] == "in_file"


def test_intake_writes_the_first_event_of_every_refund(books: Shop) -> None:
    """Each recorded refund's history starts with new -> its status, by intake, with the reason."""
    history = refund_history(books.con, "R2")
    assert history.height == 1
    first = history.row(0, named=True)
    assert (first["from_status"], first["to_status"], first["actor"]) == (None, "rejected", "intake")
    assert "limit EUR 80.00" in first["reason"]


# --- manual status changes -----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["due", "completed", "scheduled", "in_file", "rejected", "sent"])
def test_manual_status_only_open_in_progress_or_already_refunded(books: Shop, status: str) -> None:
    """Statuses the pipeline sets cannot be set by hand."""
    with pytest.raises(IllegalTransition, match="by hand"):
        set_manual_status(books.con, "R1", status, actor="ops:alice", reason="why not")
    assert books.refund("R1")["status"] == "scheduled"


@pytest.mark.parametrize("reason", ["", "   "])
def test_manual_status_needs_a_reason(books: Shop, reason: str) -> None:
    """No reason, no change."""
    with pytest.raises(IllegalTransition, match="needs a reason"):
        set_manual_status(books.con, "R1", "in_progress", actor="ops:alice", reason=reason)
    assert books.refund("R1")["status"] == "scheduled"


@pytest.mark.parametrize("status", ["open", "in_progress", "already_refunded"])
def test_manual_status_is_audited_and_moves_no_money(books: Shop, status: str) -> None:
    """A manual change records who, from, to and why, and leaves every posting as it was."""
    postings = postings_snapshot(books.con)
    money = balances(books.con).rows()
    transfers = table_counts(books.con)["transfers"]

    after = set_manual_status(books.con, "R1", status, actor="ops:alice", reason="customer phoned in")

    assert after["status"] == status
    assert books.events("R1").rows()[-1] == ("scheduled", status, "ops:alice", "customer phoned in")
    assert postings_snapshot(books.con) == postings
    assert balances(books.con).rows() == money
    assert table_counts(books.con)["transfers"] == transfers


def test_manual_status_on_a_final_refund_is_refused(books: Shop) -> None:
    """A completed or rejected refund cannot be reopened by hand."""
    for ref in ("R2", "R3"):
        with pytest.raises(IllegalTransition):
            set_manual_status(books.con, ref, "open", actor="ops:alice", reason="try again")


def test_already_refunded_is_final(books: Shop) -> None:
    """Once marked already refunded by hand, a refund goes nowhere, not even back to open."""
    set_manual_status(books.con, "R1", "already_refunded", actor="ops:alice", reason="paid by cheque")
    with pytest.raises(IllegalTransition):
        set_manual_status(books.con, "R1", "open", actor="ops:alice", reason="mistake")


def test_reopened_refund_rejoins_the_pipeline_on_the_nightly_run(books: Shop) -> None:
    """open -> the nightly run puts it back: due once its waiting period has ended, by the nightly actor."""
    set_manual_status(books.con, "R1", "in_progress", actor="ops:alice", reason="checking")
    set_manual_status(books.con, "R1", "open", actor="ops:alice", reason="checked")
    counts = make_refunds_due(books.con, books.refund("R1")["due_on"])
    assert counts["reopened"] == 1
    assert books.refund("R1")["status"] == "due"
    assert books.events("R1").rows()[-1] == ("open", "due", "nightly schedule", "reopened by finance ops")
