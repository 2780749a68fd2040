"""Where money stands, for people: refunds by stage, payment files, exceptions, merchant receivables."""

from __future__ import annotations

import duckdb
import polars as pl

STAGES = [
    ("scheduled", "waiting out the waiting period"),
    ("awaiting_bank_details", "waiting for the customer's bank details"),
    ("blocked", "waiting for an integrated merchant's balance"),
    ("due", "due, not yet in a payment file"),
    ("in_file", "in a payout file not yet released"),
    ("sent", "sent to the bank, not yet booked"),
    ("completed", "paid (booked by the bank)"),
    ("returned", "returned by the bank, with finance ops"),
    ("open", "reopened by finance ops"),
    ("in_progress", "in finance ops' hands"),
    ("already_refunded", "settled outside the pipeline"),
    ("rejected", "refused at intake"),
]


def refunds_by_stage(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every lifecycle stage in process order, with how many refunds and how much is to be paid out."""
    counts = con.execute(
        "SELECT status, COUNT(*) AS refunds, CAST(SUM(payout_cents) AS BIGINT) AS payout_cents FROM refunds "
        "GROUP BY status"
    ).pl()
    stages = pl.DataFrame(STAGES, schema=["status", "meaning"], orient="row")
    return stages.join(counts, on="status", how="left").with_columns(
        pl.col("refunds").fill_null(0).cast(pl.Int64), pl.col("payout_cents").fill_null(0)
    )


def money_position(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The platform's position from the ledger: bank, money in transit, owed to customers, owed by merchants."""
    return (
        con.execute(
            """
        SELECT what, CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) AS balance_cents FROM (
            SELECT CASE
                WHEN account = 'platform:bank' THEN '1 platform bank account'
                WHEN account = 'platform:collections_in_transit' THEN '2 collections on their way in'
                WHEN account = 'platform:payouts_in_transit' THEN '3 payouts on their way out'
                WHEN account = 'customers:payable' THEN '4 owed to customers'
                WHEN account LIKE 'merchant:%:receivable' THEN '5 owed by own-account merchants'
                WHEN account LIKE 'merchant:%:balance' THEN '6 integrated merchants'' balances'
                ELSE NULL END AS what, amount_cents
            FROM postings) p
        WHERE what IS NOT NULL GROUP BY what ORDER BY what
        """
        )
        .pl()
        .with_columns(pl.col("what").str.slice(2))
    )


def open_work(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """What waits for a person: open exceptions, proposed matches, files not yet released."""
    return con.execute(
        "SELECT 'open exceptions' AS what, COUNT(*) AS items FROM exceptions WHERE status = 'open' "
        "UNION ALL SELECT 'proposed matches to confirm', COUNT(*) FROM proposed_matches WHERE status = 'proposed' "
        "UNION ALL SELECT 'payment files waiting for release', COUNT(*) FROM payment_files WHERE status = 'written' "
        "UNION ALL SELECT 'collections returned', COUNT(*) FROM collections WHERE status = 'returned'"
    ).pl()


def weekly_report(con: duckdb.DuckDBPyConnection, partition_key: str) -> dict[str, pl.DataFrame]:
    """The reconciliation report of one ISO week (`2024-W21`): its payouts and collections with what the bank
    did, returns by reason, the open exceptions and the ledger's balances; one frame per sheet."""
    payouts = con.execute(
        "SELECT f.file_name, r.refund_ref, r.merchant_id, r.customer_name, i.amount_cents, "
        "COALESCE(i.outcome, 'open') AS bank_outcome, r.status AS refund_status "
        "FROM payment_file_items i JOIN payment_files f USING (file_id) JOIN refunds r USING (refund_id) "
        "WHERE f.partition_key = ? AND f.kind = 'payout' ORDER BY f.file_name, r.merchant_id, r.refund_ref",
        [partition_key],
    ).pl()
    collections = con.execute(
        "SELECT c.collection_id, c.merchant_id, m.name AS merchant_name, c.sequence_type, c.collection_date, "
        "c.refunds_cents, c.fee_cents, c.amount_cents, c.status "
        "FROM collections c JOIN merchants m USING (merchant_id) "
        "WHERE c.partition_key = ? ORDER BY c.merchant_id, c.collection_id",
        [partition_key],
    ).pl()
    returns = con.execute(
        "SELECT l.matched_kind AS kind, COALESCE(l.return_reason, '(none)') AS reason, l.event, COUNT(*) AS lines, "
        "CAST(SUM(l.amount_cents) AS BIGINT) AS amount_cents FROM bank_lines l "
        "JOIN payment_file_items i ON i.refund_id = l.matched_ref OR i.collection_id = l.matched_ref "
        "JOIN payment_files f ON f.file_id = i.file_id "
        "WHERE f.partition_key = ? AND l.event IN ('returned', 'rejected') GROUP BY ALL ORDER BY ALL",
        [partition_key],
    ).pl()
    exceptions = con.execute(
        "SELECT e.created_at, e.file_name, r.refund_ref, e.collection_id, e.reason FROM exceptions e "
        "LEFT JOIN refunds r USING (refund_id) WHERE e.status = 'open' ORDER BY e.created_at"
    ).pl()
    balances = con.execute(
        "SELECT account, CAST(SUM(amount_cents) AS BIGINT) AS balance_cents FROM postings GROUP BY account "
        "ORDER BY account"
    ).pl()
    return {
        "payouts": payouts,
        "collections": collections,
        "returns by reason": returns,
        "exceptions": exceptions,
        "ledger balances": balances,
    }
