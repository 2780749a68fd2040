"""Reports for people: the weekly reconciliation report, in the UI and as an Excel workbook."""
# No `from __future__ import annotations` here: Dagster reads the context type hints at runtime.

import io
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import xlsxwriter

from assets.charts import ageing_chart, png_markdown, return_rate_chart, weekly_volumes_chart
from assets.formatting import markdown_table
from assets.payment_files import customer_payouts, weekly_partitions
from ledger.money import euros
from ledger.reports import ageing, return_rates, weekly_report, weekly_volumes

# Chart name in file names and metadata keys -> what the picture shows (its alt text and workbook caption).
CHARTS = {
    "weekly_volumes": "Payouts and collections per week",
    "return_rate_by_reason": "Returns and rejects by reason code",
    "ageing": "How long open refunds and exceptions have waited",
}


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
    workbook to `reports/reconciliation-<week>.xlsx`. Text is written as text, never as a formula. Three
    charts (volumes of the last weeks, return rate by reason, age of open work) are shown here, written as PNG
    next to the workbook (`reconciliation-<week>-<chart>.png`) and placed on the workbook's `charts` sheet."""
    monday = date.fromisoformat(context.partition_key)
    year, week, _ = monday.isocalendar()
    key = f"{year}-W{week:02d}"
    # Ages count to the week's end (its Sunday), or to today while that Sunday is still ahead: no item is aged by
    # days that have not happened yet. What is open comes from today's statuses (see ledger.reports.ageing).
    as_of = min(monday + timedelta(days=6), date.today())
    with context.resources.ledger.connect() as con:
        sheets = weekly_report(con, key)
        volumes, rates, open_work = weekly_volumes(con, until_week=key), return_rates(con, key), ageing(con, as_of)
    # Drawn after the ledger is closed: rendering takes longer than the queries and needs no connection.
    charts = {
        "weekly_volumes": weekly_volumes_chart(volumes),
        "return_rate_by_reason": return_rate_chart(rates),
        "ageing": ageing_chart(open_work, as_of=as_of),
    }
    reports = context.resources.home.home.reports
    reports.mkdir(parents=True, exist_ok=True)
    pictures = {name: reports / f"reconciliation-{key}-{name.replace('_', '-')}.png" for name in charts}
    for name, png in charts.items():
        _write_atomically(pictures[name], png)
    path = reports / f"reconciliation-{key}.xlsx"
    partial = reports / f".{path.name}.part"
    # strings_to_formulas off: a customer named "=cmd|..." stays a name in the workbook.
    with xlsxwriter.Workbook(partial, {"strings_to_formulas": False, "strings_to_urls": False}) as workbook:
        for name, frame in sheets.items():
            frame.write_excel(workbook, worksheet=name, autofit=True)
        _charts_sheet(workbook, charts)
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
            "ages_counted_to": dg.MetadataValue.text(as_of.isoformat()),
            **{f"chart_{name}": dg.MetadataValue.md(png_markdown(png, CHARTS[name])) for name, png in charts.items()},
            **{f"chart_{name}_png": dg.MetadataValue.path(str(pictures[name])) for name in charts},
        }
    )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write under a temporary name and rename, so a reader never sees half a picture."""
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    partial.replace(path)


def _charts_sheet(workbook: xlsxwriter.Workbook, charts: dict[str, bytes]) -> None:
    """A `charts` sheet after the tables: each chart under its caption, one below the other."""
    sheet = workbook.add_worksheet("charts")
    bold = workbook.add_format({"bold": True})
    row = 0
    for name, png in charts.items():
        sheet.write_string(row, 0, CHARTS[name], bold)
        sheet.insert_image(row + 1, 0, f"{name}.png", {"image_data": io.BytesIO(png)})
        # A chart is 400 px high and a default row 20 px: 20 rows for the picture, 2 to breathe.
        row += 23


def _eur(frame: pl.DataFrame) -> str:
    return euros(int(frame["amount_cents"].sum() or 0))
