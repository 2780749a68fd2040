"""What happens to recorded refunds: they become due, wait for bank details or balance, or are
taken in hand by finance ops. Queries for the refund list and its history live here too."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from ledger.bookings import book_refunds
from ledger.db import transaction
from ledger.lifecycle import MANUAL, IllegalTransition, Status, change_status, note_event
from ledger.rules import NO_IBAN
from ledger.schemas import RefundView

NIGHTLY = "nightly schedule"


class RefundNotFound(LookupError):
    """No refund, or more than one, answers to the reference given."""


class BankDetailsRefused(ValueError):
    """New bank details that cannot be used (invalid IBAN, not the customer's account, money in flight)."""


def find_refund(con: duckdb.DuckDBPyConnection, ref: str, merchant_id: str | None = None) -> dict:
    """The refund with shop reference (or platform id) `ref`; `merchant_id` settles a shared reference."""
    rows = con.execute(
        "SELECT r.*, m.funding, m.iban AS merchant_iban FROM refunds r JOIN merchants m USING (merchant_id) "
        "WHERE (r.refund_ref = ? OR r.refund_id = ?) AND (? IS NULL OR r.merchant_id = ?)",
        [ref, ref, merchant_id, merchant_id],
    ).pl()
    if rows.is_empty():
        raise RefundNotFound(f"no refund {ref}" + (f" for merchant {merchant_id}" if merchant_id else ""))
    if rows.height > 1:
        owners = ", ".join(sorted(rows["merchant_id"]))
        raise RefundNotFound(f"refund reference {ref} is used by several merchants ({owners}); name the merchant")
    return rows.row(0, named=True)


def make_refunds_due(con: duckdb.DuckDBPyConnection, as_of: date, *, actor: str = NIGHTLY) -> dict[str, int]:
    """The nightly step: unblock what balances now cover, hand reopened refunds back to the pipeline,
    and make due every refund whose waiting period ends on or before `as_of`. Returns counts by change."""
    with transaction(con):
        unblocked = _unblock_covered(con, actor)
        reopened = _resume_reopened(con, as_of, actor)
        waiting = con.execute(
            "SELECT refund_id, 'due' AS to_status, 'waiting period ended on ' || CAST(due_on AS VARCHAR) AS reason "
            "FROM refunds WHERE status = 'scheduled' AND due_on <= ?",
            [as_of],
        ).pl()
        change_status(con, waiting, actor=actor)
    return {"unblocked": unblocked, "reopened": reopened, "due": waiting.height}


def _unblock_covered(con: duckdb.DuckDBPyConnection, actor: str) -> int:
    """Blocked refunds of integrated merchants, oldest first, while the merchant's balance covers them."""
    blocked = con.execute(
        "SELECT r.refund_id, r.refund_ref, r.merchant_id, r.payout_cents, r.customer_iban, r.iban_problem, "
        "m.funding, COALESCE(-b.held, 0) AS available "
        "FROM refunds r JOIN merchants m USING (merchant_id) "
        "LEFT JOIN (SELECT account, SUM(amount_cents) AS held FROM postings GROUP BY account) b "
        "  ON b.account = 'merchant:' || r.merchant_id || ':balance' "
        "WHERE r.status = 'blocked' ORDER BY r.requested_on, r.source_file, r.source_line"
    ).pl()
    if blocked.is_empty():
        return 0
    fits = blocked.with_columns(
        (pl.col("payout_cents").cum_sum().over("merchant_id") <= pl.col("available"))
        .cum_min()
        .over("merchant_id")
        .alias("fits")
    ).filter("fits")
    if fits.is_empty():
        return 0
    book_refunds(con, fits)
    unusable = pl.col("customer_iban").is_null() | pl.col("iban_problem").is_not_null()
    changes = fits.select(
        "refund_id",
        pl.when(unusable).then(pl.lit("awaiting_bank_details")).otherwise(pl.lit("scheduled")).alias("to_status"),
        pl.when(unusable)
        .then(pl.format("merchant balance now covers it; {}", pl.coalesce("iban_problem", pl.lit(NO_IBAN))))
        .otherwise(pl.lit("merchant balance now covers it"))
        .alias("reason"),
    )
    change_status(con, changes, actor=actor)
    return fits.height


def _resume_reopened(con: duckdb.DuckDBPyConnection, as_of: date, actor: str) -> int:
    """Refunds finance ops set back to `open` rejoin the pipeline where they belong."""
    reopened = con.execute(
        "SELECT r.refund_id, "
        "CASE WHEN m.funding = 'integrated' AND NOT EXISTS "
        "       (SELECT 1 FROM transfers t WHERE t.transfer_id = 'booked:' || r.refund_id) THEN 'blocked' "
        "     WHEN r.customer_iban IS NULL OR r.iban_problem IS NOT NULL THEN 'awaiting_bank_details' "
        "     WHEN r.due_on <= ? THEN 'due' ELSE 'scheduled' END AS to_status, "
        "'reopened by finance ops' || COALESCE('; ' || r.iban_problem, '') AS reason "
        "FROM refunds r JOIN merchants m USING (merchant_id) WHERE r.status = 'open'",
        [as_of],
    ).pl()
    change_status(con, reopened, actor=actor)
    return reopened.height


def set_manual_status(
    con: duckdb.DuckDBPyConnection, ref: str, status: str, *, actor: str, reason: str, merchant_id: str | None = None
) -> dict:
    """Finance ops record progress by hand (open, in progress, already refunded). Audit only: no money moves."""
    if Status(status) not in MANUAL:
        manual = ", ".join(sorted(MANUAL))
        raise IllegalTransition(f"{status} is set by the pipeline, not by hand; by hand: {manual}")
    if not reason.strip():
        raise IllegalTransition("a manual status change needs a reason")
    refund = find_refund(con, ref, merchant_id)
    with transaction(con):
        change_status(
            con,
            pl.DataFrame({"refund_id": [refund["refund_id"]], "to_status": [status], "reason": [reason]}),
            actor=actor,
        )
    return find_refund(con, refund["refund_id"])


def update_bank_details(
    con: duckdb.DuckDBPyConnection,
    ref: str,
    *,
    iban: str | None,
    iban_problem: str | None,
    confirm: bool,
    today: date,
    actor: str,
    change_note: str = "",
    merchant_id: str | None = None,
) -> dict:
    """What the customer's link in the notification does: replace the IBAN, confirm it, or both.

    A confirmed IBAN makes the refund due at once; a new one replaces the old with an audit entry.
    `iban_problem` is the caller's verdict on the new IBAN (None when valid): a refused IBAN changes nothing.
    """
    refund = find_refund(con, ref, merchant_id)
    status = Status(refund["status"])
    if status in {Status.IN_FILE, Status.SENT, Status.COMPLETED, Status.REJECTED, Status.ALREADY_REFUNDED}:
        raise BankDetailsRefused(f"refund {refund['refund_ref']} is {status}: its bank details can no longer change")
    if iban is not None:
        problem = iban_problem or _not_the_customers(con, iban, refund)
        if problem:
            raise BankDetailsRefused(f"refund {refund['refund_ref']}: {problem}; nothing changed")
    elif refund["customer_iban"] is None:
        raise BankDetailsRefused(f"refund {refund['refund_ref']} has no IBAN to confirm; give one with --iban")
    with transaction(con):
        if iban is not None and iban != refund["customer_iban"]:
            con.execute(
                "UPDATE refunds SET customer_iban = ?, iban_problem = NULL WHERE refund_id = ?",
                [iban, refund["refund_id"]],
            )
            note_event(con, refund["refund_id"], status, actor=actor, reason=change_note or "bank details changed")
        if confirm:
            con.execute("UPDATE refunds SET iban_confirmed = TRUE WHERE refund_id = ?", [refund["refund_id"]])
        target = _after_bank_details(status, confirm)
        if target is not None:
            change_status(
                con,
                pl.DataFrame(
                    {
                        "refund_id": [refund["refund_id"]],
                        "to_status": [str(target)],
                        "reason": ["customer confirmed the IBAN" if confirm else "customer gave bank details"],
                        "due_on": [today if target is Status.DUE else None],
                    },
                    schema_overrides={"due_on": pl.Date},
                ),
                actor=actor,
            )
    return find_refund(con, refund["refund_id"])


def _after_bank_details(status: Status, confirm: bool) -> Status | None:
    if status in {Status.AWAITING_BANK_DETAILS, Status.RETURNED, Status.SCHEDULED}:
        return Status.DUE if confirm else (Status.SCHEDULED if status is not Status.SCHEDULED else None)
    return None  # blocked, due, open, in progress: the IBAN is kept, the status stays


def _not_the_customers(con: duckdb.DuckDBPyConnection, iban: str, refund: dict) -> str | None:
    if iban == refund["merchant_iban"]:
        return "that IBAN is the merchant's own account"
    row = con.execute("SELECT owner, kind FROM excluded_ibans WHERE iban = ?", [iban]).fetchone()
    if row:
        return f"that IBAN belongs to {row[0]} ({row[1].replace('_', ' ')}), not to the customer"
    return None


def list_refunds(
    con: duckdb.DuckDBPyConnection, *, status: str | None = None, merchant_id: str | None = None
) -> pl.DataFrame:
    """Refunds with what the customer gets and why they are where they are, oldest request first."""
    if status is not None:
        Status(status)  # an unknown status is an error, not an empty list
    frame = con.execute(
        "SELECT refund_id, refund_ref, merchant_id, order_id, payment_id, status, amount_cents, payout_cents, "
        "due_on, status_reason AS reason, requested_on, cancelled_instalments_cents FROM refunds "
        "WHERE (? IS NULL OR status = ?) AND (? IS NULL OR merchant_id = ?) "
        "ORDER BY requested_on, merchant_id, refund_ref",
        [status, status, merchant_id, merchant_id],
    ).pl()
    return RefundView.validate(frame)


def refund_history(con: duckdb.DuckDBPyConnection, ref: str, merchant_id: str | None = None) -> pl.DataFrame:
    """Every audit event of one refund, oldest first."""
    refund = find_refund(con, ref, merchant_id)
    return con.execute(
        "SELECT e.occurred_at AS at, r.refund_ref, e.refund_id, e.from_status, e.to_status, e.actor, e.reason "
        "FROM refund_events e JOIN refunds r USING (refund_id) WHERE e.refund_id = ? ORDER BY e.event_seq",
        [refund["refund_id"]],
    ).pl()


def status_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Refunds by status: how many, requested and to be paid out, in cents."""
    return con.execute(
        "SELECT status, COUNT(*) AS refunds, CAST(SUM(amount_cents) AS BIGINT) AS amount_cents, "
        "CAST(SUM(payout_cents) AS BIGINT) AS payout_cents FROM refunds GROUP BY status ORDER BY status"
    ).pl()
