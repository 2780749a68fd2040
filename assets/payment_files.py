"""Payment files: the weekly merchant collections (pain.008), the customer payouts (pain.001), and their
release to the bank."""
# No `from __future__ import annotations` here: Dagster reads the context and config type hints at runtime.

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from assets.formatting import markdown_table, masked
from assets.outbox import OutboxTidied, release, run_window, tidy_outbox, write_collection_files, write_payout_files
from assets.refunds import due_refunds
from ledger.payment_files import file_problems, files_by_merchant, list_files

# end_offset=1: the current week is a partition from its Monday on, so its run can start that morning.
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date="2024-01-01", day_offset=1, timezone="Europe/Berlin", end_offset=1
)


TOP_MERCHANTS = 20  # the metadata table shows the merchants moving the most money
MAX_FILE_LINKS = 20


class WeeklyRunConfig(dg.Config):
    """Which run of the week: `main` (Monday: every merchant, and the payouts) or `midweek` (Thursday:
    twice-weekly merchants' collections); and who prepares it. With four eyes on, the files it writes are
    released by someone else: put your name in `by` when you launch or change this run."""

    run: str = "main"
    by: str = "schedule"


class ReleaseConfig(dg.Config):
    """Which pending files to release (file names; empty with all=True: every pending file) and who releases."""

    files: list[str] = Field(default_factory=list)
    all: bool = False
    by: str


def _files_metadata(
    files: pl.DataFrame, skipped: pl.DataFrame, week_files: pl.DataFrame, by_merchant: pl.DataFrame, folder: Path
) -> dict:
    shown = files.select("file_name", "msg_id", "n_tx", "ctrl_sum_cents", "requested_on", "validation", "status")
    links = {
        f"file_{row['seq']:04d}": dg.MetadataValue.path(str(folder / row["file_name"]))
        for row in files.head(MAX_FILE_LINKS).iter_rows(named=True)
    }
    return {
        "files_written": dg.MetadataValue.int(files.height),
        "transactions": dg.MetadataValue.int(int(files["n_tx"].sum() or 0)),
        "control_sum_eur": dg.MetadataValue.float(int(files["ctrl_sum_cents"].sum() or 0) / 100),
        "all_valid": dg.MetadataValue.bool(bool((files["validation"] == "valid").all())),
        "files": dg.MetadataValue.md(markdown_table(shown)),
        "skipped": dg.MetadataValue.md(markdown_table(skipped)),
        "by_merchant": dg.MetadataValue.md(markdown_table(by_merchant.head(TOP_MERCHANTS))),
        **links,
        "files_of_the_week": dg.MetadataValue.md(
            markdown_table(week_files.select("file_name", "kind", "n_tx", "ctrl_sum_cents", "status"))
        ),
    }


def _write_week(context: dg.AssetExecutionContext, config: WeeklyRunConfig, writer, kind: str) -> dg.MaterializeResult:
    """Write one kind of the week's files (auto-released when the bank profile says so) and describe them."""
    window = run_window(date.fromisoformat(context.partition_key), config.run)
    by = config.by.strip() or "schedule"
    bank = context.resources.bank.profile()
    home = context.resources.home.home
    with context.resources.ledger.connect() as con:
        tidied = tidy_outbox(con, home)
        written = writer(con, home, bank, window, datetime.now(UTC), prepared_by=by)
        names = written.written["file_name"].to_list()
        if bank.auto_release and names:
            # Auto-release is an installation's explicit choice to do without four eyes.
            release(con, home, names, by="schedule (auto-release)", four_eyes=False)
        week = list_files(con, partition_key=window.partition_key).filter(pl.col("kind") == kind)
        by_merchant = files_by_merchant(con, names)
    _report_tidied(context, tidied)
    for row in written.skipped.iter_rows(named=True):
        # An excluded account's owner comes from the shop's export: any IBAN in it is masked.
        context.log.warning(masked(f"merchant {row['merchant_id']}: {row['skip_reason']}"))
    folder = home.outbox / ("released" if bank.auto_release else "pending")
    return dg.MaterializeResult(
        metadata={"week": window.partition_key, "run": window.run_label, "prepared_by": by,
                  **_files_metadata(written.written, written.skipped, week, by_merchant, folder)}
    )  # fmt: skip


def _report_tidied(context: dg.AssetExecutionContext, tidied: OutboxTidied) -> None:
    """Say what an interrupted run had left in the outbox, and what was done with it."""
    if tidied.releases_finished:
        context.log.warning(f"releases interrupted before the move, finished: {', '.join(tidied.releases_finished)}")
    if tidied.partial_files_removed:
        context.log.warning(f"half-written files removed: {', '.join(tidied.partial_files_removed)}")
    if tidied.unregistered_set_aside:
        context.log.warning(
            "files written by an interrupted run but never registered, set aside in outbox/unregistered/ "
            f"(their refunds are written again): {', '.join(tidied.unregistered_set_aside)}"
        )


_FILE_ASSET = {
    "partitions_def": weekly_partitions,
    "group_name": "payment_files",
    "kinds": {"xml", "duckdb"},
    "owners": ["team:finance-ops"],
    "required_resource_keys": {"ledger", "home", "bank"},
}


@dg.asset(deps=[due_refunds], **_FILE_ASSET)
def merchant_collections(context: dg.AssetExecutionContext, config: WeeklyRunConfig) -> dg.MaterializeResult:
    """SEPA Core direct debits (pain.008) collecting from each own-account merchant the payouts of its
    refunds due by the week's Monday: one per merchant (per refund, with the fee, for per-refund merchants),
    FRST on a mandate's first use, RCUR after, collected on a TARGET2 business day. Merchants without a valid
    IBAN or mandate are reported and skipped. A re-run writes nothing for refunds already collected."""
    return _write_week(context, config, write_collection_files, "collection")


@dg.asset(deps=[merchant_collections], **_FILE_ASSET)
def customer_payouts(context: dg.AssetExecutionContext, config: WeeklyRunConfig) -> dg.MaterializeResult:
    """SEPA credit transfers (pain.001) paying each customer whose refund is due and whose money is secured
    (integrated balance, or the merchant's collection booked, or released for merchants paid on release).
    One transfer per refund, EndToEndId derived from the refund, executed on a TARGET2 business day. Nothing
    is paid to the platform's or a merchant's own account. A re-run never pays a refund twice."""
    return _write_week(context, config, write_payout_files, "payout")


@dg.asset(
    deps=[merchant_collections, customer_payouts],
    group_name="payment_files",
    kinds={"xml", "duckdb"},
    owners=["team:finance-ops"],
    required_resource_keys={"ledger", "home", "controls"},
)
def released_payment_files(context: dg.AssetExecutionContext, config: ReleaseConfig) -> dg.MaterializeResult:
    """Payment files released to the bank: checked (XSD-valid, unchanged since written, control sums equal
    to the ledger, no refund in two files), posted in the ledger, and moved from outbox/pending/ to
    outbox/released/, the folder the bank upload reads. Launch it with the files to release and your name;
    with four eyes on (controls.toml), a file is not released by the person who prepared its run."""
    if not config.all and not config.files:
        raise dg.Failure("name the files to release, or set all: true")
    home = context.resources.home.home
    with context.resources.ledger.connect() as con:
        tidied = tidy_outbox(con, home)
        files = release(con, home, None if config.all else config.files, by=config.by,
                        four_eyes=context.resources.controls.four_eyes_release)  # fmt: skip
    _report_tidied(context, tidied)
    shown = files.select("file_name", "kind", "n_tx", "ctrl_sum_cents") if not files.is_empty() else files
    return dg.MaterializeResult(
        metadata={
            "released": dg.MetadataValue.int(files.height),
            "released_by": config.by,
            "control_sum_eur": dg.MetadataValue.float(
                int(files["ctrl_sum_cents"].sum() or 0) / 100 if not files.is_empty() else 0.0
            ),
            "files": dg.MetadataValue.md(markdown_table(shown)),
            "interrupted_releases_finished": dg.MetadataValue.int(len(tidied.releases_finished)),
        }
    )


def _file_check(asset: dg.AssetsDefinition, name: str, kind: str, problem_like: str, description: str):
    @dg.asset_check(asset=asset, name=name, required_resource_keys={"ledger"}, blocking=True, description=description)
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with context.resources.ledger.connect() as con:
            problems = file_problems(con)
            names = list_files(con).filter(pl.col("kind") == kind)["file_name"].to_list()
        found = problems.filter(pl.col("file_name").is_in(names) & pl.col("problem").str.starts_with(problem_like))
        return dg.AssetCheckResult(
            passed=found.is_empty(), metadata={"problems": dg.MetadataValue.md(markdown_table(found))}
        )

    return _check


file_checks = [
    _file_check(asset, name, kind, prefix, description)
    for asset, kind in ((merchant_collections, "collection"), (customer_payouts, "payout"))
    for name, prefix, description in (
        ("xsd_valid", "not valid against its XSD", "Every file is valid against its official XSD."),
        ("control_sums_match_ledger", "control sum", "CtrlSum equals its transactions and the ledger's amounts."),
        ("no_refund_in_two_files", "also in another file", "No refund or collection is in two live files."),
    )
]
