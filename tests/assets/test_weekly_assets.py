"""The weekly payment files end to end: the real weekly and release jobs on a temporary Dagster instance and
DuckDB ledger, writing real pain.008 / pain.001 files into a temporary outbox that the tests read back."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest

from assets.outbox import run_window, write_collection_files, write_payout_files
from ledger.db import open_ledger
from ledger.intake import refund_id_for
from ledger.payment_files import ReleaseRefused
from ledger.postings import balance, ledger_total
from ledger.refunds import refund_history
from pipelines.definitions import build_definitions
from pipelines.jobs import release_run_config, weekly_run_config
from pipelines.resources import BankProfileResource
from pipelines.settings import Home
from sepa import ids
from sepa.calendar import is_business_day
from sepa.xsd import validate_document
from tests.assets.weekly_fixtures import (
    CREDITOR_ID,
    PLATFORM_IBAN,
    LedgerTemplates,
    load_books,
    make_due,
    pending,
    pending_files,
    postings,
    read_pain,
    registry,
    released,
    run_release,
    run_weekly,
    sha256_of,
    sql,
    statuses,
    step_failures,
    transfer_kinds,
    write_bank_profile,
)
from tests.ledger.shop import (
    IBAN_BAD_CHECK,
    IBAN_CARRIER,
    IBAN_CUSTOMER,
    IBAN_MERCHANT,
    integrated,
    memory_ledger,
    merchant,
    order,
    refund,
)

WEEK21 = "2024-05-20"  # partition key: the Monday of ISO week 2024-W21
WEEK22 = "2024-05-27"
RELEASE_KINDS = {"collection_released", "collection_fee", "payout_released"}

# M1 own account, weekly; M2 integrated (five customers to pay, the first with a name outside the EPC set);
# M3 own account, a direct debit per refund (50 cents fee each); M4 own account without a mandate; M5 own
# account whose IBAN fails its check; M6 own account, paid as soon as its collection is released.
WEEK21_BOOKS = {
    "merchants": [
        merchant("M1", name="Schuh Müller"),
        integrated("M2", balance_cents=100_000, name="Café Élise"),
        merchant("M3", name="Kleider Kunz", collection="per_refund"),
        merchant("M4", mandate_id="", mandate_signed_on=""),
        merchant("M5", iban=IBAN_BAD_CHECK),
        merchant("M6", name="Möbel Sechs", pay_on_release="true"),
    ],
    "excluded": [{"iban": IBAN_CARRIER, "owner": "Parcel Express", "kind": "carrier"}],
    "orders": [
        order("O1", "M1"),
        # The seed's instalment plan: 400 EUR in 4 x 100, two paid; a refund of 250 pays out 50.
        order("O1I", "M1", amount_cents=40_000, paid_cents=20_000, instalments=4, instalments_paid=2),
        order("O2", "M2", customer_name="Jörg Österle & Söhne"),
        *(order(f"O2{x}", "M2", customer_name=f"Kunde {x}") for x in "BCDE"),
        order("O3", "M3"),
        order("O4", "M4"),
        order("O5", "M5"),
        order("O6", "M6"),
    ],
    # Requested 2024-05-10, so due on 2024-05-17 (7 waiting days): due by the Monday of week 21.
    "refunds": [
        refund("R1", 1000, "O1", merchant_id="M1"),
        refund("R1I", 25_000, "O1I", merchant_id="M1"),
        refund("R2", 1500, "O2", merchant_id="M2"),
        *(refund(f"R2{x}", 1000 + 100 * i, f"O2{x}", merchant_id="M2") for i, x in enumerate("BCDE")),
        refund("R3A", 500, "O3", merchant_id="M3"),
        refund("R3B", 700, "O3", merchant_id="M3"),
        refund("R4", 900, "O4", merchant_id="M4"),
        refund("R5", 800, "O5", merchant_id="M5"),
        refund("R6", 1200, "O6", merchant_id="M6"),
    ],
    "due_by": date(2024, 5, 20),
}
M2_PAYOUTS = {"R2": 1500, "R2B": 1000, "R2C": 1100, "R2D": 1200, "R2E": 1300}


@pytest.fixture(scope="session")
def ledger_templates(tmp_path_factory: pytest.TempPathFactory) -> LedgerTemplates:
    """Ledgers loaded once per session; each test gets its own copy."""
    return LedgerTemplates(tmp_path_factory.mktemp("weekly-ledgers"))


@pytest.fixture
def instance(home: Home) -> Iterator[dg.DagsterInstance]:
    """A temporary Dagster instance (in-memory run and event storage, artifacts in the installation's Dagster
    home): the same execution as the installation's instance, at half the cost per run."""
    with dg.DagsterInstance.ephemeral(tempdir=str(home.dagster)) as instance:
        yield instance


@pytest.fixture
def week21(home: Home, ledger_templates: LedgerTemplates) -> Home:
    """The installation with WEEK21_BOOKS loaded and its refunds due by Monday 2024-05-20."""
    ledger_templates.install(home, "week21", **WEEK21_BOOKS)
    return home


@pytest.fixture(scope="module")
def week21_run(
    tmp_path_factory: pytest.TempPathFactory, ledger_templates: LedgerTemplates
) -> Iterator[tuple[Home, dg.ExecuteInProcessResult]]:
    """The main run of week 21 on WEEK21_BOOKS, made once for the tests that only read what it wrote."""
    home = Home(tmp_path_factory.mktemp("week21-run") / "home").prepare()
    ledger_templates.install(home, "week21", **WEEK21_BOOKS)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PAYOUTS_HOME", str(home.root))
        env.setenv("DAGSTER_HOME", str(home.dagster))
        with dg.DagsterInstance.ephemeral(tempdir=str(home.dagster)) as instance:
            yield home, run_weekly(home, instance, WEEK21)


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def by_mandate(files: list) -> dict[str, list[int]]:
    """Debited amounts per mandate, over all the given pain.008 files."""
    found: dict[str, list[int]] = {}
    for f in files:
        for tx in f.transactions:
            found.setdefault(tx["mandate_id"], []).append(tx["amount_cents"])
    return {k: sorted(v) for k, v in found.items()}


REFS = [(r["merchant_id"], r["refund_ref"]) for r in WEEK21_BOOKS["refunds"]]


def paid_refs(files: list) -> set[str]:
    """Refund references paid in the given pain.001 files, from their EndToEndIds (unknown ids as they are)."""
    refs = {ids.end_to_end_id(refund_id_for(m, r), "payout"): r for m, r in REFS}
    return {refs.get(tx["end_to_end_id"], tx["end_to_end_id"]) for f in files for tx in f.transactions}


def test_weekly_run_collects_each_own_account_merchant_once(
    week21_run: tuple[Home, dg.ExecuteInProcessResult],
) -> None:
    """The main run writes one pain.008 holding one direct debit per own-account merchant for the sum of its due
    refunds' payouts (M1: 10 EUR + the instalment refund's 50 EUR payout), one per refund plus the fee for the
    per-refund merchant M3, none for the integrated M2; the blocking checks pass and no money moves yet."""
    week21, result = week21_run
    assert result.success
    [debits] = pending_files(week21, "DD-")
    assert by_mandate([debits]) == {"MANDATE-M1": [6000], "MANDATE-M3": [550, 750], "MANDATE-M6": [1200]}
    assert debits.n_tx == 4 and debits.ctrl_sum_cents == 6000 + 550 + 750 + 1200
    names = {tx["mandate_id"]: tx["name"] for tx in debits.transactions}
    assert names["MANDATE-M1"] == "Schuh Mueller"
    assert {tx["iban"] for tx in debits.transactions} == {IBAN_MERCHANT}
    assert debits.msg_id == "DD-2024-W21-0001" and debits.path.name == "DD-2024-W21-0001.xml"
    assert stat.S_IMODE(debits.path.stat().st_mode) == 0o640

    files = registry(week21)
    assert files.select("file_name", "kind", "n_tx", "ctrl_sum_cents", "validation", "status").rows() == [
        ("DD-2024-W21-0001.xml", "collection", 4, 8500, "valid", "written"),
        ("PO-2024-W21-0001.xml", "payout", 5, sum(M2_PAYOUTS.values()), "valid", "written"),
    ]
    assert files["sha256"].to_list() == [sha256_of(week21.outbox / "pending" / n) for n in files["file_name"]]
    assert sql(week21, "SELECT COUNT(*) FROM collections WHERE merchant_id = 'M2'") == [(0,)]
    assert all(checks(result).values()) and len(checks(result)) == 6
    assert not RELEASE_KINDS & set(transfer_kinds(week21))  # written, not released: nothing moved
    meta = metadata(result, "merchant_collections")
    assert (meta["files_written"], meta["transactions"], meta["control_sum_eur"]) == (1, 4, 85.0)


def test_merchants_that_cannot_be_debited_are_skipped_and_the_run_goes_on(
    week21_run: tuple[Home, dg.ExecuteInProcessResult],
) -> None:
    """M4 (no mandate) and M5 (IBAN fails its check) are reported with the reason; their refunds stay due for a
    later run, and every other merchant's collection and the payouts are still written."""
    week21, result = week21_run
    assert result.success
    skipped = metadata(result, "merchant_collections")["skipped"]
    assert "M4" in skipped and "no SEPA mandate" in skipped
    assert "M5" in skipped and "IBAN cannot be debited" in skipped
    assert "MANDATE-M5" not in by_mandate(pending_files(week21, "DD-"))
    assert set(by_mandate(pending_files(week21, "DD-"))) == {"MANDATE-M1", "MANDATE-M3", "MANDATE-M6"}
    assert statuses(week21)[("M4", "R4")] == "due" and statuses(week21)[("M5", "R5")] == "due"
    assert len(pending_files(week21, "PO-")) == 1


def test_mandate_signed_after_the_collection_date_is_skipped_not_fatal(
    week21: Home, instance: dg.DagsterInstance
) -> None:
    """A mandate whose signature date lies after the run's collection date (a re-run of an earlier week, or a
    typo in merchants.csv) cannot carry the debit: that merchant is skipped with the reason like one without a
    mandate, and the other merchants' collections and the payouts are still written."""
    sql(week21, "UPDATE merchants SET mandate_signed_on = DATE '2024-06-01' WHERE merchant_id = 'M6'")
    result = run_weekly(week21, instance, WEEK21, raise_on_error=False)
    assert result.success, step_failures(result)
    assert set(by_mandate(pending_files(week21, "DD-"))) == {"MANDATE-M1", "MANDATE-M3"}
    assert "M6" in metadata(result, "merchant_collections")["skipped"]
    assert statuses(week21)[("M6", "R6")] == "due"


def test_frst_then_rcur_collected_on_target2_business_days(
    home: Home, instance: dg.DagsterInstance, ledger_templates: LedgerTemplates
) -> None:
    """A mandate's first collection is FRST and next week's RCUR; the pain.008 names the mandate, its signature
    date and the creditor id. Collection dates are business days at or after Monday + 1 business day of lead:
    Tuesday 2025-04-15, then, in the week of Easter Monday (2025-04-21, TARGET closed), Wednesday 2025-04-23;
    that week's payouts are executed on Tuesday 2025-04-22."""
    ledger_templates.install(
        home, "easter",
        merchants=[merchant("M1", mandate_signed_on="2024-03-05"), integrated("M2", balance_cents=50_000)],
        orders=[order("O1", ordered_on="2025-04-01"), order("O2", "M2", ordered_on="2025-04-01")],
        refunds=[refund("R1", 1000, requested_on="2025-04-03"), refund("R1N", 700, requested_on="2025-04-12"),
                 refund("R2", 1500, "O2", merchant_id="M2", requested_on="2025-04-12")],
        due_by=date(2025, 4, 14),
    )  # fmt: skip
    assert run_weekly(home, instance, "2025-04-14").success
    make_due(home, date(2025, 4, 21))  # the nightly step: R1N and R2 are due on 2025-04-19
    assert run_weekly(home, instance, "2025-04-21").success

    first, second = pending_files(home, "DD-")
    assert (first.msg_id, second.msg_id) == ("DD-2025-W16-0001", "DD-2025-W17-0001")
    [one], [two] = first.transactions, second.transactions
    assert (one["sequence_type"], one["amount_cents"], one["date"]) == ("FRST", 1000, date(2025, 4, 15))
    assert (two["sequence_type"], two["amount_cents"], two["date"]) == ("RCUR", 700, date(2025, 4, 23))
    for tx, monday in ((one, date(2025, 4, 14)), (two, date(2025, 4, 21))):
        assert (tx["mandate_id"], tx["mandate_signed_on"]) == ("MANDATE-M1", "2024-03-05")
        assert is_business_day(tx["date"]) and tx["date"] >= monday + timedelta(days=1)
    assert first.creditor_id == second.creditor_id == CREDITOR_ID
    [payouts] = pending_files(home, "PO-")
    assert [tx["date"] for tx in payouts.transactions] == [date(2025, 4, 22)]
    assert sql(home, "SELECT sequence_type FROM collections ORDER BY partition_key") == [("FRST",), ("RCUR",)]


@pytest.mark.parametrize(
    ("monday", "run", "collected_on", "executed_on"),
    [
        (date(2029, 4, 30), "main", date(2029, 5, 2), date(2029, 4, 30)),  # Tuesday 1 May
        (date(2025, 4, 14), "midweek", date(2025, 4, 22), date(2025, 4, 17)),  # Good Friday, Easter Monday
        (date(2025, 12, 22), "midweek", date(2025, 12, 30), date(2025, 12, 29)),  # Christmas on Thursday
        (date(2024, 12, 23), "main", date(2024, 12, 24), date(2024, 12, 23)),  # Christmas Eve is a TARGET day
    ],
)
def test_collection_and_execution_dates_skip_target_holidays(
    tmp_path: Path, monday: date, run: str, collected_on: date, executed_on: date
) -> None:
    """The outbox dates files on TARGET2 business days: a collection on the first business day after the run's
    day reaches the bank plus one business day of lead, a payout on the run's day or the next business day."""
    home = Home(tmp_path / "home").prepare()
    window = run_window(monday, run)
    con = memory_ledger()
    day = window.cutoff
    load_books(
        con, tmp_path / "exports",
        merchants=[merchant("M1", collection="twice_weekly"), integrated("M2", balance_cents=10_000)],
        orders=[order("O1", ordered_on=str(day - timedelta(days=20))),
                order("O2", "M2", ordered_on=str(day - timedelta(days=20)))],
        refunds=[refund("R1", 1000, requested_on=str(day - timedelta(days=10))),
                 refund("R2", 1000, "O2", merchant_id="M2", requested_on=str(day - timedelta(days=10)))],
        due_by=day,
    )  # fmt: skip
    bank = BankProfileResource().profile()
    collections = write_collection_files(con, home, bank, window, datetime(2024, 1, 1, 6))
    payouts = write_payout_files(con, home, bank, window, datetime(2024, 1, 1, 6))
    assert collections.written["requested_on"].to_list() == [collected_on]
    assert payouts.written["requested_on"].to_list() == [executed_on]
    [debits] = pending_files(home, "DD-")
    [transfers] = pending_files(home, "PO-")
    assert [tx["date"] for tx in debits.transactions] == [collected_on]
    assert [tx["date"] for tx in transfers.transactions] == [executed_on]
    assert is_business_day(collected_on) and collected_on > day
    assert is_business_day(executed_on) and executed_on >= day
    con.close()


def test_files_built_by_worker_processes_are_those_built_in_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big run builds its files side by side in worker processes, a small one in its own process: the same
    files, byte for byte, and the same registry either way."""
    import dataclasses

    import assets.outbox

    bank = dataclasses.replace(BankProfileResource().profile(), max_transactions_per_file=2)
    window = run_window(date(2024, 5, 20))
    day = window.cutoff
    owners = ["M1", "M1", "M1", "M3", "M3", "M4", "M2", "M2", "M2", "M2", "M2"]
    built, side_by_side = {}, []
    each = assets.outbox._each_in_workers

    def noted(fn, jobs: list[tuple], parallel: bool) -> Iterator:
        side_by_side.append(parallel)
        return each(fn, jobs, parallel)

    monkeypatch.setattr(assets.outbox, "_each_in_workers", noted)
    for how, threshold in (("one process", 10**9), ("workers", 1)):
        monkeypatch.setattr(assets.outbox, "PARALLEL_FROM_ROWS", threshold)
        home = Home(tmp_path / how).prepare()
        con = memory_ledger()
        load_books(
            con, tmp_path / f"exports-{how}",
            merchants=[merchant("M1"), merchant("M3"), merchant("M4"), integrated("M2", balance_cents=100_000)],
            orders=[order(f"O{i}", m, ordered_on=str(day - timedelta(days=20))) for i, m in enumerate(owners)],
            refunds=[refund(f"R{i}", 100 + i, f"O{i}", merchant_id=m, requested_on=str(day - timedelta(days=10)))
                     for i, m in enumerate(owners)],
            due_by=day,
        )  # fmt: skip
        runs = [write(con, home, bank, window, datetime(2024, 5, 20, 6)) for write in (write_collection_files,
                                                                                   write_payout_files)]  # fmt: skip
        files = {p.name: p.read_bytes() for p in sorted((home.outbox / "pending").iterdir())}
        registry = pl.concat([run.written for run in runs]).drop("created_at")
        built[how] = (files, registry)
        con.close()
    assert side_by_side == [False, False, True, True]
    files, registry = built["one process"]
    assert len([n for n in files if n.startswith("PO-")]) == 3 and len([n for n in files if n.startswith("DD-")]) == 2
    assert built["workers"][0] == files
    assert built["workers"][1].equals(registry)


def test_payouts_wait_for_the_merchants_money(week21: Home, instance: dg.DagsterInstance) -> None:
    """Integrated M2's refunds are paid in the first run. Own-account refunds are not paid while their collection
    is only written or released (M1, M3), except for M6, paid on release, in the next run after the release;
    M1's are paid in the next run after its collection is booked. Each refund moves due -> in_file -> sent."""
    assert run_weekly(week21, instance, WEEK21).success
    [first] = pending_files(week21, "PO-")
    assert paid_refs([first]) == set(M2_PAYOUTS)
    assert {tx["end_to_end_id"]: tx["amount_cents"] for tx in first.transactions} == {
        ids.end_to_end_id(refund_id_for("M2", ref), "payout"): cents for ref, cents in M2_PAYOUTS.items()}  # fmt: skip
    now = statuses(week21)
    assert {now[("M2", r)] for r in M2_PAYOUTS} == {"in_file"}
    assert {now[k] for k in (("M1", "R1"), ("M3", "R3A"), ("M6", "R6"))} == {"due"}

    assert run_release(week21, instance, "anna").success
    assert {statuses(week21)[("M2", r)] for r in M2_PAYOUTS} == {"sent"}
    assert run_weekly(week21, instance, WEEK22).success  # collections released, none booked yet
    assert paid_refs(pending_files(week21, "PO-")) == {"R6"}
    assert pending(week21) == ["PO-2024-W22-0001.xml"]  # nothing collected twice

    # Bank reconciliation marks a collection booked in the product; the test does it by hand.
    sql(week21, "UPDATE collections SET status = 'booked' WHERE merchant_id = 'M1'")
    assert run_weekly(week21, instance, WEEK22, "midweek").success
    newest = read_pain(week21.outbox / "pending" / "PO-2024-W22-0002.xml")
    assert paid_refs([newest]) == {"R1", "R1I"}
    assert sorted(tx["amount_cents"] for tx in newest.transactions) == [1000, 5000]
    now = statuses(week21)
    assert (now[("M1", "R1")], now[("M6", "R6")], now[("M3", "R3A")]) == ("in_file", "in_file", "due")
    with open_ledger(week21.ledger) as con:
        history = refund_history(con, "R2", "M2")
    assert history.select("from_status", "to_status").rows()[-2:] == [("due", "in_file"), ("in_file", "sent")]


def test_payout_texts_ids_and_dates(week21_run: tuple[Home, dg.ExecuteInProcessResult]) -> None:
    """A payout's EndToEndId leads with the refund id; its remittance names the shop and the order; names are
    transliterated into the EPC set, never dropped; the execution date is a business day."""
    week21, result = week21_run
    assert result.success
    [payouts] = pending_files(week21, "PO-")
    tx = next(t for t in payouts.transactions if t["amount_cents"] == 1500)
    refund_id = refund_id_for("M2", "R2")
    assert tx["end_to_end_id"] == f"{refund_id}-PO"
    assert tx["name"] == "Joerg Oesterle + Soehne"
    assert tx["iban"] == IBAN_CUSTOMER
    assert "Cafe Elise" in tx["remittance"] and "O2" in tx["remittance"] and "R2" in tx["remittance"]
    assert tx["date"] == date(2024, 5, 20) and is_business_day(tx["date"])
    raw = payouts.path.read_bytes()
    assert "Jörg".encode() not in raw and b"&amp;" not in raw and "Café".encode() not in raw


def test_nothing_is_paid_to_own_accounts(week21: Home, instance: dg.DagsterInstance) -> None:
    """Due refunds whose IBAN is the platform's, a merchant's or an excluded carrier's are held back to
    awaiting_bank_details with the reason and are in no file; the other payouts are written."""
    held = {"R2B": PLATFORM_IBAN, "R2C": IBAN_MERCHANT, "R2D": IBAN_CARRIER}
    for ref, iban in held.items():
        sql(week21, "UPDATE refunds SET customer_iban = ? WHERE refund_ref = ?", [iban, ref])
    result = run_weekly(week21, instance, WEEK21)
    assert result.success
    assert paid_refs(pending_files(week21, "PO-")) == {"R2", "R2E"}
    rows = sql(
        week21, "SELECT refund_ref, status, status_reason FROM refunds WHERE refund_ref IN ('R2B', 'R2C', 'R2D')"
    )
    assert {ref: status for ref, status, _ in rows} == dict.fromkeys(held, "awaiting_bank_details")
    reasons = {ref: reason for ref, _, reason in rows}
    assert reasons["R2B"] == "not paid: the IBAN on record is the platform's own account"
    assert reasons["R2C"] == "not paid: the IBAN on record is a merchant's own account"
    assert reasons["R2D"] == "not paid: the IBAN on record is Parcel Express (carrier)"
    in_files = sql(week21, "SELECT r.refund_ref FROM payment_file_items i JOIN refunds r USING (refund_id)")
    assert not {ref for (ref,) in in_files} & set(held)
    skipped = metadata(result, "customer_payouts")["skipped"]
    assert all(ref in skipped for ref in held)


def test_platform_iban_written_in_groups_still_guards_payouts(week21: Home, instance: dg.DagsterInstance) -> None:
    """The bank profile may give the platform's IBAN as it is usually written, in groups of four (the files are
    still written with it, compacted). A refund to that account must still be held back, not paid."""
    write_bank_profile(week21, 'platform_iban = "DE75 5121 0800 1245 1261 99"\n')
    sql(week21, "UPDATE refunds SET customer_iban = ? WHERE refund_ref = 'R2B'", [PLATFORM_IBAN])
    assert run_weekly(week21, instance, WEEK21).success
    [payouts] = pending_files(week21, "PO-")
    assert PLATFORM_IBAN not in {tx["iban"] for tx in payouts.transactions}
    assert statuses(week21)[("M2", "R2B")] == "awaiting_bank_details"


def test_rerunning_a_week_writes_no_second_file(week21: Home, instance: dg.DagsterInstance) -> None:
    """The same partition run again writes nothing: the registry rows are the same, the files on disk have the
    same bytes. Run again after the release, it leaves those files alone and pays only what the release newly
    secured (M6, paid on release); no refund is ever in two files and the ledger sums to zero."""
    assert run_weekly(week21, instance, WEEK21).success
    files = registry(week21)
    hashes = {name: sha256_of(week21.outbox / "pending" / name) for name in pending(week21)}
    assert set(hashes) == set(files["file_name"]) and len(hashes) == 2

    again = run_weekly(week21, instance, WEEK21)
    assert again.success
    assert metadata(again, "merchant_collections")["files_written"] == 0
    assert metadata(again, "customer_payouts")["files_written"] == 0
    assert registry(week21).equals(files)
    assert {name: sha256_of(week21.outbox / "pending" / name) for name in pending(week21)} == hashes

    assert run_release(week21, instance, "anna").success
    assert run_weekly(week21, instance, WEEK21).success  # the release secured M6's money (paid on release)
    assert released(week21) == sorted(hashes)
    assert {name: sha256_of(week21.outbox / "released" / name) for name in released(week21)} == hashes
    assert registry(week21).filter(pl.col("file_name").is_in(list(hashes))).drop("status", "released_at",
                                                                                "released_by").equals(
        files.drop("status", "released_at", "released_by"))  # fmt: skip
    assert pending(week21) == ["PO-2024-W21-0002.xml"]
    assert paid_refs(pending_files(week21, "PO-")) == {"R6"}  # only what was not payable before
    twice = sql(week21, "SELECT refund_id FROM payment_file_items WHERE refund_id IS NOT NULL "
                        "GROUP BY refund_id HAVING COUNT(*) > 1")  # fmt: skip
    assert twice == []
    collected_twice = sql(week21, "SELECT refund_id FROM collection_refunds GROUP BY refund_id HAVING COUNT(*) > 1")
    assert collected_twice == []
    with open_ledger(week21.ledger) as con:
        assert ledger_total(con) == 0


def test_files_are_split_at_the_banks_limit(week21: Home, instance: dg.DagsterInstance) -> None:
    """With at most 2 transactions per file (bank_profile.toml), 5 payouts go into 3 pain.001 files and 4 debits
    into 2 pain.008 files, each with its own MsgId and exact NbOfTxs and CtrlSum, equal to the registry's."""
    write_bank_profile(week21, "max_transactions_per_file = 2\n")
    assert run_weekly(week21, instance, WEEK21).success
    payouts, debits = pending_files(week21, "PO-"), pending_files(week21, "DD-")
    assert len(payouts) == 3 and len(debits) == 2
    files = {row["file_name"]: row for row in registry(week21).iter_rows(named=True)}
    for f in payouts + debits:
        amounts = [tx["amount_cents"] for tx in f.transactions]
        assert 1 <= len(amounts) <= 2
        assert (f.n_tx, f.ctrl_sum_cents) == (len(amounts), sum(amounts)), f.path.name
        assert f.path.name == f"{f.msg_id}.xml"
        assert (files[f.path.name]["n_tx"], files[f.path.name]["ctrl_sum_cents"]) == (f.n_tx, f.ctrl_sum_cents)
        assert validate_document(f.path.read_bytes()).ok
    assert len({f.msg_id for f in payouts + debits}) == 5
    assert sorted(f.n_tx for f in payouts) == [1, 2, 2]
    assert paid_refs(payouts) == set(M2_PAYOUTS)
    assert sum(f.ctrl_sum_cents for f in payouts) == sum(M2_PAYOUTS.values())
    assert by_mandate(debits) == {"MANDATE-M1": [6000], "MANDATE-M3": [550, 750], "MANDATE-M6": [1200]}


def test_file_versions_come_from_the_bank_profile(week21: Home, instance: dg.DagsterInstance) -> None:
    """bank_profile.toml choosing pain.001.001.09 and pain.008.001.08: the files are written in those versions,
    valid against their XSDs, and registered as such."""
    write_bank_profile(week21, 'pain001_version = "pain.001.001.09"\npain008_version = "pain.008.001.08"\n')
    result = run_weekly(week21, instance, WEEK21)
    assert result.success
    [payouts], [debits] = pending_files(week21, "PO-"), pending_files(week21, "DD-")
    assert (payouts.message_type, debits.message_type) == ("pain.001.001.09", "pain.008.001.08")
    for f in (payouts, debits):
        validation = validate_document(f.path.read_bytes())
        assert validation.ok, validation.errors
        assert validation.message_type == f.message_type
    assert registry(week21).select("message_type", "validation").rows() == [
        ("pain.008.001.08", "valid"), ("pain.001.001.09", "valid")]  # fmt: skip
    assert {tx["date"] for tx in payouts.transactions} == {date(2024, 5, 20)}
    assert by_mandate([debits])["MANDATE-M1"] == [6000]
    assert all(checks(result).values())


def test_release_checks_moves_and_posts_once(week21: Home, instance: dg.DagsterInstance) -> None:
    """Before release nothing moved. A file changed on disk is refused by the release job with a message naming
    it, and nothing is posted or moved. Once intact, the release job moves the files to outbox/released, marks
    them released by the person named, posts collections (with M3's per-refund fees to fee income) and payouts,
    and marks the refunds sent. Releasing again posts nothing."""
    assert run_weekly(week21, instance, WEEK21).success
    assert not RELEASE_KINDS & set(transfer_kinds(week21))
    payout_file = week21.outbox / "pending" / "PO-2024-W21-0001.xml"
    original = payout_file.read_bytes()
    changed = original.replace(b'<InstdAmt Ccy="EUR">15.00<', b'<InstdAmt Ccy="EUR">51.00<')
    assert changed != original
    payout_file.write_bytes(changed)
    before = postings(week21)
    with pytest.raises(ReleaseRefused, match=r"PO-2024-W21-0001\.xml changed on disk"):
        run_release(week21, instance, "anna")
    assert postings(week21) == before
    assert pending(week21) == ["DD-2024-W21-0001.xml", "PO-2024-W21-0001.xml"] and released(week21) == []
    assert set(registry(week21)["status"]) == {"written"}

    payout_file.write_bytes(original)
    result = run_release(week21, instance, "anna")
    assert metadata(result, "released_payment_files")["released"] == 2
    assert pending(week21) == [] and released(week21) == ["DD-2024-W21-0001.xml", "PO-2024-W21-0001.xml"]
    files = registry(week21)
    assert files.select("status", "released_by").unique().rows() == [("released", "anna")]
    assert files["sha256"].to_list() == [sha256_of(week21.outbox / "released" / n) for n in files["file_name"]]
    kinds = transfer_kinds(week21)
    # A transfer per collection, and one for the payout file's five payouts together.
    assert (kinds["collection_released"], kinds["collection_fee"], kinds["payout_released"]) == (4, 2, 1)
    with open_ledger(week21.ledger) as con:
        assert balance(con, "platform:fee_income") == -100
        assert balance(con, "merchant:M3:receivable") == 0
        assert balance(con, "platform:collections_in_transit") == 8500
        assert balance(con, "platform:payouts_in_transit") == -sum(M2_PAYOUTS.values())
        assert ledger_total(con) == 0
    assert {statuses(week21)[("M2", r)] for r in M2_PAYOUTS} == {"sent"}
    assert set(sql(week21, "SELECT DISTINCT status FROM collections")) == {("released",)}

    after = postings(week21)
    again = run_release(week21, instance, "bob")
    assert metadata(again, "released_payment_files")["released"] == 0
    with pytest.raises(ReleaseRefused, match=r"PO-2024-W21-0001\.xml is released"):
        run_release(week21, instance, "bob", ["PO-2024-W21-0001.xml"])
    assert postings(week21) == after
    assert set(registry(week21)["released_by"]) == {"anna"}


def test_auto_release_releases_the_weekly_files(week21: Home, instance: dg.DagsterInstance) -> None:
    """With auto_release = true in bank_profile.toml the weekly run's files end up in outbox/released, released
    by "schedule (auto-release)", their money posted. The collections are released before the payouts are
    written, so M6 (paid on release) is paid in the same run; M1 and M3 still wait for the booking."""
    write_bank_profile(week21, "auto_release = true\n")
    result = run_weekly(week21, instance, WEEK21)
    assert result.success and all(checks(result).values())
    assert pending(week21) == []
    assert released(week21) == ["DD-2024-W21-0001.xml", "PO-2024-W21-0001.xml"]
    files = registry(week21)
    assert files.select("status", "released_by").unique().rows() == [("released", "schedule (auto-release)")]
    kinds = transfer_kinds(week21)
    assert (kinds["collection_released"], kinds["payout_released"]) == (4, 1)  # one payout file of six
    now = statuses(week21)
    assert (now[("M2", "R2")], now[("M6", "R6")], now[("M1", "R1")], now[("M3", "R3A")]) == (
        "sent",
        "sent",
        "due",
        "due",
    )


@pytest.mark.parametrize(
    ("schedule", "fires_at", "run"),
    [
        ("weekly_schedule", datetime(2024, 5, 20, 6, 0), "main"),
        ("midweek_schedule", datetime(2024, 5, 23, 6, 0), "midweek"),
    ],
)
def test_schedules_ask_for_the_week_they_fire_in(home: Home, schedule: str, fires_at: datetime, run: str) -> None:
    """The Monday 06:00 (Berlin) schedule asks for the partition of that week with the main run; the Thursday
    one for the same week with the midweek run."""
    defs = build_definitions(home)
    context = dg.build_schedule_context(
        scheduled_execution_time=fires_at.replace(tzinfo=ZoneInfo("Europe/Berlin")),
        repository_def=defs.get_repository_def(),
    )
    [request] = defs.resolve_schedule_def(schedule).evaluate_tick(context).run_requests
    assert request.partition_key == WEEK21
    assert request.run_config == weekly_run_config(run)
    assert WEEK21 in request.run_key


def test_registry_and_xml_agree(week21_run: tuple[Home, dg.ExecuteInProcessResult]) -> None:
    """Every registered file's transactions are those in the ledger's item table, with the same EndToEndIds and
    amounts as the XML (the registry the checks rely on is the bank's view of the file)."""
    week21, result = week21_run
    assert result.success
    items = pl.DataFrame(
        sql(week21, "SELECT f.file_name, i.end_to_end_id, i.amount_cents FROM payment_file_items i "
                    "JOIN payment_files f USING (file_id)"),
        schema=["file_name", "end_to_end_id", "amount_cents"], orient="row",
    )  # fmt: skip
    for f in pending_files(week21, ""):
        in_xml = sorted((tx["end_to_end_id"], tx["amount_cents"]) for tx in f.transactions)
        in_registry = sorted(
            items.filter(pl.col("file_name") == f.path.name).select("end_to_end_id", "amount_cents").rows()
        )
        assert in_xml == in_registry, f.path.name


def _run_job(home: Home, instance: dg.DagsterInstance, job: str, config: dict, partition: str | None = None):
    return (
        build_definitions(home)
        .resolve_job_def(job)
        .execute_in_process(run_config=config, instance=instance, partition_key=partition, raise_on_error=False)
    )


def test_four_eyes_the_release_job_refuses_the_preparer(week21: Home, instance: dg.DagsterInstance) -> None:
    """Alice prepared the week (her name in the run's config): the release job refuses her and releases
    nothing; an installation that sets four_eyes_release = false in controls.toml lets her."""
    prepared = _run_job(week21, instance, "weekly", weekly_run_config("main", "alice"), WEEK21)
    assert prepared.success and set(registry(week21)["prepared_by"].to_list()) == {"alice"}
    before = postings(week21)
    refused = _run_job(week21, instance, "release", release_run_config("alice", None))
    assert not refused.success
    assert any("who may not also release it (four eyes)" in m for m in step_failures(refused))
    assert postings(week21) == before and released(week21) == []
    week21.controls.write_text("four_eyes_release = false\n", encoding="utf-8")
    assert run_release(week21, instance, "alice").success
    assert set(registry(week21)["released_by"].to_list()) == {"alice"}


def test_the_cancel_job_sets_the_file_aside_and_the_week_is_written_again(
    week21: Home, instance: dg.DagsterInstance
) -> None:
    """Cancelled through its job: the payout file moves to outbox/cancelled, its refunds are due again, and
    the next run of the week writes them into a new file with its own MsgId; nothing is posted meanwhile."""
    assert run_weekly(week21, instance, WEEK21).success
    payout = registry(week21).filter(pl.col("kind") == "payout").row(0, named=True)
    kinds = transfer_kinds(week21)
    config = {"ops": {"cancel_payment_file": {"config": {"file": payout["file_name"], "by": "alice",
                                                         "reason": "wrong execution date"}}}}  # fmt: skip
    assert _run_job(week21, instance, "payment_file_cancellation", config).success
    assert (week21.outbox / "cancelled" / payout["file_name"]).exists() and payout["file_name"] not in pending(week21)
    assert {s for (m, _), s in statuses(week21).items() if m == "M2"} == {"due"}
    assert run_weekly(week21, instance, WEEK21).success
    again = registry(week21).filter((pl.col("kind") == "payout") & (pl.col("status") == "written")).row(0, named=True)
    assert again["msg_id"] != payout["msg_id"] and again["ctrl_sum_cents"] == payout["ctrl_sum_cents"]
    assert transfer_kinds(week21) == kinds
    failed = _run_job(week21, instance, "payment_file_cancellation", config)
    assert not failed.success and any("cancelled: only a file waiting" in m for m in step_failures(failed))


def test_the_weekly_metadata_reads_by_merchant_and_links_the_files(
    week21_run: tuple[Home, dg.ExecuteInProcessResult],
) -> None:
    home, result = week21_run
    payouts = next(m.metadata for m in result.asset_materializations_for_node("customer_payouts"))
    assert payouts["prepared_by"].value == "schedule"
    assert "| M2 | Café Élise | payout | 5 | EUR 61.00 |" in payouts["by_merchant"].value
    link = payouts["file_0001"].value
    assert link.endswith(".xml") and Path(link).parent == home.outbox / "pending" and Path(link).exists()


def test_the_weekly_run_first_tidies_what_a_killed_run_left_in_the_outbox(
    week21: Home, instance: dg.DagsterInstance
) -> None:
    """A half-written temporary file and a whole file the registry never heard of (a run killed between
    writing and recording) are cleared from outbox/pending before the week is written, the stray file kept
    aside in outbox/unregistered; files the registry knows are left as they are, and the run says what it did."""
    pending_dir = week21.outbox / "pending"
    (pending_dir / ".PO-2024-W21-0001.xml.part").write_bytes(b"<Document")
    (pending_dir / "PO-2024-W21-0009.xml").write_bytes(b"<Document/>")
    result = run_weekly(week21, instance, WEEK21)
    assert result.success
    assert sorted(p.name for p in pending_dir.iterdir()) == sorted(registry(week21)["file_name"].to_list())
    aside = [p.name for p in (week21.outbox / "unregistered").iterdir()]
    assert len(aside) == 1 and aside[0].endswith("-PO-2024-W21-0009.xml")
    warnings = [
        event.message
        for event in instance.all_logs(result.run_id)
        if event.level >= logging.WARNING and "interrupted run" in (event.message or "")
    ]
    assert any("PO-2024-W21-0009.xml" in w for w in warnings)
    known = {name: sha256_of(pending_dir / name) for name in pending(week21)}
    assert run_weekly(week21, instance, WEEK21).success  # nothing stray now: nothing moved
    assert {name: sha256_of(pending_dir / name) for name in pending(week21)} == known
