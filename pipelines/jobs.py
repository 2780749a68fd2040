"""Jobs and schedules: what runs, and when."""

from __future__ import annotations

import dagster as dg

from assets.intake import shop_exports
from assets.operations import (
    block_or_unblock_merchant,
    cancel_payment_file,
    change_refund_status,
    represent_returned_collection,
    resolve_bank_exception,
    review_proposed_match,
    update_customer_bank_details,
)
from assets.payment_files import customer_payouts, merchant_collections, released_payment_files, weekly_partitions
from assets.reconciliation import reconciled_bank_files
from assets.refunds import due_refunds
from assets.reports import weekly_reconciliation_report

intake_job = dg.define_asset_job(
    "intake",
    selection=[shop_exports],
    description="Load the shop exports waiting in inbox/shop into the ledger.",
)

nightly_job = dg.define_asset_job(
    "nightly",
    selection=[shop_exports, due_refunds],
    description="Load waiting shop exports, then make due every refund whose waiting period has ended.",
)


def nightly_run_config(as_of: str) -> dict:
    """Run config of the nightly job for the day `as_of` (YYYY-MM-DD)."""
    return {"ops": {"due_refunds": {"config": {"as_of": as_of}}}}


@dg.schedule(
    job=nightly_job,
    cron_schedule="30 1 * * *",
    execution_timezone="Europe/Berlin",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night at 01:30 Berlin time, for that day."""
    day = context.scheduled_execution_time.date().isoformat()
    return dg.RunRequest(run_key=f"nightly-{day}", run_config=nightly_run_config(day), tags={"as_of": day})


weekly_job = dg.define_asset_job(
    "weekly",
    selection=[merchant_collections, customer_payouts],
    description="Write the week's merchant collections (pain.008) and customer payouts (pain.001) into outbox/pending.",
)

release_job = dg.define_asset_job(
    "release",
    selection=[released_payment_files],
    description="Release pending payment files to the bank (outbox/released) and post them in the ledger.",
)


report_job = dg.define_asset_job(
    "report",
    selection=[weekly_reconciliation_report],
    description="Write a week's reconciliation report (UI metadata and Excel workbook in reports/).",
)

reconcile_job = dg.define_asset_job(
    "reconcile",
    selection=[reconciled_bank_files],
    description="Reconcile one bank file from inbox/bank (its partition) against the ledger.",
)


@dg.job(description="Change a refund's manual status (open, in progress, already refunded), with who and why.")
def refund_status_change() -> None:
    change_refund_status()


@dg.job(description="Give or confirm a customer's bank details for a refund, as the customer's link does.")
def bank_details_update() -> None:
    update_customer_bank_details()


@dg.job(
    description="Resolve an exception of reconciliation: match, bank charge, send back, write off (approved "
    "above the limit), pay again, ask for bank details, present again or dismiss; with who and why."
)
def exception_resolution() -> None:
    resolve_bank_exception()


@dg.job(description="Confirm or decline a match reconciliation proposed by amount, date and name.")
def proposed_match_review() -> None:
    review_proposed_match()


@dg.job(description="Cancel a payment file waiting for release: its refunds return to due, its collections are freed.")
def payment_file_cancellation() -> None:
    cancel_payment_file()


@dg.job(description="Present a returned merchant collection again in the next collection run.")
def collection_representation() -> None:
    represent_returned_collection()


@dg.job(description="Block or unblock a merchant: blocked ones are neither collected from nor their customers paid.")
def merchant_block() -> None:
    block_or_unblock_merchant()


OPERATION_JOBS = [
    refund_status_change,
    bank_details_update,
    exception_resolution,
    proposed_match_review,
    payment_file_cancellation,
    collection_representation,
    merchant_block,
]


def op_config(op_name: str, **config) -> dict:
    """Run config of a one-op operation job."""
    return {"ops": {op_name: {"config": config}}}


def weekly_run_config(run: str = "main", by: str = "schedule") -> dict:
    """Run config of the weekly job: the main Monday run or the midweek (Thursday) run, and who prepares it."""
    return {"ops": {name: {"config": {"run": run, "by": by}} for name in ("merchant_collections", "customer_payouts")}}


def release_run_config(by: str, files: list[str] | None = None) -> dict:
    """Run config of the release job: the named files, or every pending file when `files` is None."""
    return {"ops": {"released_payment_files": {"config": {"by": by, "files": files or [], "all": files is None}}}}


def _weekly_schedule(name: str, cron: str, run: str, description: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        job=weekly_job,
        cron_schedule=cron,
        execution_timezone="Europe/Berlin",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        key = weekly_partitions.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())
        return dg.RunRequest(run_key=f"{run}-{key}", partition_key=key, run_config=weekly_run_config(run))

    return _schedule


weekly_schedule = _weekly_schedule(
    "weekly_schedule", "0 6 * * 1", "main", "Mondays at 06:00 Berlin time, for that week."
)
midweek_schedule = _weekly_schedule(
    "midweek_schedule", "0 6 * * 4", "midweek", "Thursdays at 06:00: the second collection of twice-weekly merchants."
)
