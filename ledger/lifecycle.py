"""The refund lifecycle: statuses, the transitions allowed between them, and the audit trail.

Every status change goes through `change_status`, which refuses illegal transitions and writes one
audit event per refund (refund, from, to, actor, reason, timestamp) in the same transaction.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import duckdb
import polars as pl

from ledger.db import run_with_frames


class Status(StrEnum):
    """Refund statuses: the plenigo statuses plus the pipeline's internal stages."""

    SCHEDULED = "scheduled"  # in its waiting period
    AWAITING_BANK_DETAILS = "awaiting_bank_details"
    BLOCKED = "blocked"  # integrated merchant's balance does not cover it
    DUE = "due"
    IN_FILE = "in_file"
    SENT = "sent"
    COMPLETED = "completed"
    RETURNED = "returned"
    REJECTED = "rejected"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ALREADY_REFUNDED = "already_refunded"


S = Status
MANUAL = frozenset({S.OPEN, S.IN_PROGRESS, S.ALREADY_REFUNDED})
# Money is in flight or settled: finance ops may not move these by hand.
_NOT_BY_HAND = frozenset({S.IN_FILE, S.SENT, S.COMPLETED, S.REJECTED, S.ALREADY_REFUNDED})

TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.SCHEDULED, S.AWAITING_BANK_DETAILS, S.BLOCKED, S.REJECTED, S.COMPLETED}),
    S.SCHEDULED: frozenset({S.DUE, S.AWAITING_BANK_DETAILS}),
    S.AWAITING_BANK_DETAILS: frozenset({S.SCHEDULED, S.DUE}),
    S.BLOCKED: frozenset({S.SCHEDULED, S.DUE, S.AWAITING_BANK_DETAILS}),
    S.DUE: frozenset({S.IN_FILE, S.AWAITING_BANK_DETAILS, S.SCHEDULED}),
    S.IN_FILE: frozenset({S.SENT, S.DUE}),
    S.SENT: frozenset({S.COMPLETED, S.RETURNED, S.REJECTED, S.AWAITING_BANK_DETAILS}),
    # Finance ops may pay a returned refund again to the same account (the bank's reason was temporary).
    S.RETURNED: frozenset({S.AWAITING_BANK_DETAILS, S.SCHEDULED, S.DUE}),
    # `open` hands a refund back to the pipeline: the nightly run schedules it again.
    S.OPEN: frozenset({S.SCHEDULED, S.DUE, S.AWAITING_BANK_DETAILS, S.BLOCKED}),
    S.IN_PROGRESS: frozenset(),
    # A bank can return a transfer days after booking it.
    S.COMPLETED: frozenset({S.RETURNED, S.AWAITING_BANK_DETAILS}),
    S.REJECTED: frozenset(),
    S.ALREADY_REFUNDED: frozenset(),
}
# Any status that money has not yet left from may be taken in hand by finance ops.
TRANSITIONS = {
    src: targets | (MANUAL - {src} if src is not None and src not in _NOT_BY_HAND else frozenset())
    for src, targets in TRANSITIONS.items()
}


class IllegalTransition(Exception):
    """A status change the lifecycle does not allow."""


def allowed(src: Status | str | None, dst: Status | str) -> bool:
    """Whether a refund in `src` (None: not yet recorded) may move to `dst`."""
    return Status(dst) in TRANSITIONS[Status(src) if src is not None else None]


def check_transitions(changes: pl.DataFrame) -> None:
    """Raise IllegalTransition naming the first refund whose change is not allowed.

    `changes` has refund_ref (or refund_id), from_status and to_status.
    """
    pairs = changes.select("from_status", "to_status").unique()
    bad = [(src, dst) for src, dst in pairs.iter_rows() if not allowed(src, dst)]
    if bad:
        src, dst = bad[0]
        who = changes.filter(pl.col("from_status").eq_missing(src) & (pl.col("to_status") == dst)).row(0, named=True)
        name = who.get("refund_ref") or who.get("refund_id")
        raise IllegalTransition(f"refund {name}: {src or 'new'} -> {dst} is not an allowed status change")


def change_status(
    con: duckdb.DuckDBPyConnection,
    changes: pl.DataFrame,
    *,
    actor: str,
) -> pl.DataFrame:
    """Move refunds to new statuses and record an audit event for each. Runs inside the caller's transaction.

    `changes` has refund_id, to_status, reason (text) and optionally due_on. The current status is
    read from the ledger; the events written are returned.
    """
    if changes.is_empty():
        return _empty_events()
    current = run_with_frames(
        con,
        "SELECT r.refund_id, r.refund_ref, r.status AS from_status FROM refunds r SEMI JOIN changes USING (refund_id)",
        changes=changes,
    )
    merged = changes.join(current, on="refund_id", how="left")
    missing = merged.filter(pl.col("from_status").is_null())
    if not missing.is_empty():
        raise IllegalTransition(f"refund {missing['refund_id'][0]} is not in the ledger")
    check_transitions(merged)
    events = _events(merged, actor)
    updates = merged.select("refund_id", "to_status", "reason", *(["due_on"] if "due_on" in merged.columns else []))
    due_sql = ", due_on = COALESCE(u.due_on, refunds.due_on)" if "due_on" in updates.columns else ""
    run_with_frames(
        con,
        f"UPDATE refunds SET status = u.to_status, status_reason = u.reason{due_sql} "
        "FROM updates u WHERE refunds.refund_id = u.refund_id",
        updates=updates,
    )
    record_events(con, events)
    return events


def record_events(con: duckdb.DuckDBPyConnection, events: pl.DataFrame) -> None:
    """Append audit events (refund_id, from_status, to_status, actor, reason)."""
    run_with_frames(
        con,
        "INSERT INTO refund_events (event_id, refund_id, from_status, to_status, actor, reason, occurred_at) "
        "SELECT event_id, refund_id, from_status, to_status, actor, reason, current_timestamp FROM events",
        events=events,
    )


def note_event(con: duckdb.DuckDBPyConnection, refund_id: str, status: str, *, actor: str, reason: str) -> None:
    """An audit entry that changes no status (new bank details, say): from and to are the current status."""
    record_events(
        con,
        _events(
            pl.DataFrame(
                {"refund_id": [refund_id], "from_status": [str(status)], "to_status": [str(status)], "reason": [reason]}
            ),
            actor,
        ),
    )


def new_events(refunds: pl.DataFrame, *, actor: str) -> pl.DataFrame:
    """Audit events for refunds entering the lifecycle (refund_id, status, status_reason)."""
    changes = refunds.select(
        "refund_id",
        pl.lit(None, pl.String).alias("from_status"),
        pl.col("status").alias("to_status"),
        pl.col("status_reason").alias("reason"),
    )
    check_transitions(changes)
    return _events(changes, actor)


def _events(changes: pl.DataFrame, actor: str) -> pl.DataFrame:
    # Unique without a per-row random draw: a random 64-bit prefix per batch, then the row's number.
    batch = uuid.uuid4().hex[:16]
    return changes.select(
        pl.format("{}{}", pl.lit(batch), pl.int_range(pl.len()).cast(pl.String).str.zfill(8)).alias("event_id"),
        "refund_id",
        pl.col("from_status").cast(pl.String),
        pl.col("to_status").cast(pl.String),
        pl.lit(actor).alias("actor"),
        pl.col("reason").fill_null("").cast(pl.String),
    )


def _empty_events() -> pl.DataFrame:
    return pl.DataFrame(
        schema={c: pl.String for c in ["event_id", "refund_id", "from_status", "to_status", "actor", "reason"]}
    )
