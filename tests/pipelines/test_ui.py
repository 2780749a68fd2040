"""End to end through the Dagster UI: the real `payouts ui` on an installation the CLI built, driven through its
GraphQL API as the Launchpad does, and looked at in headless Chromium."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ledger.db import open_ledger
from ledger.postings import balances
from ledger.refunds import list_refunds
from pipelines.settings import Home
from tests.pipelines.commands import json_lines, payouts
from tests.pipelines.ui_server import UiServer

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = pytest.mark.slow

WEEK = "2024-W21"
MONDAY = "2024-05-20"  # weekly partitions are keyed by their Monday (assets/payment_files.py)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ASSETS = [
    "shop_exports", "due_refunds", "merchant_collections", "customer_payouts", "released_payment_files",
    "reconciled_bank_files", "weekly_reconciliation_report",
]  # fmt: skip


def cells(*texts: str) -> re.Pattern[str]:
    """Consecutive cells of a rendered Markdown table row, whatever whitespace the browser puts between them."""
    return re.compile(r"\s*".join(re.escape(t) for t in texts))


# The week's summary as the report shows it: M1's collection of EUR 50.00, returned, and its open exception.
SUMMARY = [
    cells("payouts", "0", "EUR 0.00"),
    cells("collections", "1", "EUR 50.00"),
    cells("returns and rejects", "1", "EUR 50.00"),
    cells("open exceptions", "1"),
]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The sample export taken through one whole week by the CLI: intake, nightly, weekly files, release, the
    sandbox bank's answers and reconciliation. The sandbox returns every transaction (--return-rate 1), so the
    week's report has a return (M1's collection, MD01) to show."""
    home = Home(tmp_path_factory.mktemp("ui") / "home")
    samples = Path(__file__).resolve().parents[2] / "data" / "samples"
    payouts(home, "import", str(samples))
    payouts(home, "run", "nightly", "--date", MONDAY)
    payouts(home, "run", "weekly", "--week", WEEK)
    payouts(home, "files", "release", "--all", "--by", "alice")
    payouts(home, "sandbox-bank", "--return-rate", "1", "--seed", "7")
    payouts(home, "run", "reconcile")
    return home


@pytest.fixture(scope="module")
def ui(installation: Home) -> Iterator[UiServer]:
    """`payouts ui` on the installation, stopped (its whole process group) when the module is done."""
    server = UiServer(installation, installation.root.parent / "ui.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def report_run(ui: UiServer) -> dict:
    """The `report` job launched for the week's partition, as the Launchpad launches a partitioned run."""
    return ui.launch_and_wait("report", {}, tags={"dagster/partition": MONDAY})


def history(home: Home, ref: str) -> list[dict]:
    return json_lines(payouts(home, "refunds", "history", ref, "--json").stdout)


def ledger_state(home: Home) -> tuple[list[dict], list[dict], list[dict]]:
    """Every refund, every audit event and every balance, read straight from the DuckDB file. Only between
    runs: DuckDB lets one process at a time open the file, and a run would fail while the test holds it."""
    with open_ledger(home.ledger) as con:
        events = con.execute("SELECT * FROM refund_events ORDER BY ALL").pl()
        return list_refunds(con).to_dicts(), events.to_dicts(), balances(con).to_dicts()


@pytest.fixture(scope="module")
def due_ref(installation: Home) -> str:
    """A refund the week left `due` (M1's instalment refund: its collection came back, its payout waits)."""
    rows = json_lines(payouts(installation, "refunds", "list", "--status", "due", "--json").stdout)
    assert rows, "the sample week left no refund due"
    return rows[0]["refund_ref"]


def test_status_change_launched_through_graphql_is_audited(ui: UiServer, installation: Home, due_ref: str) -> None:
    """A `refund_status_change` run launched through GraphQL goes through the run queue, succeeds and records
    the change in the ledger's audit trail with who and why; no money moves."""
    _, _, balances_before = ledger_state(installation)
    config = {"refund": due_ref, "status": "in_progress", "by": "alice", "reason": "customer called"}
    run = ui.launch_and_wait("refund_status_change", {"ops": {"change_refund_status": {"config": config}}})
    assert run["status"] == "SUCCESS", ui.step_failures(run["runId"])
    last = history(installation, due_ref)[-1]
    assert (last["from_status"], last["to_status"], last["actor"], last["reason"]) == (
        "due", "in_progress", "alice", "customer called")  # fmt: skip
    refunds, _, balances_after = ledger_state(installation)
    assert {r["refund_ref"]: r["status"] for r in refunds}[due_ref] == "in_progress"
    assert balances_after == balances_before


def test_invalid_status_through_graphql_changes_nothing(ui: UiServer, installation: Home, due_ref: str) -> None:
    """A status that does not exist is refused (at launch by config validation, or by the op): the run fails
    naming the bad status, and no refund, audit event or balance changes."""
    before = ledger_state(installation)
    config = {"refund": due_ref, "status": "paid_twice", "by": "alice", "reason": "customer called"}
    launched = ui.launch("refund_status_change", {"ops": {"change_refund_status": {"config": config}}})
    if launched["__typename"] == "RunConfigValidationInvalid":
        assert any("paid_twice" in e["message"] for e in launched["errors"]), launched
    else:
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run = ui.wait_for_run(launched["run"]["runId"])
        assert run["status"] == "FAILURE"
        assert any("'paid_twice' is not a valid Status" in m for m in ui.step_failures(run["runId"]))
    assert ledger_state(installation) == before


def test_report_for_a_week_partition_writes_the_workbook(report_run: dict, installation: Home) -> None:
    """The `report` job launched for a weekly partition through GraphQL succeeds for that partition and
    writes the week's Excel workbook into reports/."""
    assert report_run["status"] == "SUCCESS"
    assert {t["key"]: t["value"] for t in report_run["tags"]}["dagster/partition"] == MONDAY
    workbook = installation.reports / f"reconciliation-{WEEK}.xlsx"
    assert workbook.read_bytes()[:2] == b"PK"  # an xlsx is a zip archive


def test_browser_shows_the_asset_graph_and_the_report_metadata(
    ui: UiServer, report_run: dict, installation: Home, tmp_path: Path
) -> None:
    """In headless Chromium the UI shows every asset on the global lineage graph, the report run's
    materialization with its metadata (the summary's Markdown opens with the week's figures), and the report
    asset's page with summary, workbook and returns by reason. Screenshots are saved under tmp_path."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium missing at {CHROMIUM} (.ci/run installs Debian's package)")
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    ui.gql("mutation { setNuxSeen }")  # what the community pop-up's Skip does; it would cover the pages
    workbook = str(installation.reports / f"reconciliation-{WEEK}.xlsx")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # A large window: fitted to it the graph is drawn with full asset nodes, not truncated labels.
            page = browser.new_page(viewport={"width": 2400, "height": 1500})
            # Generous waits: on two busy cores the SPA can take longer than playwright's 5 s default to render.
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)

            page.goto(f"{ui.url}/asset-groups")
            # The settings menu offers "Expand all groups" only once the groups are drawn (as collapsed nodes);
            # how a collapsed node is labelled depends on the zoom, so wait for the groups and the data instead.
            for group in ("intake", "refunds", "payment_files", "reconciliation", "reports"):
                expect(page.get_by_role("button", name=f"asset_group {group} {group}")).to_be_visible()
            page.wait_for_load_state("networkidle")
            # Groups start collapsed; the graph's settings menu expands them, as a person would.
            page.locator("button").filter(has=page.get_by_role("img", name="settings", exact=True)).last.click()
            page.get_by_role("menuitem", name="Expand all groups").click()
            page.keyboard.press("Escape")
            for asset in ASSETS:
                expect(page.get_by_text(asset, exact=True).first).to_be_visible()
            page.wait_for_load_state("networkidle")  # statuses fetched, so the picture shows them
            page.screenshot(path=tmp_path / "asset-graph.png", full_page=True)

            page.goto(f"{ui.url}/runs/{report_run['runId']}")
            message = page.get_by_text("Materialized value weekly_reconciliation_report.")
            expect(message).to_be_visible()
            expect(page.get_by_text("RUN_SUCCESS", exact=True)).to_be_visible()

            def entry(key: str) -> Locator:
                return message.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))

            expect(entry("partition")).to_contain_text(MONDAY)
            expect(entry("week")).to_contain_text(WEEK)
            expect(entry("workbook")).to_contain_text(workbook)
            expect(entry("returns_by_reason")).to_contain_text("[Show Markdown]")
            entry("summary").get_by_text("[Show Markdown]").click()
            dialog = page.get_by_role("dialog")
            for figures in SUMMARY:
                expect(dialog).to_contain_text(figures)
            page.screenshot(path=tmp_path / "report-run.png", full_page=True)
            page.keyboard.press("Escape")

            page.goto(f"{ui.url}/assets/weekly_reconciliation_report")
            expect(page.get_by_text(MONDAY).first).to_be_visible()  # the latest materialization's partition

            def row(key: str) -> Locator:
                return page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))

            expect(row("week")).to_contain_text(WEEK)
            expect(row("workbook")).to_contain_text(workbook)
            for figures in SUMMARY:
                expect(row("summary")).to_contain_text(figures)
            expect(row("returns_by_reason")).to_contain_text(cells("collection", "MD01", "returned", "1", "EUR 50.00"))
            page.wait_for_load_state("networkidle")
            page.screenshot(path=tmp_path / "report-asset.png", full_page=True)
        finally:
            browser.close()
