"""The transfers the refund lifecycle books, built column-wise for whole batches of refunds."""

from __future__ import annotations

import duckdb
import polars as pl

from ledger import accounts
from ledger.postings import post_frames, two_legged_frames


def book_refunds(con: duckdb.DuckDBPyConnection, refunds: pl.DataFrame) -> int:
    """Book accepted refunds: the platform now owes the customer the payout, and the merchant owes it
    (own account) or it is taken from the merchant's balance (integrated). Idempotent per refund.

    `refunds` has refund_id, refund_ref, merchant_id, funding and payout_cents.
    """
    refunds = refunds.filter(pl.col("payout_cents") > 0)
    if refunds.is_empty():
        return 0
    merchant_side = (
        pl.when(pl.col("funding") == "integrated")
        .then(pl.format("merchant:{}:balance", pl.col("merchant_id")))
        .otherwise(pl.format("merchant:{}:receivable", pl.col("merchant_id")))
    )
    return post_frames(
        con,
        *two_legged_frames(
            refunds,
            transfer_id=pl.format("booked:{}", pl.col("refund_id")),
            kind="refund_booked",
            debit=merchant_side,
            credit=pl.lit(accounts.CUSTOMER_PAYABLE),
            amount_cents=pl.col("payout_cents"),
            memo=pl.format("refund {} of merchant {}", pl.col("refund_ref"), pl.col("merchant_id")),
        ),
    )


def book_cancelled_instalments(con: duckdb.DuckDBPyConnection, refunds: pl.DataFrame) -> int:
    """Book instalments cancelled by refunds: the customer owes less, the merchant gives it up.

    `refunds` has refund_id, merchant_id, cancelled_instalments_cents and cancelled_instalments (text).
    """
    refunds = refunds.filter(pl.col("cancelled_instalments_cents") > 0)
    if refunds.is_empty():
        return 0
    return post_frames(
        con,
        *two_legged_frames(
            refunds,
            transfer_id=pl.format("instalments:{}", pl.col("refund_id")),
            kind="instalments_cancelled",
            debit=pl.format("merchant:{}:cancelled_instalments", pl.col("merchant_id")),
            credit=pl.lit(accounts.CUSTOMER_INSTALMENTS),
            amount_cents=pl.col("cancelled_instalments_cents"),
            memo=pl.col("cancelled_instalments"),
        ),
    )


def book_balance_changes(
    con: duckdb.DuckDBPyConnection, moves: pl.DataFrame, *, file_name: str, file_sha256: str
) -> int:
    """Book changes of integrated merchants' declared balances (merchant_id, delta): money the merchant
    paid in (or took out), held in the platform's bank account. One transfer per merchant and file."""
    if moves.is_empty():
        return 0
    return post_frames(
        con,
        *two_legged_frames(
            moves.with_columns(pl.lit(None, pl.String).alias("refund_id")),
            transfer_id=pl.format("balance:{}:{}", pl.col("merchant_id"), pl.lit(file_sha256[:16])),
            kind="merchant_balance",
            debit=pl.lit(accounts.PLATFORM_BANK),
            credit=pl.format("merchant:{}:balance", pl.col("merchant_id")),
            amount_cents=pl.col("delta"),
            memo=pl.lit(f"balance declared in {file_name}"),
        ),
    )
