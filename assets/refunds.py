"""Refunds becoming due: the nightly step of the refund lifecycle, and the ledger's invariants."""
# No `from __future__ import annotations` here: Dagster reads the context and config type hints at runtime.

from datetime import date

import dagster as dg
import polars as pl

from assets.charts import ageing_chart, png_markdown
from assets.formatting import markdown_table
from assets.intake import shop_exports
from ledger.postings import ledger_total, reused_transfer_ids, unbalanced_transfers
from ledger.refunds import make_refunds_due, status_summary
from ledger.reports import ageing


class NightlyConfig(dg.Config):
    """Which day the nightly run is for (YYYY-MM-DD); empty means today."""

    as_of: str = ""

    def day(self) -> date:
        return date.fromisoformat(self.as_of) if self.as_of else date.today()


@dg.asset(
    deps=[shop_exports],
    group_name="refunds",
    kinds={"duckdb"},
    owners=["team:finance-ops"],
    required_resource_keys={"ledger"},
)
def due_refunds(context: dg.AssetExecutionContext, config: NightlyConfig) -> dg.MaterializeResult:
    """Refunds whose waiting period has ended, ready for the weekly payment files.

    Each night: refunds an integrated merchant's balance now covers are unblocked (oldest first),
    refunds finance ops reopened rejoin the pipeline, and every scheduled refund whose waiting
    period ends on or before the run's day becomes due. Every change is an audit event.
    """
    as_of = config.day()
    with context.resources.ledger.connect() as con:
        changed = make_refunds_due(con, as_of)
        summary = status_summary(con)
        # Aged to the run's day, like the due dates just set: a nightly run for a past day ages to that day.
        open_work = ageing(con, as_of)
    chart = ageing_chart(open_work, as_of=as_of)  # drawn after the ledger is closed: it needs no connection
    due = summary.filter(summary["status"] == "due")
    open_refunds = open_work.filter(pl.col("what") == "refunds").drop("what")
    return dg.MaterializeResult(
        metadata={
            "as_of": dg.MetadataValue.text(as_of.isoformat()),
            "became_due": dg.MetadataValue.int(changed["due"]),
            "unblocked": dg.MetadataValue.int(changed["unblocked"]),
            "reopened": dg.MetadataValue.int(changed["reopened"]),
            "due_refunds": dg.MetadataValue.int(int(due["refunds"].sum() or 0)),
            "due_payout_eur": dg.MetadataValue.float(int(due["payout_cents"].sum() or 0) / 100),
            "refunds_by_status": dg.MetadataValue.md(markdown_table(summary)),
            "open_refunds_by_age": dg.MetadataValue.md(markdown_table(open_refunds)),
            "chart_ageing": dg.MetadataValue.md(
                png_markdown(chart, "How long open refunds and exceptions have waited")
            ),
        }
    )


@dg.asset_check(asset=due_refunds, required_resource_keys={"ledger"}, blocking=True)
def ledger_balances_to_zero(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Every transfer's postings sum to zero, no transfer id is booked twice, and the whole ledger sums to zero."""
    with context.resources.ledger.connect() as con:
        broken = unbalanced_transfers(con)
        reused = reused_transfer_ids(con)
        total = ledger_total(con)
    return dg.AssetCheckResult(
        passed=broken.is_empty() and reused.is_empty() and total == 0,
        metadata={
            "unbalanced_transfers": broken.height,
            "reused_transfer_ids": reused.height,
            "ledger_total_cents": total,
        },
    )
