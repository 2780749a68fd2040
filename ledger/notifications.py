"""The notifications outbox: every customer- or merchant-facing event, as a template name and its data.

Sending e-mail is outside the product; this table is the contract with whatever sends it.
"""

from __future__ import annotations

import duckdb
import polars as pl

from ledger.db import run_with_frames

TEMPLATES = {
    "refund_scheduled": "customer",
    "bank_details_needed": "customer",
    "instalments_cancelled": "customer",
    "refund_returned": "customer",
    "refund_refused": "merchant",
    "balance_insufficient": "merchant",
}


def queue_notifications(con: duckdb.DuckDBPyConnection, outbox: pl.DataFrame) -> int:
    """Append notifications (notification_id, template, refund_id, merchant_id, data as JSON text).

    Ids are derived from the event they announce, so queueing the same event twice sends once.
    """
    if outbox.is_empty():
        return 0
    unknown = set(outbox["template"].unique()) - set(TEMPLATES)
    if unknown:
        raise ValueError(f"unknown notification template(s): {', '.join(sorted(unknown))}")
    outbox = outbox.with_columns(pl.col("template").replace_strict(TEMPLATES).alias("recipient"))
    before = con.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
    run_with_frames(
        con,
        "INSERT INTO notifications (notification_id, recipient, refund_id, merchant_id, template, data, created_at) "
        "SELECT o.notification_id, o.recipient, o.refund_id, o.merchant_id, o.template, o.data, current_timestamp "
        "FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.notification_id = o.notification_id)",
        outbox=outbox,
    )
    return con.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] - before


def list_notifications(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The outbox, oldest first, with the refund reference each notification concerns."""
    return con.execute(
        "SELECT n.notification_id, n.created_at, n.recipient, n.template, r.refund_ref, n.refund_id, "
        "n.merchant_id, n.data FROM notifications n LEFT JOIN refunds r USING (refund_id) "
        "ORDER BY n.created_at, n.notification_id"
    ).pl()
