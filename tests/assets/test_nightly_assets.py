"""The real assets materialized by the real jobs, against a temporary DuckDB and Dagster instance."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from ledger.db import open_ledger
from ledger.postings import ledger_total
from ledger.refunds import list_refunds
from pipelines.definitions import build_definitions
from pipelines.jobs import nightly_run_config, nightly_schedule
from pipelines.settings import Home
from tests.conftest import small_export, write_csv

TABLES = ("refunds", "refund_events", "transfers", "postings", "notifications", "rejects", "intake_files")


def run(home: Home, instance: dg.DagsterInstance, job: str, as_of: str | None = None) -> dg.ExecuteInProcessResult:
    defs = build_definitions(home)
    config = nightly_run_config(as_of) if as_of else {}
    return defs.resolve_job_def(job).execute_in_process(run_config=config, instance=instance)


@pytest.fixture
def instance(home: Home):
    with dg.instance_for_test(temp_dir=str(home.dagster)) as instance:
        yield instance


def statuses(home: Home) -> dict[str, str]:
    with open_ledger(home.ledger) as con:
        return dict(list_refunds(con).select("refund_ref", "status").iter_rows())


def test_nightly_job_loads_the_inbox_and_makes_refunds_due(home: Home, instance: dg.DagsterInstance) -> None:
    """Intake and the nightly step run as Dagster assets; the results land in the ledger and the metadata."""
    small_export(home.shop_inbox)
    result = run(home, instance, "nightly", "2024-05-20")
    assert result.success
    assert statuses(home) == {"R1": "due", "R2": "awaiting_bank_details", "R3": "blocked", "R4": "rejected"}
    assert sorted(p.name.split("-", 1)[1] for p in home.shop_archive.iterdir()) == [
        "merchants.csv", "orders.csv", "refunds.csv"]  # fmt: skip
    assert list(home.shop_inbox.iterdir()) == []

    intake = result.asset_materializations_for_node("shop_exports")[0].metadata
    assert intake["rows_loaded"].value == 2 + 4 + 4
    assert intake["rows_rejected"].value == 3
    assert "unknown merchant M9" in intake["rejects"].value
    due = result.asset_materializations_for_node("due_refunds")[0].metadata
    assert due["became_due"].value == 1
    assert due["due_payout_eur"].value == 50.0
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("ledger_balances_to_zero", True)]


def test_runs_are_recorded_in_the_instance(home: Home, instance: dg.DagsterInstance) -> None:
    """What the CLI and schedules launch shows in the UI: the run and its materializations are stored."""
    small_export(home.shop_inbox)
    result = run(home, instance, "nightly", "2024-05-20")
    stored = instance.get_run_by_id(result.run_id)
    assert stored is not None and stored.job_name == "nightly"
    latest = instance.get_latest_materialization_event(dg.AssetKey("due_refunds"))
    assert latest is not None and latest.run_id == result.run_id


def test_running_again_changes_nothing(home: Home, instance: dg.DagsterInstance) -> None:
    """A second nightly run for the same day, with the same files uploaded again, books nothing twice."""
    small_export(home.shop_inbox)
    run(home, instance, "nightly", "2024-05-20")
    with open_ledger(home.ledger) as con:
        before = [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES]
    small_export(home.shop_inbox)
    assert run(home, instance, "nightly", "2024-05-20").success
    with open_ledger(home.ledger) as con:
        after = [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES]
        assert ledger_total(con) == 0
    assert after == before


def test_unreadable_file_is_set_aside_and_the_rest_loads(home: Home, instance: dg.DagsterInstance) -> None:
    """A file missing a required column is refused whole, kept in archive/shop-refused, named in the rejects."""
    small_export(home.shop_inbox)
    write_csv(home.shop_inbox, "payments.csv", [{"payment_id": "P1", "merchant_id": "M1", "payer_name": "X"}])
    result = run(home, instance, "intake")
    assert result.success
    refused = list(home.shop_refused.iterdir())
    assert len(refused) == 1 and refused[0].name.endswith("payments.csv")
    with open_ledger(home.ledger) as con:
        problem = con.execute("SELECT problem FROM rejects WHERE severity = 'file'").fetchone()[0]
    assert problem == (
        "payments.csv: missing required columns amount_cents, received_on (found: payment_id, merchant_id, payer_name)"
    )
    assert statuses(home)["R1"] == "scheduled"


def test_nightly_schedule_runs_for_its_own_day() -> None:
    """The schedule asks for the nightly job with the day it fires on, once per day (run key)."""
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 5, 20, 1, 30))
    request = nightly_schedule.evaluate_tick(context).run_requests[0]
    assert request.run_config == nightly_run_config("2024-05-20")
    assert request.run_key == "nightly-2024-05-20"


def test_definitions_load_as_the_ui_loads_them(home: Home) -> None:
    """workspace.yaml's module loads, with the jobs, schedule and checks the UI shows."""
    defs = build_definitions(home)
    dg.Definitions.validate_loadable(defs)
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"intake", "nightly"}
    assert defs.resolve_schedule_def("nightly_schedule").default_status == dg.DefaultScheduleStatus.RUNNING
