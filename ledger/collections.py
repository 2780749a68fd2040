"""Merchant collections that came back: presenting their refunds again in the next collection run."""

from __future__ import annotations

import duckdb
import polars as pl

from ledger.audit import OperationRefused, log_operation, require
from ledger.db import run_with_frames, transaction


def present_again(con: duckdb.DuckDBPyConnection, refunds: pl.DataFrame) -> int:
    """Free refunds (refund_id, collection_id of the returned collection) for the next run's direct debit;
    the presentation is recorded so it shows in the merchant's history. Runs in the caller's transaction."""
    if refunds.is_empty():
        return 0
    run_with_frames(
        con,
        "INSERT INTO represented_refunds SELECT refund_id, collection_id, current_timestamp FROM f "
        "WHERE NOT EXISTS (SELECT 1 FROM represented_refunds p "
        "                  WHERE p.refund_id = f.refund_id AND p.collection_id = f.collection_id)",
        f=refunds,
    )
    run_with_frames(con, "DELETE FROM collection_refunds WHERE refund_id IN (SELECT refund_id FROM f)", f=refunds)
    return refunds.height


def represent_collection(con: duckdb.DuckDBPyConnection, collection_id: str, *, by: str, reason: str) -> dict:
    """Finance ops present a returned collection again: its refunds go into the next collection run's direct
    debit to the merchant (a new collection, under the same mandate, RCUR). Open exceptions about the
    collection are resolved. Returns what was done."""
    by, reason = require(by, "who presents again (by)"), require(reason, "a reason")
    row = con.execute(
        "SELECT collection_id, merchant_id, status, amount_cents FROM collections WHERE collection_id = ?",
        [collection_id],
    ).fetchone()
    if row is None:
        raise OperationRefused(f"no collection {collection_id!r} in the books")
    if row[2] != "returned":
        raise OperationRefused(f"collection {collection_id} is {row[2]}: only a returned collection is presented again")
    blocked = con.execute("SELECT blocked FROM merchants WHERE merchant_id = ?", [row[1]]).fetchone()[0]
    if blocked:
        raise OperationRefused(f"merchant {row[1]} is blocked: unblock it before presenting its collection again")
    with transaction(con):
        refunds = con.execute(
            "SELECT refund_id, collection_id FROM collection_refunds WHERE collection_id = ?", [collection_id]
        ).pl()
        if refunds.is_empty():
            raise OperationRefused(f"collection {collection_id}'s refunds are already presented again")
        present_again(con, refunds)
        con.execute("UPDATE collections SET status = 'represented' WHERE collection_id = ?", [collection_id])
        log_operation(con, "represent_collection", collection_id, actor=by, reason=reason,
                      detail=f"{refunds.height} refund(s), {row[3]} cents, merchant {row[1]}")  # fmt: skip
    return {"collection_id": collection_id, "merchant_id": row[1], "refunds": refunds.height, "amount_cents": row[3]}


def list_collections(
    con: duckdb.DuckDBPyConnection, *, status: str | None = None, merchant_id: str | None = None
) -> pl.DataFrame:
    """Merchant collections, newest week first: amount, sequence type, status and how many refunds each covers."""
    return con.execute(
        "SELECT c.collection_id, c.merchant_id, m.name AS merchant_name, c.partition_key, c.run_label, "
        "c.sequence_type, c.collection_date, c.amount_cents, c.status, "
        "(SELECT COUNT(*) FROM collection_refunds cr WHERE cr.collection_id = c.collection_id) AS refunds "
        "FROM collections c JOIN merchants m USING (merchant_id) "
        "WHERE (? IS NULL OR c.status = ?) AND (? IS NULL OR c.merchant_id = ?) "
        "ORDER BY c.partition_key DESC, c.merchant_id, c.collection_id",
        [status, status, merchant_id, merchant_id],
    ).pl()
