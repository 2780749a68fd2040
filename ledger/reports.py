"""Where money stands, for people: refunds by stage, payment files, exceptions, merchant receivables."""

from __future__ import annotations

from datetime import date

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
                WHEN account = 'platform:to_send_back' THEN '7 owed back to senders (payment returns)'
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
        # Each line once, even when its refund is in two files of the week (one cancelled and its replacement).
        "SELECT l.matched_kind AS kind, COALESCE(l.return_reason, '(none)') AS reason, l.event, COUNT(*) AS lines, "
        "CAST(SUM(l.amount_cents) AS BIGINT) AS amount_cents FROM bank_lines l "
        "WHERE l.event IN ('returned', 'rejected') AND EXISTS (SELECT 1 FROM payment_file_items i "
        "  JOIN payment_files f ON f.file_id = i.file_id WHERE f.partition_key = ? AND f.status <> 'cancelled' "
        "  AND (i.refund_id = l.matched_ref OR i.collection_id = l.matched_ref)) GROUP BY ALL ORDER BY ALL",
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


# --- frames for charts -------------------------------------------------------------------------------------------

KINDS = ("collection", "payout")
OPEN_REFUND_EXCLUDED = ("completed", "rejected", "already_refunded")
# (label, oldest age in days the bucket holds); the last bucket takes everything older.
AGE_BUCKETS = [("0-7 days", 7), ("8-14 days", 14), ("15-30 days", 30), ("31-60 days", 60), ("over 60 days", None)]


def weekly_volumes(
    con: duckdb.DuckDBPyConnection, last_weeks: int = 12, *, until_week: str | None = None
) -> pl.DataFrame:
    """Payment-file volumes of the last `last_weeks` ISO weeks that have files (up to `until_week`, e.g. `2024-W21`,
    when given): per week and kind (collection, payout), the transactions and amount_cents of the files not
    cancelled, as the files themselves state them (NbOfTxs, CtrlSum). Both kinds appear for every week, with 0."""
    if last_weeks < 1:
        raise ValueError(f"last_weeks must be at least 1, not {last_weeks}")
    return con.execute(
        """
        WITH live AS (
            SELECT partition_key AS week, kind, n_tx, ctrl_sum_cents FROM payment_files
            WHERE status <> 'cancelled' AND (CAST(? AS VARCHAR) IS NULL OR partition_key <= ?)),
        weeks AS (SELECT DISTINCT week FROM live ORDER BY week DESC LIMIT ?),
        kinds AS (SELECT UNNEST(?::VARCHAR[]) AS kind)
        SELECT w.week, k.kind, CAST(COALESCE(SUM(l.n_tx), 0) AS BIGINT) AS transactions,
               CAST(COALESCE(SUM(l.ctrl_sum_cents), 0) AS BIGINT) AS amount_cents
        FROM weeks w CROSS JOIN kinds k LEFT JOIN live l ON l.week = w.week AND l.kind = k.kind
        GROUP BY w.week, k.kind ORDER BY w.week, k.kind
        """,
        [until_week, until_week, last_weeks, list(KINDS)],
    ).pl()


def return_rates(con: duckdb.DuckDBPyConnection, partition_key: str | None = None) -> pl.DataFrame:
    """Returns and rejects per kind and reason code (`(none)` when the bank gave none): the bank lines, their
    amount_cents, the transactions of that kind in files not cancelled, and rate = lines / transactions.

    With `partition_key` (`2024-W21`) only that week counts: a bank line belongs to the week when what it
    matched is an item of one of the week's files (as in `weekly_report`), and the transactions are the week's.
    A line is counted once even when its refund sits in two files of the week (a cancelled one and its
    replacement). Rate is null when there are no transactions to divide by."""
    return con.execute(
        """
        WITH transactions AS (
            SELECT f.kind, COUNT(*) AS transactions FROM payment_file_items i JOIN payment_files f USING (file_id)
            WHERE f.status <> 'cancelled' AND (CAST(? AS VARCHAR) IS NULL OR f.partition_key = ?) GROUP BY f.kind),
        returned AS (
            SELECT l.matched_kind AS kind, COALESCE(l.return_reason, '(none)') AS reason, COUNT(*) AS lines,
                   CAST(COALESCE(SUM(l.amount_cents), 0) AS BIGINT) AS amount_cents
            FROM bank_lines l
            WHERE l.event IN ('returned', 'rejected') AND (CAST(? AS VARCHAR) IS NULL OR EXISTS (
                SELECT 1 FROM payment_file_items i JOIN payment_files f USING (file_id)
                WHERE f.partition_key = ? AND (i.refund_id = l.matched_ref OR i.collection_id = l.matched_ref)))
            GROUP BY ALL)
        SELECT r.kind, r.reason, r.lines, r.amount_cents, COALESCE(t.transactions, 0) AS transactions,
               CAST(r.lines AS DOUBLE) / NULLIF(t.transactions, 0) AS rate
        FROM returned r LEFT JOIN transactions t USING (kind) ORDER BY r.kind, r.lines DESC, r.reason
        """,
        [partition_key, partition_key, partition_key, partition_key],
    ).pl()


def ageing(con: duckdb.DuckDBPyConnection, today: date) -> pl.DataFrame:
    """How long open work has waited on `today`: open refunds (any status but completed, rejected and
    already_refunded; aged from requested_on; amount_cents is what is still to be paid out, payout_cents) and
    open exceptions (aged from created_at; amount_cents is their bank line's amount, 0 when there is none or it
    could not be read). Columns what (refunds, exceptions), bucket (AGE_BUCKETS order, every bucket present),
    items, amount_cents.

    Statuses are today's: a past `today` ages what is open now, not what was open then; an item newer than
    `today` (a re-run for an earlier day) counts as 0 days old rather than vanishing."""
    ages = con.execute(
        """
        SELECT 'refunds' AS what, GREATEST(DATE_DIFF('day', requested_on, ?), 0) AS age_days,
               payout_cents AS amount_cents
        FROM refunds WHERE status NOT IN (SELECT UNNEST(?::VARCHAR[]))
        UNION ALL
        SELECT 'exceptions', GREATEST(DATE_DIFF('day', CAST(e.created_at AS DATE), ?), 0),
               COALESCE(l.amount_cents, 0)
        FROM exceptions e LEFT JOIN bank_lines l USING (line_id) WHERE e.status = 'open'
        """,
        [today, list(OPEN_REFUND_EXCLUDED), today],
    ).pl()
    bucket = pl.lit(AGE_BUCKETS[-1][0])
    for label, oldest in reversed(AGE_BUCKETS[:-1]):
        bucket = pl.when(pl.col("age_days") <= oldest).then(pl.lit(label)).otherwise(bucket)
    counted = (
        ages.with_columns(bucket.alias("bucket"))
        .group_by("what", "bucket")
        .agg(pl.len().cast(pl.Int64).alias("items"), pl.col("amount_cents").sum().cast(pl.Int64))
    )
    grid = pl.DataFrame(
        [(what, label) for what in ("refunds", "exceptions") for label, _ in AGE_BUCKETS],
        schema={"what": pl.String, "bucket": pl.String},
        orient="row",
    )
    return grid.join(counted, on=["what", "bucket"], how="left", maintain_order="left").with_columns(
        pl.col("items").fill_null(0), pl.col("amount_cents").fill_null(0)
    )
