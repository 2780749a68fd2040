"""Merchants as finance ops handle them: blocked (nothing collected from them, none of their customers
paid) or not. A re-import of the shop's merchants file never changes what finance ops decided."""

from __future__ import annotations

import duckdb
import polars as pl

from ledger.audit import OperationRefused, log_operation, require
from ledger.db import transaction


def set_merchant_blocked(
    con: duckdb.DuckDBPyConnection, merchant_id: str, blocked: bool, *, by: str, reason: str
) -> dict:
    """Block or unblock a merchant, with who and why. Blocked: the weekly run neither collects from it nor
    pays its customers (they stay due and are paid once it is unblocked). Returns the merchant."""
    by, reason = require(by, "who blocks (by)"), require(reason, "a reason")
    row = con.execute(
        "SELECT merchant_id, name, blocked FROM merchants WHERE merchant_id = ?", [merchant_id]
    ).fetchone()
    if row is None:
        raise OperationRefused(f"no merchant {merchant_id!r} in the books")
    if bool(row[2]) == blocked:
        raise OperationRefused(f"merchant {merchant_id} is already {'blocked' if blocked else 'not blocked'}")
    with transaction(con):
        con.execute("UPDATE merchants SET blocked = ? WHERE merchant_id = ?", [blocked, merchant_id])
        log_operation(con, "block_merchant" if blocked else "unblock_merchant", merchant_id, actor=by, reason=reason)
    return {"merchant_id": row[0], "name": row[1], "blocked": blocked}


def list_merchants(con: duckdb.DuckDBPyConnection, *, blocked: bool | None = None) -> pl.DataFrame:
    """Merchants with funding, collection rhythm, whether blocked, and what they owe the platform (receivable)."""
    return con.execute(
        "SELECT m.merchant_id, m.name, m.funding, m.collection, m.blocked, m.iban_problem, "
        "CAST(COALESCE(r.cents, 0) AS BIGINT) AS receivable_cents FROM merchants m "
        "LEFT JOIN (SELECT account, SUM(amount_cents) AS cents FROM postings "
        "           WHERE account LIKE 'merchant:%:receivable' "
        "           GROUP BY account) r ON r.account = 'merchant:' || m.merchant_id || ':receivable' "
        "WHERE (? IS NULL OR m.blocked = ?) ORDER BY m.merchant_id",
        [blocked, blocked],
    ).pl()
