"""Reports for people: the weekly reconciliation report, in the UI and as an Excel workbook."""
# No `from __future__ import annotations` here: Dagster reads the context type hints at runtime.

from datetime import date

import dagster as dg
import polars as pl
import xlsxwriter

from assets.formatting import markdown_table
from assets.payment_files import customer_payouts, weekly_partitions
from ledger.money import euros
from ledger.reports import weekly_report


@dg.asset(
    partitions_def=weekly_partitions,
    deps=[customer_payouts],
    group_name="reports",
    kinds={"excel"},
    owners=["team:finance-ops"],
    required_resource_keys={"ledger", "home"},
)
def weekly_reconciliation_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The week's reconciliation report as finance ops read it: payouts and collections with what the bank
    did, returns by reason code, open exceptions and ledger balances; shown here and written as an Excel
    workbook to `reports/reconciliation-<week>.xlsx`. Text is written as text, never as a formula."""
    year, week, _ = date.fromisoformat(context.partition_key).isocalendar()
    key = f"{year}-W{week:02d}"
    with context.resources.ledger.connect() as con:
        sheets = weekly_report(con, key)
    reports = context.resources.home.home.reports
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"reconciliation-{key}.xlsx"
    partial = reports / f".{path.name}.part"
    # strings_to_formulas off: a customer named "=cmd|..." stays a name in the workbook.
    with xlsxwriter.Workbook(partial, {"strings_to_formulas": False, "strings_to_urls": False}) as workbook:
        for name, frame in sheets.items():
            frame.write_excel(workbook, worksheet=name, autofit=True)
    partial.replace(path)
    payouts, collections = sheets["payouts"], sheets["collections"]
    returns = sheets["returns by reason"]
    summary = pl.DataFrame(
        {
            "what": ["payouts", "collections", "returns and rejects", "open exceptions"],
            "items": [
                payouts.height,
                collections.height,
                int(returns["lines"].sum() or 0),
                sheets["exceptions"].height,
            ],
            "amount": [_eur(payouts), _eur(collections), _eur(returns), ""],
        }
    )
    by_outcome = (
        payouts.group_by("bank_outcome")
        .agg(pl.len().alias("payouts"), pl.col("amount_cents").sum())
        .sort("bank_outcome")
    )
    return dg.MaterializeResult(
        metadata={
            "week": key,
            "workbook": dg.MetadataValue.path(str(path)),
            "summary": dg.MetadataValue.md(markdown_table(summary)),
            "returns_by_reason": dg.MetadataValue.md(markdown_table(sheets["returns by reason"])),
            "payouts_by_bank_outcome": dg.MetadataValue.md(markdown_table(by_outcome)),
        }
    )


def _eur(frame: pl.DataFrame) -> str:
    return euros(int(frame["amount_cents"].sum() or 0))
