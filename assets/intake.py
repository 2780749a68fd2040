"""Shop exports coming in: every file in the shop inbox checked and recorded in the ledger."""
# No `from __future__ import annotations` here: Dagster reads the context and config type hints at runtime.

import shutil
from pathlib import Path

import dagster as dg
import polars as pl

from assets.formatting import markdown_table, masked
from assets.home import Home
from ledger.intake import IntakeResult, list_rejects, record_refused_file, record_shop_file
from ledger.intake_files import IntakeFileError, discover, file_sha256, read_shop_file
from sepa.iban import check_iban_column, mask_iban

# Which column of each export holds an IBAN, checked by `sepa` before the ledger sees it.
IBAN_COLUMNS = {"merchants": "iban", "excluded_ibans": "iban", "orders": "customer_iban", "payments": "payer_iban"}


@dg.asset(
    group_name="intake",
    kinds={"csv", "duckdb"},
    owners=["team:finance-ops"],
    required_resource_keys={"ledger", "home"},
)
def shop_exports(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Merchants, orders, payments and refund requests from the shops' exports in `inbox/shop/`.

    Each row is checked (pandera shapes, IBANs, the refund rules) and recorded in the ledger; a bad
    row is rejected with its file, line, column and problem while the good rows go on. Loaded files
    move to `archive/shop/`, unreadable ones to `archive/shop-refused/`. The same file twice changes nothing.
    """
    home = context.resources.home.home
    files = discover([home.shop_inbox])
    loaded, refused = [], []
    with context.resources.ledger.connect() as con:
        for path in files:
            result = take_in_shop_file(con, home, path)
            if isinstance(result, str):
                context.log.error(masked(result))
                refused.append({"file": path.name, "problem": result})
            elif result.already_loaded:
                context.log.info(masked(f"{path.name}: already loaded (same content); nothing changed"))
            elif result.rows_rejected:
                context.log.warning(masked(f"{path.name}: {result.rows_rejected} of {result.rows_total} rows rejected"))
            if not isinstance(result, str):
                loaded.append(result)
        recent = list_rejects(con, [r.sha256 for r in loaded]).select(
            "file_name", "line", "column_name", _shown_value(), "problem", "severity"
        )
    summary = pl.DataFrame(
        [
            {
                "file": r.file_name,
                "kind": r.kind,
                "rows": r.rows_total,
                "loaded": r.rows_loaded,
                "rejected": r.rows_rejected,
                "note": "already loaded" if r.already_loaded else "",
            }
            for r in loaded
        ],
        schema={
            "file": pl.String,
            "kind": pl.String,
            "rows": pl.Int64,
            "loaded": pl.Int64,
            "rejected": pl.Int64,
            "note": pl.String,
        },
    )
    statuses: dict[str, int] = {}
    for r in loaded:
        for status, n in (r.statuses or {}).items():
            statuses[status] = statuses.get(status, 0) + n
    return dg.MaterializeResult(
        metadata={
            "files": dg.MetadataValue.int(len(files)),
            "files_refused": dg.MetadataValue.int(len(refused)),
            "rows_loaded": dg.MetadataValue.int(int(summary["loaded"].sum() or 0)),
            "rows_rejected": dg.MetadataValue.int(int(summary["rejected"].sum() or 0)),
            "new_refunds_by_status": dg.MetadataValue.json(statuses),
            "per_file": dg.MetadataValue.md(markdown_table(summary)),
            "refused_files": dg.MetadataValue.md(markdown_table(pl.DataFrame(refused)) if refused else "_none_"),
            "rejects": dg.MetadataValue.md(markdown_table(recent)),
        }
    )


def _shown_value() -> pl.Expr:
    """A rejected cell as metadata shows it: an IBAN cell masked even when malformed (`DE89-3704-...`)."""
    iban_cell = pl.col("column_name").is_in(sorted(set(IBAN_COLUMNS.values())))
    return (
        pl.when(iban_cell)
        .then(pl.col("value").map_elements(mask_iban, return_dtype=pl.String))
        .otherwise(pl.col("value"))
        .alias("value")
    )


def take_in_shop_file(con, home: Home, path: Path) -> IntakeResult | str:
    """Read, check and record one shop export, then archive it: loaded files to `archive/shop/`, unreadable
    ones (returned as the reason, and noted with the rejects) to `archive/shop-refused/`."""
    sha = file_sha256(path)
    try:
        shop_file = read_shop_file(path)
    except IntakeFileError as exc:
        record_refused_file(con, path.name, sha, str(exc))
        _archive(path, home.shop_refused / f"{sha[:12]}-{path.name}")
        return str(exc)
    rows = shop_file.rows
    if shop_file.kind in IBAN_COLUMNS:
        rows = check_iban_column(rows, IBAN_COLUMNS[shop_file.kind])
    result = record_shop_file(con, shop_file, rows)
    _archive(path, home.shop_archive / f"{sha[:12]}-{path.name}")
    return result


def _archive(path, target) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))
