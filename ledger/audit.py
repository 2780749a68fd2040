"""The operations log: every operation finance ops do by hand, append-only, with who, who approved and why.

Refunds keep their own audit trail (`refund_events`); this log covers what has no refund of its own (a
payment file cancelled, a merchant blocked, an exception resolved) and names the refunds it touched.
"""

from __future__ import annotations

import uuid

import duckdb
import polars as pl


class OperationRefused(Exception):
    """An operation that must not be done as asked; the message says why and what to do instead."""


def require(text: str, what: str) -> str:
    """A name or reason an operation cannot do without, stripped; refuse when it is blank."""
    if not text or not text.strip():
        raise OperationRefused(f"{what} is required")
    return text.strip()


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two recorded names are the same person (case and surrounding blanks aside)."""
    return bool(a and b) and a.strip().casefold() == b.strip().casefold()


def log_operation(
    con: duckdb.DuckDBPyConnection,
    operation: str,
    subject: str,
    *,
    actor: str,
    reason: str,
    approved_by: str | None = None,
    detail: str | None = None,
) -> str:
    """Append one entry to the operations log (inside the caller's transaction); return its id."""
    operation_id = uuid.uuid4().hex
    con.execute(
        "INSERT INTO operations_log VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
        [operation_id, operation, subject, actor, approved_by, reason, detail],
    )
    return operation_id


def list_operations(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pl.DataFrame:
    """The operations log, newest first."""
    return con.execute(
        "SELECT occurred_at, operation, subject, actor, approved_by, reason, detail FROM operations_log "
        "ORDER BY occurred_at DESC, operation_id LIMIT ?",
        [limit if limit is not None else 2**62],
    ).pl()
