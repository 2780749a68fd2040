"""Sensors: what starts a run when something arrives."""
# No `from __future__ import annotations` here: Dagster reads the resource type hints at runtime.

import dagster as dg

from assets.reconciliation import bank_file_partitions
from pipelines.jobs import reconcile_job
from pipelines.resources import HomeResource


@dg.sensor(
    job=reconcile_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def bank_inbox_sensor(context: dg.SensorEvaluationContext, home: HomeResource) -> dg.SensorResult | dg.SkipReason:
    """A new file in `inbox/bank/` starts one reconciliation run for it. The run key is the file name, so a
    file is offered once per instance; if the instance forgets (its home lost), the ledger's own
    de-duplication still books it once."""
    inbox = home.home.bank_inbox
    names = sorted(p.name for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))
    if not names:
        return dg.SkipReason("inbox/bank is empty")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=n, partition_key=n) for n in names],
        dynamic_partitions_requests=[bank_file_partitions.build_add_request(names)],
    )
