"""End to end through the `payouts` command, as a user types it, on a temporary installation: run by the CLI's
own app in the test's process (`commands.payouts`), and through the installed command for the import, the help
and the demo (`commands.installed`)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from ledger.db import open_ledger
from pipelines.cli import app
from pipelines.settings import Home
from sepa.pain001 import build_credit_transfers
from sepa.parties import Party
from tests.conftest import corpus_dir, small_export
from tests.pipelines.commands import installed, json_lines, payouts


def commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the CLI, as the words a user types (`files release`)."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group of subcommands
            found.extend(commands(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The small export imported and the nightly run done for 2024-05-20, once per module."""
    base = tmp_path_factory.mktemp("prepared")
    home = Home(base / "home").prepare()
    small_export(base / "export")
    payouts(home, "import", str(base / "export"))
    payouts(home, "run", "nightly", "--date", "2024-05-20")
    return home


@pytest.fixture
def loaded(prepared: Home, tmp_path: Path) -> Home:
    """A private copy of the prepared installation, for a test that changes it."""
    root = tmp_path / "loaded"
    shutil.copytree(prepared.root, root)
    return Home(root)


def test_import_reports_each_bad_row_precisely_and_loads_the_rest(home: Home, tmp_path: Path) -> None:
    small_export(tmp_path / "export")
    done = installed(home, "import", str(tmp_path / "export"))
    assert "refunds.csv: 4 of 7 rows loaded, 3 rejected" in done.stdout
    assert "refunds.csv, line 6, column refund_ref: duplicate" in done.stdout
    assert "refunds.csv, line 7, column merchant_id: unknown merchant M9" in done.stdout
    assert "refunds.csv, line 8, column amount_cents: not a whole number of cents" in done.stdout
    rejects = json_lines(payouts(home, "rejects", "list", "--json").stdout)
    assert {(r["line"], r["column_name"]) for r in rejects} == {(6, "refund_ref"), (7, "merchant_id"),
                                                               (8, "amount_cents")}  # fmt: skip
    again = payouts(home, "import", str(tmp_path / "export"))
    assert "refunds.csv: 4 of 7 rows loaded" in again.stdout  # the recorded outcome, not a second load
    assert len(json_lines(payouts(home, "rejects", "list", "--json").stdout)) == 3


def test_refund_list_json_has_the_contract_keys(loaded: Home) -> None:
    rows = {r["refund_ref"]: r for r in json_lines(payouts(loaded, "refunds", "list", "--json").stdout)}
    keys = {"refund_ref", "merchant_id", "order_id", "payment_id", "status", "amount_cents", "payout_cents",
            "due_on", "reason"}  # fmt: skip
    assert all(keys <= set(r) for r in rows.values())
    assert rows["R1"]["status"] == "due" and rows["R1"]["amount_cents"] == 25000 and rows["R1"]["payout_cents"] == 5000
    assert rows["R4"]["status"] == "rejected" and "EUR 60.00" in rows["R4"]["reason"]
    due = json_lines(payouts(loaded, "refunds", "list", "--status", "due", "--json").stdout)
    assert [r["refund_ref"] for r in due] == ["R1"]
    m2 = json_lines(payouts(loaded, "refunds", "list", "--merchant", "M2", "--json").stdout)
    assert sorted(r["refund_ref"] for r in m2) == ["R2", "R3"]


def test_runs_show_in_the_persistent_instance(loaded: Home) -> None:
    with dg.DagsterInstance.from_config(str(loaded.dagster)) as instance:
        jobs = sorted(r.job_name for r in instance.get_runs())
    assert jobs == ["intake", "nightly"]
    assert "enabled: false" in (loaded.dagster / "dagster.yaml").read_text()


def test_manual_status_is_audited_and_moves_no_money(loaded: Home) -> None:
    balances_before = payouts(loaded, "ledger", "balances", "--json").stdout
    payouts(loaded, "refunds", "set-status", "R1", "in_progress", "--by", "alice", "--reason", "customer called")
    history = json_lines(payouts(loaded, "refunds", "history", "R1", "--json").stdout)
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "scheduled"), ("scheduled", "due"), ("due", "in_progress")]  # fmt: skip
    assert history[-1]["actor"] == "alice" and history[-1]["reason"] == "customer called"
    assert payouts(loaded, "ledger", "balances", "--json").stdout == balances_before
    refused = payouts(loaded, "refunds", "set-status", "R1", "due", "--by", "alice", "--reason", "x", ok=False)
    assert refused.returncode == 1 and "set by the pipeline, not by hand" in refused.stderr


def status_of(home: Home, ref: str) -> str:
    rows = json_lines(payouts(home, "refunds", "list", "--json").stdout)
    return {r["refund_ref"]: r["status"] for r in rows}[ref]


def test_customer_gives_and_confirms_bank_details(loaded: Home) -> None:
    """The customer's link: the merchant's own account is refused, a new IBAN schedules, confirming makes due."""
    own = payouts(loaded, "refunds", "bank-details", "R2", "--iban", "FR76 3000 6000 0112 3456 7890 189", ok=False)
    assert own.returncode == 1 and "merchant's own account" in own.stderr
    assert status_of(loaded, "R2") == "awaiting_bank_details"
    payouts(loaded, "refunds", "bank-details", "R2", "--iban", "at61 1904 3002 3457 3201")
    assert status_of(loaded, "R2") == "scheduled"
    payouts(loaded, "refunds", "bank-details", "R2", "--confirm")
    assert status_of(loaded, "R2") == "due"
    history = json_lines(payouts(loaded, "refunds", "history", "R2", "--json").stdout)
    assert [h["to_status"] for h in history] == ["awaiting_bank_details", "awaiting_bank_details", "scheduled", "due"]
    assert history[1]["reason"] == "IBAN changed from none to AT61 **** 3201"
    bad = payouts(loaded, "refunds", "bank-details", "R3", "--iban", "DE00370400440532013000", ok=False)
    assert bad.returncode == 1 and "invalid IBAN" in bad.stderr


def test_ledger_balances_sum_to_zero(loaded: Home) -> None:
    rows = json_lines(payouts(loaded, "ledger", "balances", "--json").stdout)
    assert {"account", "balance_cents"} <= set(rows[0])
    assert sum(r["balance_cents"] for r in rows) == 0
    accounts = {r["account"]: r["balance_cents"] for r in rows}
    assert accounts["merchant:M1:receivable"] == 5000 and accounts["merchant:M2:balance"] == -25000


def test_notifications_name_their_refund(loaded: Home) -> None:
    rows = json_lines(payouts(loaded, "notifications", "list", "--json").stdout)
    templates = {r["refund_ref"]: r["template"] for r in rows}
    assert templates == {"R1": "refund_scheduled", "R2": "bank_details_needed", "R3": "balance_insufficient",
                         "R4": "refund_refused"}  # fmt: skip


def test_every_command_has_help_with_an_example(home: Home) -> None:
    """Every command, found by walking the CLI (so a new one cannot be forgotten), explains itself and
    shows an example; the installed `payouts` prints the same help."""
    every = commands(typer.main.get_command(app))
    assert len(every) >= 35 and ("exceptions", "resolve") in every and ("run", "backfill") in every
    runner = CliRunner()
    for command in every:
        shown = runner.invoke(app, [*command, "--help"], terminal_width=200)
        assert shown.exit_code == 0 and "Example:" in shown.output, command
    assert "Example:" in installed(home, "files", "cancel", "--help").stdout


def test_weekly_run_writes_validates_and_releases_files(loaded: Home) -> None:
    """`payouts run weekly` writes the week's collection file through Dagster; it validates; a second
    run writes nothing new; `payouts files release` hands it to the bank folder and records who did."""
    payouts(loaded, "run", "weekly", "--week", "2024-W21")
    files = json_lines(payouts(loaded, "files", "list", "--json").stdout)
    assert [(f["kind"], f["message_type"], f["n_tx"], f["ctrl_sum_cents"], f["status"]) for f in files] == [
        ("collection", "pain.008.001.02", 1, 5000, "written")]  # fmt: skip
    name = files[0]["file_name"]
    pending = loaded.outbox / "pending" / name
    checked = payouts(loaded, "files", "validate", str(pending))
    assert checked.stdout.strip() == f"{name}: valid pain.008.001.02"

    payouts(loaded, "run", "weekly", "--week", "2024-W21")
    assert json_lines(payouts(loaded, "files", "list", "--json").stdout) == files

    refused = payouts(loaded, "files", "release", "--all", ok=False)
    assert refused.returncode == 2 and "--by" in refused.stderr
    payouts(loaded, "files", "release", "--all", "--by", "alice")
    released = json_lines(payouts(loaded, "files", "list", "--json").stdout)[0]
    assert (released["status"], released["released_by"]) == ("released", "alice")
    assert not pending.exists() and (loaded.outbox / "released" / name).exists()
    accounts = {
        r["account"]: r["balance_cents"] for r in json_lines(payouts(loaded, "ledger", "balances", "--json").stdout)
    }
    assert accounts["platform:collections_in_transit"] == 5000 and accounts["merchant:M1:receivable"] == 0


def test_validate_names_the_element_and_line_of_each_error(home: Home, tmp_path: Path) -> None:
    """A payment file with a broken IBAN fails validation with exit status 1, naming line and element."""
    good = tmp_path / "good.xml"

    xml = build_credit_transfers(
        Party("Refund Platform GmbH", "DE75512108001245126199", "SOGEDEFFXXX"),
        pl.DataFrame({"end_to_end_id": ["E1"], "amount_cents": [1234], "name": ["Anna"],
                      "iban": ["DE02120300000000202051"], "bic": [None], "remittance": ["Refund"]},
                     schema_overrides={"bic": pl.String}),
        msg_id="PO-TEST-0001", payment_info_id="PO-TEST-0001-1", execution_date=date(2024, 5, 21),
        version="pain.001.001.03", created_at=datetime(2024, 5, 20, 6, 0),
    )  # fmt: skip
    good.write_bytes(xml)
    assert payouts(home, "files", "validate", str(good)).returncode == 0
    bad = tmp_path / "bad.xml"
    bad.write_bytes(xml.replace(b"DE02120300000000202051", b"DE02 1203"))
    done = payouts(home, "files", "validate", str(bad), ok=False)
    assert done.returncode == 1
    assert re.search(r"bad\.xml: line \d+: .*IBAN.*'DE02 1203'", done.stdout), done.stdout


def test_inspect_prints_the_contract_keys_and_refuses_hostile_files(home: Home, tmp_path: Path) -> None:
    """`payouts inspect --json`: one object per transaction with the documented keys; a file with an external
    entity is refused with exit status 2 and one line, and nothing from outside the file is printed."""
    corpus = corpus_dir() / "camt053" / "libeufin-de.camt.053.001.02.xml"
    if not corpus.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing at {corpus}")
        pytest.skip(f"corpus not found at {corpus} (set PAYOUTS_CORPUS)")
    rows = json_lines(payouts(home, "inspect", str(corpus), "--json").stdout)
    keys = {"message_type", "message_id", "account_iban", "entry_ref", "booking_date", "value_date", "status",
            "direction", "amount_cents", "currency", "reversal", "bank_tx_code", "end_to_end_id", "payment_info_id",
            "instruction_id", "mandate_id", "return_reason", "return_info", "original_amount_cents", "charges_cents",
            "counterparty_name", "counterparty_iban", "remittance"}  # fmt: skip
    assert rows and all(keys <= set(r) for r in rows)
    returned = [r for r in rows if r["bank_tx_code"] == "PMNT/ICDT/RRTN"]
    assert [r["return_reason"] for r in returned] == ["AC01"]
    hostile = tmp_path / "evil.xml"
    hostile.write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&x;</BkToCstmrStmt></Document>'
    )
    done = payouts(home, "inspect", str(hostile), "--json", ok=False)
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "root:" not in done.stderr


def test_demo_closes_the_loop(home: Home) -> None:
    """`payouts demo` on a small shop, end to end through Dagster: every line the sandbox bank wrote is
    matched, every returned refund waits for bank details with a notification, the ledger sums to zero."""
    done = installed(home, "demo", "--merchants", "12", "--orders", "600", "--weeks", "2", "--seed", "3")
    assert "ledger total (must be zero): EUR 0.00" in done.stdout
    with open_ledger(home.ledger) as con:
        outcomes = dict(con.execute(
            "SELECT outcome, COUNT(*) FROM bank_lines WHERE file_name LIKE 'SBX-%' GROUP BY outcome"
        ).fetchall())  # fmt: skip
        returned = con.execute(
            "SELECT r.refund_ref, r.status, (SELECT COUNT(*) FROM notifications n WHERE n.refund_id = r.refund_id "
            "AND n.template = 'refund_returned') FROM refunds r WHERE r.refund_id IN "
            "(SELECT matched_ref FROM bank_lines WHERE event IN ('returned', 'rejected') AND matched_kind = 'payout')"
        ).fetchall()
        files = con.execute("SELECT DISTINCT status FROM payment_files").fetchall()
    assert set(outcomes) == {"matched"} and outcomes["matched"] > 0
    assert all(status == "awaiting_bank_details" and notified >= 1 for _, status, notified in returned), returned
    assert files and {s for (s,) in files} <= {"released", "acknowledged"}


def test_validate_uses_schemas_the_installation_adds(home: Home) -> None:
    """pain.002.001.03 is not shipped: without its schema a report cannot be validated (exit 1, saying so);
    with the schema in $PAYOUTS_HOME/xsd/ it validates."""
    corpus = corpus_dir()
    report = corpus / "pain002" / "iso20022js-nordea-pain_002_v3_group_reject.xml"
    schema = corpus / "xsd" / "pyiso20022-pain.002.001.03.xsd"
    if not report.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing at {corpus}")
        pytest.skip(f"corpus not found at {corpus} (set PAYOUTS_CORPUS)")
    missing = payouts(home, "files", "validate", str(report), ok=False)
    assert missing.returncode == 1 and "no XSD available for pain.002.001.03" in missing.stdout
    (home.root / "xsd").mkdir()
    shutil.copy(schema, home.root / "xsd" / "pain.002.001.03.xsd")  # into the temporary installation only
    assert payouts(home, "files", "validate", str(report)).stdout.strip().endswith("valid pain.002.001.03")


def test_status_shows_where_money_stands(loaded: Home) -> None:
    """`payouts status --json`: every stage with its count and payout, the ledger position, open work."""
    rows = json_lines(payouts(loaded, "status", "--json").stdout)
    stages = {r["status"]: r for r in rows if r["table"] == "refunds"}
    assert (stages["due"]["refunds"], stages["due"]["payout_cents"]) == (1, 5000)
    assert stages["blocked"]["refunds"] == 1 and stages["completed"]["refunds"] == 0
    ledger = {r["what"]: r["balance_cents"] for r in rows if r["table"] == "ledger"}
    assert ledger["owed to customers"] == -10000 and ledger["owed by own-account merchants"] == 5000
    work = {r["what"]: r["items"] for r in rows if r["table"] == "work"}
    assert work["open exceptions"] == 0 and work["payment files waiting for release"] == 0
    table = payouts(loaded, "status").stdout
    assert "Refunds by stage" in table and "EUR 50.00" in table
