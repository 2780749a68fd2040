"""Running the product's jobs on the installation's persistent Dagster instance.

The CLI, the schedules and the UI all run the same jobs of the same Definitions; this module is
how the CLI does it, so its runs show in the UI like any other.
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.settings import Home


class RunFailed(RuntimeError):
    """A job run that did not succeed; the message names the failing step and its error."""


def instance_for(home: Home) -> dg.DagsterInstance:
    """The installation's persistent Dagster instance (`$PAYOUTS_HOME/dagster`)."""
    home.prepare()
    os.environ["DAGSTER_HOME"] = str(home.dagster)
    return dg.DagsterInstance.get()


def run_job(
    home: Home,
    job_name: str,
    run_config: dict | None = None,
    tags: dict | None = None,
    partition_key: str | None = None,
):
    """Run one job to the end on the persistent instance; raise RunFailed if any step failed."""
    defs = build_definitions(home)
    job = defs.resolve_job_def(job_name)
    # The run's full log is in the instance (and the UI); the terminal gets warnings and errors.
    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **(run_config or {})}
    with instance_for(home) as instance:
        try:
            result = job.execute_in_process(
                run_config=config, instance=instance, raise_on_error=False, tags=tags or {}, partition_key=partition_key
            )
        except dg.DagsterInvalidConfigError as exc:
            # What the Launchpad would refuse before launching: say which value is wrong, no traceback.
            problems = "; ".join(error.message for error in exc.errors)
            raise RunFailed(f"job {job_name} not started, its config is invalid: {problems}") from None
    if not result.success:
        failures = [
            f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
            for event in result.all_events
            if event.is_step_failure and event.step_failure_data.error
        ]
        raise RunFailed(f"run {result.run_id} of job {job_name} failed: " + "; ".join(failures))
    return result


def add_bank_file_partitions(home: Home, names: list[str]) -> None:
    """Register bank files as partitions of the reconciliation (what the sensor does for the inbox)."""
    with instance_for(home) as instance:
        known = set(instance.get_dynamic_partitions("bank_files"))
        new = [n for n in names if n not in known]
        if new:
            instance.add_dynamic_partitions("bank_files", new)
