"""Running the product's jobs on the installation's persistent Dagster instance.

The CLI, the schedules and the UI all run the same jobs of the same Definitions; this module is
how the CLI does it, so its runs show in the UI like any other.
"""

from __future__ import annotations

import os
from pathlib import Path

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


# CLI runs carry the process that runs them, so a run whose process was killed can be told from a live one.
PROCESS_TAG = "payouts/process"


def _process_token(pid: int) -> str | None:
    """`pid@start-time`: a pid alone may be reused by another process after a crash."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{pid}@{fields[19]}"  # field 22 of stat: when the process started, in clock ticks since boot


def fail_runs_of_dead_processes(instance: dg.DagsterInstance) -> list[str]:
    """Mark as failed the CLI runs still `STARTED` whose process is gone (killed, machine restarted).

    Such a run would otherwise count as in progress for ever, and the run queue (one run at a time)
    would hold every scheduled and sensor run behind it. What the run did before it died is in the
    ledger, whose transactions are all-or-nothing; the next run of the same job finishes the work.
    """
    failed = []
    in_progress = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=in_progress)):
        token = run.tags.get(PROCESS_TAG)
        if not token or _process_token(int(token.split("@")[0])) == token:
            continue
        instance.report_run_failed(run, f"its process ({token}) ended without finishing the run: killed or crashed")
        failed.append(run.run_id)
    return failed


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
    tags = {**(tags or {}), PROCESS_TAG: _process_token(os.getpid()) or str(os.getpid())}
    with instance_for(home) as instance:
        fail_runs_of_dead_processes(instance)
        try:
            result = job.execute_in_process(
                run_config=config, instance=instance, raise_on_error=False, tags=tags, partition_key=partition_key
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
        for name in (n for n in names if n not in known):
            try:
                instance.add_dynamic_partitions("bank_files", [name])
            except Exception:
                # Two uploads of one file at once both find it new; the storage's unique key refuses the
                # second insert. The partition then exists, which is all this asked for.
                if not instance.has_dynamic_partition("bank_files", name):
                    raise
