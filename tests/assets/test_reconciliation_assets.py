"""The whole loop on a real Dagster instance: files released, the sandbox bank answers, the sensor offers
each bank file, the reconcile job books it; nothing twice, nothing dropped."""

from __future__ import annotations

import shutil
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.home import Home
from assets.reconciliation import read_bank_file_and_hash, with_reason_actions
from ledger.db import open_ledger
from ledger.intake_files import file_sha256
from ledger.postings import balance, ledger_total
from ledger.reconciliation import unaccounted_lines
from pipelines.definitions import build_definitions
from pipelines.jobs import nightly_run_config, release_run_config, weekly_run_config
from pipelines.sandbox_bank import answer_released_files
from pipelines.sensors import bank_inbox_sensor
from sepa.bank_files import read_bank_file
from sepa.bank_messages import ENTRY_COLUMNS, write_camt054
from sepa.safe_xml import BankFileError
from tests.conftest import small_export

WEEK = "2024-05-20"


@pytest.fixture
def instance(home: Home):
    with dg.instance_for_test(temp_dir=str(home.dagster)) as instance:
        yield instance


def run(home: Home, instance: dg.DagsterInstance, job: str, config: dict | None = None, partition: str | None = None):
    defs = build_definitions(home)
    result = defs.resolve_job_def(job).execute_in_process(
        run_config=config or {}, instance=instance, partition_key=partition
    )
    assert result.success
    return result


def reconcile_inbox(home: Home, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    """What the sensor does: one run per file in inbox/bank, each file a dynamic partition."""
    defs = build_definitions(home)
    context = dg.build_sensor_context(instance=instance, resources={"home": defs.resources["home"]})
    result = bank_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return [run(home, instance, "reconcile", partition=r.partition_key) for r in result.run_requests]


@pytest.fixture
def answered(home: Home, instance: dg.DagsterInstance) -> Home:
    """Week 2024-W21 written, released and answered by the sandbox bank (nothing returned)."""
    small_export(home.shop_inbox)
    run(home, instance, "nightly", nightly_run_config(WEEK))
    run(home, instance, "weekly", weekly_run_config("main"), partition=WEEK)
    run(home, instance, "release", release_run_config("alice", None))
    written = answer_released_files(home, return_rate=0.0, seed=1)
    assert {p.name.split("-")[-1] for p in written} == {"pain002.xml", "camt054.xml", "camt053.xml"}
    return home


def test_bank_files_reconcile_through_the_sensor_and_job(answered: Home, instance: dg.DagsterInstance) -> None:
    """M1's collection is booked by the bank: the money is in the platform's account, nothing in transit,
    every line accounted for, the blocking check passed, the files archived."""
    results = reconcile_inbox(answered, instance)
    assert len(results) == 3
    assert all(c.passed for r in results for c in r.get_asset_check_evaluations())
    with open_ledger(answered.ledger) as con:
        assert con.execute("SELECT status FROM collections").fetchall() == [("booked",)]
        assert balance(con, "platform:collections_in_transit") == 0
        assert unaccounted_lines(con).is_empty() and ledger_total(con) == 0
    assert list(answered.bank_inbox.iterdir()) == []
    assert len(list((answered.root / "archive" / "bank").iterdir())) == 3


def test_the_same_bank_file_offered_again_books_nothing(answered: Home, instance: dg.DagsterInstance) -> None:
    """A lost sensor cursor or a second upload: the file is offered again and the ledger books nothing twice."""
    reconcile_inbox(answered, instance)
    with open_ledger(answered.ledger) as con:
        before = con.execute("SELECT COUNT(*) FROM postings").fetchone()[0]
    for archived in (answered.root / "archive" / "bank").iterdir():
        shutil.copy(archived, answered.bank_inbox / archived.name)
    forgotten = answered.root / "fresh-dagster"
    forgotten.mkdir()
    with dg.instance_for_test(temp_dir=str(forgotten)) as forgetful:
        reconcile_inbox(answered, forgetful)
    with open_ledger(answered.ledger) as con:
        assert con.execute("SELECT COUNT(*) FROM postings").fetchone()[0] == before
        assert ledger_total(con) == 0


def test_next_week_pays_the_customers_whose_money_was_collected(answered: Home, instance: dg.DagsterInstance) -> None:
    """Once M1's collection is booked, the next weekly run pays R1's customer (EUR 50.00 after the seed's
    instalments), and the bank's booking of that payout completes the refund."""
    reconcile_inbox(answered, instance)
    run(answered, instance, "weekly", weekly_run_config("main"), partition="2024-05-27")
    run(answered, instance, "release", release_run_config("alice", None))
    answer_released_files(answered, return_rate=0.0, seed=1)
    reconcile_inbox(answered, instance)
    with open_ledger(answered.ledger) as con:
        status = con.execute("SELECT status FROM refunds WHERE refund_ref = 'R1'").fetchone()[0]
        assert status == "completed"
        assert balance(con, "platform:payouts_in_transit") == 0
        assert balance(con, "platform:bank") == 30000  # M2's declared balance; M1 collected 50 and paid 50
        assert ledger_total(con) == 0


def test_returned_payouts_wait_for_new_bank_details(answered: Home, instance: dg.DagsterInstance) -> None:
    """Everything returned by the customer's bank: each returned refund is awaiting bank details with a
    notification (or returned, in the exceptions queue, where the reason needs a person)."""
    reconcile_inbox(answered, instance)
    run(answered, instance, "weekly", weekly_run_config("main"), partition="2024-05-27")
    run(answered, instance, "release", release_run_config("alice", None))
    answer_released_files(answered, return_rate=1.0, seed=3)
    reconcile_inbox(answered, instance)
    with open_ledger(answered.ledger) as con:
        status, problem = con.execute("SELECT status, iban_problem FROM refunds WHERE refund_ref = 'R1'").fetchone()
        notified = con.execute(
            "SELECT COUNT(*) FROM notifications n JOIN refunds r USING (refund_id) "
            "WHERE r.refund_ref = 'R1' AND n.template = 'refund_returned'"
        ).fetchone()[0]
        queued = con.execute("SELECT COUNT(*) FROM exceptions e JOIN refunds r USING (refund_id) "
                             "WHERE r.refund_ref = 'R1'").fetchone()[0]  # fmt: skip
        assert ledger_total(con) == 0 and unaccounted_lines(con).is_empty()
    assert (status == "awaiting_bank_details" and notified == 1 and "by the bank" in problem) or (
        status == "returned" and queued == 1
    )


def test_weekly_report_reads_as_finance_ops_expect(answered: Home, instance: dg.DagsterInstance) -> None:
    """The week's report: a workbook with the five sheets, names kept as text (a customer called "=cmd|..."
    is never a formula), and a summary in the run's metadata."""
    with open_ledger(answered.ledger) as con:
        con.execute("UPDATE refunds SET customer_name = '=cmd|'' /C calc''!A0' WHERE refund_ref = 'R1'")
    reconcile_inbox(answered, instance)
    run(answered, instance, "weekly", weekly_run_config("main"), partition="2024-05-27")
    result = run(answered, instance, "report", partition="2024-05-27")
    meta = result.asset_materializations_for_node("weekly_reconciliation_report")[0].metadata
    workbook = answered.reports / "reconciliation-2024-W22.xlsx"
    assert meta["workbook"].value == str(workbook) and "| payouts | 1 | EUR 50.00 |" in meta["summary"].value
    with zipfile.ZipFile(workbook) as book:
        names = [n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]
        sheets = book.read("xl/workbook.xml").decode()
        payouts_sheet = book.read("xl/worksheets/sheet1.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert len(names) == 6
    for title in ("payouts", "collections", "returns by reason", "exceptions", "ledger balances", "charts"):
        assert f'name="{title}"' in sheets
    assert "<f>" not in payouts_sheet and "=cmd|" in strings


def test_each_line_gets_its_return_reasons_action_and_meaning_in_its_place() -> None:
    lines = pl.DataFrame(
        {"entry_ref": ["a", "b", "c", "d", "e"], "return_reason": [None, "AC04", "ZZ99", "AM04", "AC04"]},
        schema={"entry_ref": pl.String, "return_reason": pl.String},
    )
    looked_up = with_reason_actions(lines)
    assert looked_up.columns == ["entry_ref", "return_reason", "reason_action", "reason_text"]
    assert looked_up["entry_ref"].to_list() == ["a", "b", "c", "d", "e"]
    assert looked_up["reason_action"].to_list() == [None, "ask_new_iban", None, "retry", "ask_new_iban"]
    assert looked_up["reason_text"].to_list() == [None, "ClosedAccountNumber", None, "InsufficientFunds",
                                                  "ClosedAccountNumber"]  # fmt: skip
    assert with_reason_actions(lines.head(0)).columns == looked_up.columns


def test_a_bank_file_is_hashed_while_it_is_read(tmp_path: Path) -> None:
    day = date(2024, 5, 21)
    entries = pl.DataFrame(
        {"entry_ref": ["E1", "E2"], "booking_date": [day, day], "value_date": [day, day], "direction": ["DBIT"] * 2,
         "amount_cents": [1234, 99], "bank_tx_code": ["PMNT/ICDT/ESCT"] * 2, "end_to_end_id": ["A-PO", "B-PO"]}
    )  # fmt: skip
    entries = entries.with_columns(
        [pl.lit(None, dtype).alias(c) for c, dtype in ENTRY_COLUMNS.items() if c not in entries.columns]
    ).select(list(ENTRY_COLUMNS))
    path = tmp_path / "camt054.xml"
    write_camt054(path, msg_id="T-1", created_at=datetime(2024, 5, 21, tzinfo=UTC),
                  account_iban="DE75512108001245126199", entries=entries)  # fmt: skip
    bank_file, sha = read_bank_file_and_hash(path)
    assert sha == file_sha256(path)
    assert bank_file.rows.equals(read_bank_file(path).rows) and bank_file.rows.height == 2
    path.write_bytes(path.read_bytes()[:-40])  # cut short
    with pytest.raises(BankFileError):
        read_bank_file_and_hash(path)
