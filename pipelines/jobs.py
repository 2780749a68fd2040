"""Jobs and schedules: what runs, and when."""

from __future__ import annotations

import dagster as dg

from assets.intake import shop_exports
from assets.refunds import due_refunds

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
