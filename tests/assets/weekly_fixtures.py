"""Helpers for the weekly payment-file tests: books loaded into a temporary installation's ledger, the weekly
and release jobs run on a temporary Dagster instance, and the written XML read back without the writer's help."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from lxml import etree

from ledger.db import open_ledger
from ledger.payment_files import list_files
from ledger.refunds import make_refunds_due
from pipelines.definitions import build_definitions
from pipelines.jobs import release_run_config, weekly_run_config
from pipelines.settings import Home
from tests.ledger.shop import HEADERS, Shop, record

MERCHANT_HEADER = [*HEADERS["merchants"], "pay_on_release"]
PLATFORM_IBAN = "DE75512108001245126199"  # BankProfileResource's default
CREDITOR_ID = "DE98ZZZ09999999999"


def load_books(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    *,
    merchants: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    refunds: list[dict[str, Any]],
    due_by: date,
    excluded: list[dict[str, Any]] | None = None,
) -> None:
    """Record merchants (pay_on_release defaults to false), excluded IBANs, orders and refunds the way intake
    does, then make due every refund whose waiting period ends by `due_by` (the nightly step). Every row
    must load: a test whose books do not load tests nothing."""
    shop = Shop(folder, con)
    shop.count = sum(1 for _ in folder.glob("*.csv")) if folder.exists() else 0
    results = []
    if merchants:
        rows = [{"pay_on_release": "false", **m} for m in merchants]
        results.append(record(con, shop.write("merchants", rows, MERCHANT_HEADER)))
    if excluded:
        results.append(shop.load("excluded_ibans", excluded))
    if orders:
        results.append(shop.load("orders", orders))
    if refunds:
        results.append(shop.load("refunds", refunds))
    for result in results:
        assert result.rows_rejected == 0, f"{result.file_name} did not load cleanly: {result}"
    make_refunds_due(con, due_by)


class LedgerTemplates:
    """Ledger files loaded once per session (intake takes a while) and copied into each test's installation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[str, Path] = {}

    def install(self, home: Home, name: str, **books: Any) -> None:
        """Give `home` a copy of the ledger `load_books(**books)` makes (built on first use of `name`)."""
        if name not in self.built:
            path = self.root / name / "ledger.duckdb"
            with open_ledger(path) as con:
                load_books(con, self.root / name / "exports", **books)
            self.built[name] = path
        assert not home.ledger.exists(), "the installation already has a ledger"
        shutil.copyfile(self.built[name], home.ledger)


def make_due(home: Home, day: date) -> None:
    """The nightly step for `day`, on the installation's ledger."""
    with open_ledger(home.ledger) as con:
        make_refunds_due(con, day)


def sql(home: Home, query: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one statement on the installation's ledger; the rows it returns (empty for updates)."""
    with open_ledger(home.ledger) as con:
        cursor = con.execute(query, params or [])
        return cursor.fetchall() if cursor.description else []


def registry(home: Home) -> pl.DataFrame:
    """The file registry, in file-name order."""
    with open_ledger(home.ledger) as con:
        return list_files(con).sort("file_name")


def statuses(home: Home) -> dict[tuple[str, str], str]:
    """(merchant, refund_ref) -> status."""
    rows = sql(home, "SELECT merchant_id, refund_ref, status FROM refunds")
    return {(m, r): s for m, r, s in rows}


def transfer_kinds(home: Home) -> dict[str, int]:
    """How many transfers of each kind the ledger holds."""
    return dict(sql(home, "SELECT kind, COUNT(*) FROM transfers GROUP BY kind"))


def postings(home: Home) -> list[tuple]:
    """Every posting, sorted: to compare the ledger before and after an operation."""
    return sql(home, "SELECT transfer_id, account, amount_cents FROM postings ORDER BY transfer_id, account")


def write_bank_profile(home: Home, text: str) -> None:
    """The installation's `bank_profile.toml` (read by build_definitions)."""
    home.bank_profile.write_text(text, encoding="utf-8")


def run_weekly(
    home: Home, instance: dg.DagsterInstance, week: str, run: str = "main", *, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """The weekly job for the partition `week` (its Monday, YYYY-MM-DD)."""
    job = build_definitions(home).resolve_job_def("weekly")
    return job.execute_in_process(
        run_config=weekly_run_config(run), partition_key=week, instance=instance, raise_on_error=raise_on_error
    )


def run_release(
    home: Home, instance: dg.DagsterInstance, by: str, files: list[str] | None = None
) -> dg.ExecuteInProcessResult:
    """The release job: the named files, or every pending one."""
    job = build_definitions(home).resolve_job_def("release")
    return job.execute_in_process(run_config=release_run_config(by, files), instance=instance)


def step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """The error messages (with their cause) of the failed steps of a run."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            messages.append(error.message + (f" caused by {error.cause.message}" if error.cause else ""))
    return messages


def pending(home: Home) -> list[str]:
    return sorted(p.name for p in (home.outbox / "pending").iterdir() if not p.name.startswith("."))


def released(home: Home) -> list[str]:
    return sorted(p.name for p in (home.outbox / "released").iterdir() if not p.name.startswith("."))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- reading the XML back, independently of the writer ---------------------------------------------------------


def _xpath(path: str) -> str:
    """`PmtId/EndToEndId` -> `./*[local-name()='PmtId']/*[local-name()='EndToEndId']` (any namespace)."""
    return "./" + "/".join(f"*[local-name()='{step}']" for step in path.split("/"))


def text(element: etree._Element, path: str) -> str | None:
    """The text of the first element at `path` below `element` (all descendant text, stripped), or None."""
    found = element.xpath(_xpath(path))
    return "".join(found[0].itertext()).strip() if found else None


def cents(amount: str | None) -> int:
    """`'60.00'` -> 6000, exactly."""
    value = Decimal(amount or "") * 100
    assert value == value.to_integral_value(), f"amount {amount} has more than two decimals"
    return int(value)


@dataclass(frozen=True)
class PainFile:
    """A pain.001 or pain.008 file as the bank will read it."""

    path: Path
    namespace: str
    msg_id: str
    n_tx: int
    ctrl_sum_cents: int
    creditor_id: str | None
    transactions: list[dict[str, Any]]

    @property
    def message_type(self) -> str:
        return self.namespace.rsplit(":", 1)[-1]


def read_pain(path: Path) -> PainFile:
    """Parse a written payment file: group header, and every transaction with its block's date and SeqTp."""
    root = etree.fromstring(path.read_bytes(), etree.XMLParser(resolve_entities=False, no_network=True))
    initiation = root[0]
    header = initiation.xpath(_xpath("GrpHdr"))[0]
    transactions = []
    creditor_ids = set()
    for block in initiation.xpath(_xpath("PmtInf")):
        seq_type = text(block, "PmtTpInf/SeqTp")
        when = text(block, "ReqdColltnDt") or text(block, "ReqdExctnDt")
        scheme = text(block, "CdtrSchmeId/Id/PrvtId/Othr/Id")
        if scheme:
            creditor_ids.add(scheme)
        for tx in block.xpath(_xpath("DrctDbtTxInf") + " | " + _xpath("CdtTrfTxInf")):
            debit = etree.QName(tx).localname == "DrctDbtTxInf"
            party = "Dbtr" if debit else "Cdtr"
            amount = text(tx, "InstdAmt") if debit else text(tx, "Amt/InstdAmt")
            transactions.append(
                {
                    "end_to_end_id": text(tx, "PmtId/EndToEndId"),
                    "amount_cents": cents(amount),
                    "name": text(tx, f"{party}/Nm"),
                    "iban": text(tx, f"{party}Acct/Id/IBAN"),
                    "remittance": text(tx, "RmtInf/Ustrd"),
                    "mandate_id": text(tx, "DrctDbtTx/MndtRltdInf/MndtId"),
                    "mandate_signed_on": text(tx, "DrctDbtTx/MndtRltdInf/DtOfSgntr"),
                    "sequence_type": seq_type,
                    "date": date.fromisoformat(when) if when else None,
                    "block_n_tx": int(text(block, "NbOfTxs") or -1),
                }
            )
    assert len(creditor_ids) <= 1, f"{path.name}: several creditor ids {creditor_ids}"
    return PainFile(
        path=path,
        namespace=etree.QName(root).namespace or "",
        msg_id=text(header, "MsgId") or "",
        n_tx=int(text(header, "NbOfTxs") or -1),
        ctrl_sum_cents=cents(text(header, "CtrlSum")),
        creditor_id=next(iter(creditor_ids), None),
        transactions=transactions,
    )


def pending_files(home: Home, prefix: str) -> list[PainFile]:
    """The pending files whose name starts with `prefix` (`DD-` direct debits, `PO-` payouts), parsed."""
    return [read_pain(home.outbox / "pending" / name) for name in pending(home) if name.startswith(prefix)]
