"""The `payouts` command line: the same Dagster jobs the schedules and the UI run, plus read-outs of the books."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.db import open_ledger
from ledger.intake import list_rejects
from ledger.intake_files import IntakeFileError, discover, file_sha256, kind_of
from ledger.lifecycle import MANUAL, Status
from ledger.money import euros
from ledger.notifications import list_notifications
from ledger.payment_files import list_files
from ledger.postings import balances, ledger_total
from ledger.refunds import (
    RefundNotFound,
    find_refund,
    list_refunds,
    refund_history,
    status_summary,
)
from pipelines.settings import Home, payouts_home
from sepa.iban import mask_iban

app = typer.Typer(
    help="Refund payouts over SEPA, reconciled against a double-entry ledger. "
    "State lives in $PAYOUTS_HOME (default ./data).",
    no_args_is_help=True,
    add_completion=False,
)
refunds_app = typer.Typer(help="Look at refunds and act on one.", no_args_is_help=True)
ledger_app = typer.Typer(help="Read the books.", no_args_is_help=True)
run_app = typer.Typer(help="Run a job through Dagster, as its schedule would.", no_args_is_help=True)
rejects_app = typer.Typer(help="What intake could not take.", no_args_is_help=True)
notifications_app = typer.Typer(help="The notifications outbox.", no_args_is_help=True)
app.add_typer(refunds_app, name="refunds")
app.add_typer(ledger_app, name="ledger")
app.add_typer(run_app, name="run")
app.add_typer(rejects_app, name="rejects")
app.add_typer(notifications_app, name="notifications")
files_app = typer.Typer(help="Payment files: the registry, release, validation.", no_args_is_help=True)
app.add_typer(files_app, name="files")
exceptions_app = typer.Typer(
    help="The exceptions queue of reconciliation and the matches it proposed.", no_args_is_help=True
)
app.add_typer(exceptions_app, name="exceptions")
collections_app = typer.Typer(help="Merchant collections (direct debits): list, present again.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
merchants_app = typer.Typer(help="Merchants: list, block, unblock.", no_args_is_help=True)
app.add_typer(merchants_app, name="merchants")
operations_app = typer.Typer(help="The log of everything finance ops did by hand.", no_args_is_help=True)
app.add_typer(operations_app, name="operations")

# Piped output (scripts, CI logs) gets wide tables instead of rich's 80-column default.
out = Console(soft_wrap=True, markup=False, highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # an error is one line, whatever the terminal width

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]
MerchantOpt = Annotated[str | None, typer.Option("--merchant", help="Merchant id, when a reference is shared.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who does it (recorded in the audit log).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]


def _launch(
    home: Home, job: str, day: date | None = None, *, config: dict | None = None, partition_key: str | None = None
) -> None:
    """Run a job through Dagster on the installation's instance; exit with its error if it fails.

    Dagster is imported here, not at the top: the read-only commands start in a third of the time.
    """
    from pipelines.jobs import nightly_run_config
    from pipelines.launch import RunFailed, run_job

    if day is not None:
        config = nightly_run_config(day.isoformat())
    try:
        run_job(home, job, config, tags={"as_of": day.isoformat()} if day else None, partition_key=partition_key)
    except RunFailed as exc:
        raise _fail(str(exc)) from None


def _progress() -> Progress:
    """A progress bar on the terminal (stderr) for long commands; silent when output goes to a file or pipe."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _home() -> Home:
    return payouts_home().prepare()


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _print_json_lines(frame: pl.DataFrame) -> None:
    for row in frame.iter_rows(named=True):
        sys.stdout.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")


def _print_table(frame: pl.DataFrame, title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(column, justify="right" if column.endswith("_cents") or column == "refunds" else "left")
    for row in frame.iter_rows(named=True):
        table.add_row(
            *[
                euros(v) if k.endswith("_cents") and v is not None else ("" if v is None else str(v))
                for k, v in row.items()
            ]
        )
    out.print(table)


# ----------------------------------------------------------------------------------------- intake


@app.command("import")
def import_files(
    paths: Annotated[list[Path], typer.Argument(help="Export files or folders holding them.", exists=True)],
) -> None:
    """Load shop exports (merchants, excluded_ibans, orders, payments, refunds; CSV or Parquet).

    The files are put into $PAYOUTS_HOME/inbox/shop and the `intake` job loads them through Dagster.
    A bad row is rejected with its file, line, column and problem; the good rows are loaded.
    Loading the same file twice changes nothing.

    Example: payouts import ./export/  or  payouts import merchants.csv refunds.csv
    """
    home = _home()
    code = import_into(home, paths)
    raise typer.Exit(code)


def import_into(home: Home, paths: list[Path]) -> int:
    """Queue files into the shop inbox, run the intake job, print what happened. Returns an exit code."""
    code = 0
    queued: list[tuple[str, str]] = []
    files = discover(paths)
    with _progress() as progress:
        task = progress.add_task("queueing files", total=len(files) + 1)
        for path in files:
            progress.update(task, description=f"queueing {path.name}")
            try:
                kind_of(path)
            except IntakeFileError as exc:
                err.print(f"[red]refused:[/red] {exc}", highlight=False)
                code = 1
                continue
            finally:
                progress.advance(task)
            sha = file_sha256(path)
            _queue_file(path, home.shop_inbox, sha)
            queued.append((path.name, sha))
        if not queued:
            return code or 1
        progress.update(task, description=f"loading {len(queued)} file(s) through the intake job")
        _launch(home, "intake")
        progress.advance(task)
    with open_ledger(home.ledger) as con:
        for name, sha in queued:
            loaded = con.execute(
                "SELECT rows_total, rows_loaded, rows_rejected, imported_at FROM intake_files WHERE sha256 = ?", [sha]
            ).fetchone()
            rejects = list_rejects(con, [sha])
            if loaded is None:
                code = 1
                problem = rejects["problem"][0] if not rejects.is_empty() else "not loaded"
                err.print(f"[red]{name}: refused as a whole:[/red] {problem}", highlight=False)
                continue
            total, good, bad, _ = loaded
            out.print(f"{name}: {good} of {total} rows loaded, {bad} rejected", highlight=False)
            for row in rejects.head(20).iter_rows(named=True):
                where = f"line {row['line']}" + (f", column {row['column_name']}" if row["column_name"] else "")
                out.print(f"  {row['file_name']}, {where}: {row['problem']} [{row['severity']}]", highlight=False)
            if rejects.height > 20:
                out.print(f"  ... and {rejects.height - 20} more: payouts rejects list", highlight=False)
    return code


def _queue_file(path: Path, inbox: Path, sha: str, *, prefix: bool = False) -> Path:
    """Copy a file into the inbox under a name no other upload uses, appearing there atomically.
    With `prefix`, the name starts with the content hash (bank files: the name is the partition key)."""
    target = inbox / (f"{sha[:12]}-{path.name}" if prefix else path.name)
    if target.exists():
        if file_sha256(target) == sha:
            return target
        target = inbox / f"{path.stem}-{sha[:12]}{path.suffix.lower()}"
    # Each upload its own temporary name: two uploads of the same file at once must not write into one.
    partial = inbox / f".{target.name}.{os.getpid()}.part"
    shutil.copyfile(path, partial)
    os.replace(partial, target)
    return target


@rejects_app.command("list")
def rejects_list(as_json: JsonFlag = False) -> None:
    """Every row or file intake could not take: file, line, column, value, problem.

    Example: payouts rejects list --json
    """
    with open_ledger(_home().ledger) as con:
        frame = list_rejects(con).drop("file_sha256")
    _print_json_lines(frame) if as_json else _print_table(frame, "Rejected at intake")


# ----------------------------------------------------------------------------------------- runs


@run_app.command("nightly")
def run_nightly(
    day: Annotated[str | None, typer.Option("--date", help="Day of the run, YYYY-MM-DD (default today).")] = None,
) -> None:
    """Run the nightly job through Dagster: load waiting shop exports, then make due every refund
    whose waiting period ends on or before the day.

    Example: payouts run nightly --date 2024-05-20
    """
    as_of = _parse_day(day) if day else date.today()
    home = _home()
    _launch(home, "nightly", as_of)
    with open_ledger(home.ledger) as con:
        _print_table(status_summary(con), f"Refunds after the nightly run for {as_of}")


@run_app.command("weekly")
def run_weekly(
    week: Annotated[str | None, typer.Option("--week", help="ISO week, YYYY-Www (default: this week).")] = None,
    midweek: Annotated[bool, typer.Option("--midweek", help="The Thursday run (twice-weekly merchants).")] = False,
    by: Annotated[str, typer.Option("--by", help="Who prepares the run; with four eyes, not its releaser.")] = "cli",
) -> None:
    """Run the weekly job through Dagster, as the Monday schedule does: collections from merchants
    (pain.008) and payouts to customers (pain.001) for every refund due on or before the week's Monday,
    written to outbox/pending. Re-running a week writes nothing for refunds already in a file.

    Example: payouts run weekly --week 2024-W21 --by alice
    """
    monday = _parse_week(week) if week else date.today() - timedelta(days=date.today().weekday())
    home = _home()
    _run_week(home, monday, "midweek" if midweek else "main", by)
    year, number, _ = monday.isocalendar()
    with open_ledger(home.ledger) as con:
        _print_table(list_files(con, partition_key=f"{year}-W{number:02d}").select(
            "file_name", "kind", "message_type", "n_tx", "ctrl_sum_cents", "requested_on", "validation", "status"
        ), f"Payment files of {year}-W{number:02d}")  # fmt: skip


def _run_week(home: Home, monday: date, run: str, by: str) -> None:
    from pipelines.jobs import weekly_run_config

    _launch(home, "weekly", config=weekly_run_config(run, by), partition_key=monday.isoformat())


@run_app.command("backfill")
def run_backfill(
    first: Annotated[str, typer.Option("--from", help="First ISO week, YYYY-Www.")],
    last: Annotated[str | None, typer.Option("--to", help="Last ISO week (default: the first).")] = None,
    by: Annotated[str, typer.Option("--by", help="Who runs the backfill.")] = "cli",
) -> None:
    """Run past weeks again, oldest first, through the same weekly job (the UI's partition backfill does
    the same). Nothing is paid or collected twice: a week's refunds already in a file are left alone; what
    is written is what became payable since and was never in a file.

    Example: payouts run backfill --from 2024-W18 --to 2024-W21 --by alice
    """
    start = _parse_week(first)
    end = _parse_week(last) if last else start
    if end < start:
        raise _fail(f"--to {last} is before --from {first}", 2)
    home = _home()
    with open_ledger(home.ledger) as con:
        before = set(list_files(con)["file_name"].to_list())
    weeks = [start + timedelta(weeks=n) for n in range((end - start).days // 7 + 1)]
    with _progress() as progress:
        task = progress.add_task("backfill", total=len(weeks))
        for monday in weeks:
            progress.update(task, description=f"week {monday.isocalendar()[0]}-W{monday.isocalendar()[1]:02d}")
            _run_week(home, monday, "main", by)
            progress.advance(task)
    with open_ledger(home.ledger) as con:
        files = list_files(con)
    new = files.filter(~pl.col("file_name").is_in(list(before)))
    out.print(f"{len(weeks)} week(s) run again; {new.height} new file(s)", highlight=False)
    if not new.is_empty():
        _print_table(new.select("file_name", "kind", "partition_key", "n_tx", "ctrl_sum_cents"), "New files")


@run_app.command("report")
def run_report(
    week: Annotated[str | None, typer.Option("--week", help="ISO week, YYYY-Www (default: this week).")] = None,
) -> None:
    """Write a week's reconciliation report through the `report` job: Markdown and charts in the UI, an
    Excel workbook and PNG charts in $PAYOUTS_HOME/reports.

    Example: payouts run report --week 2024-W21
    """
    monday = _parse_week(week) if week else date.today() - timedelta(days=date.today().weekday())
    home = _home()
    _launch(home, "report", partition_key=monday.isoformat())
    year, number, _ = monday.isocalendar()
    out.print(f"written: {home.reports / f'reconciliation-{year}-W{number:02d}.xlsx'}", highlight=False)


def _parse_week(text: str) -> date:
    try:
        year, week = text.upper().split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise _fail(f"not an ISO week in the form YYYY-Www: {text!r}", 2) from None


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail(f"not a date in the form YYYY-MM-DD: {text!r}", 2) from None


# ----------------------------------------------------------------------------------------- refunds


@refunds_app.command("list")
def refunds_list(
    status: Annotated[str | None, typer.Option("--status", help="Only refunds in this status.")] = None,
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's refunds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List refunds: reference, status, amount requested, payout, due date and why.

    Example: payouts refunds list --status awaiting_bank_details --json
    """
    if status is not None and status not in {s.value for s in Status}:
        raise _fail(f"unknown status {status!r}; one of: {', '.join(s.value for s in Status)}", 2)
    with open_ledger(_home().ledger) as con:
        frame = list_refunds(con, status=status, merchant_id=merchant)
    _print_json_lines(frame) if as_json else _print_table(frame.drop("refund_id", "requested_on"), "Refunds")


@refunds_app.command("history")
def refunds_history(ref: str, merchant: MerchantOpt = None, as_json: JsonFlag = False) -> None:
    """The audit trail of one refund: every status change with who, when, from, to and why.

    Example: payouts refunds history R-000123 --json
    """
    with open_ledger(_home().ledger) as con:
        try:
            frame = refund_history(con, ref, merchant)
        except RefundNotFound as exc:
            raise _fail(str(exc)) from None
    _print_json_lines(frame) if as_json else _print_table(frame, f"History of refund {ref}")


@refunds_app.command("set-status")
def refunds_set_status(
    ref: str,
    status: Annotated[str, typer.Argument(help="open, in_progress or already_refunded")],
    by: Annotated[str, typer.Option("--by", help="Who makes the change (recorded in the audit trail).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")],
    merchant: MerchantOpt = None,
) -> None:
    """Record progress by hand: open, in_progress or already_refunded. Audit only: no money moves.

    `open` hands the refund back to the pipeline (the next nightly run schedules it again);
    `in_progress` holds it with finance ops; `already_refunded` closes it as settled elsewhere.

    Example: payouts refunds set-status R-000123 in_progress --by alice --reason "customer called"
    """
    if status not in {s.value for s in Status}:
        raise _fail(f"unknown status {status!r}", 2)
    if Status(status) not in MANUAL:
        raise _fail(f"{status} is set by the pipeline, not by hand; by hand: {', '.join(sorted(MANUAL))}")
    home = _home()
    config = {"refund": ref, "status": status, "by": by, "reason": reason, "merchant": merchant or ""}
    _launch(home, "refund_status_change", config={"ops": {"change_refund_status": {"config": config}}})
    with open_ledger(home.ledger) as con:
        refund = find_refund(con, ref, merchant)
    out.print(f"refund {refund['refund_ref']} is now {refund['status']}", highlight=False)


@refunds_app.command("bank-details")
def refunds_bank_details(
    ref: str,
    iban: Annotated[str | None, typer.Option("--iban", help="The customer's new IBAN (spaces allowed).")] = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="The customer confirms the IBAN: due at once.")] = False,
    by: Annotated[str, typer.Option("--by", help="Who acts (default: the customer's link).")] = "customer",
    merchant: MerchantOpt = None,
) -> None:
    """What the customer's link in the notification does: give a new IBAN, confirm it, or both.

    A confirmed IBAN makes the refund due at once. A new IBAN replaces the old one with an audit
    entry; an invalid one, or one that is the merchant's or a carrier's account, is refused.

    Example: payouts refunds bank-details R-000123 --iban "DE89 3704 0044 0532 0130 00" --confirm
    """
    if iban is None and not confirm:
        raise _fail("give --iban, --confirm, or both", 2)
    home = _home()
    config = {"refund": ref, "iban": iban or "", "confirm": confirm, "by": by, "merchant": merchant or ""}
    _launch(home, "bank_details_update", config={"ops": {"update_customer_bank_details": {"config": config}}})
    with open_ledger(home.ledger) as con:
        refund = find_refund(con, ref, merchant)
    out.print(
        f"refund {refund['refund_ref']}: {refund['status']}, IBAN {mask_iban(refund['customer_iban'])}, "
        f"due {refund['due_on']}",
        highlight=False,
    )


# ----------------------------------------------------------------------------------------- files


@files_app.command("list")
def files_list(as_json: JsonFlag = False) -> None:
    """The payment file registry: name, kind, version, MsgId, transactions, control sum, sha256, status.

    Example: payouts files list --json
    """
    with open_ledger(_home().ledger) as con:
        frame = list_files(con)
    if as_json:
        _print_json_lines(frame)
    else:
        _print_table(frame.select("file_name", "kind", "message_type", "partition_key", "n_tx", "ctrl_sum_cents",
                                  "requested_on", "status", "released_by"), "Payment files")  # fmt: skip


@files_app.command("release")
def files_release(
    files: Annotated[list[str] | None, typer.Argument(help="File names in outbox/pending.")] = None,
    release_all: Annotated[bool, typer.Option("--all", help="Release every pending file.")] = False,
    by: Annotated[str, typer.Option("--by", help="Who releases (recorded with the file).")] = "",
) -> None:
    """Release pending payment files to the bank through the `release` job: each is checked (valid,
    unchanged since written, control sums equal to the ledger), posted in the ledger and moved to
    outbox/released, the folder the bank upload reads.

    Example: payouts files release --all --by alice
    """
    from pipelines.jobs import release_run_config

    if not by.strip():
        raise _fail("say who releases with --by NAME", 2)
    if bool(files) == release_all:
        raise _fail("name the files to release, or give --all", 2)
    home = _home()
    names = None if release_all else [Path(f).name for f in files or []]
    _launch(home, "release", config=release_run_config(by, names))
    with open_ledger(home.ledger) as con:
        released = list_files(con, status="released")
    shown = released if names is None else released.filter(pl.col("file_name").is_in(names))
    out.print(f"{shown.height} file(s) released by {by}; in {home.outbox / 'released'}")


@files_app.command("cancel")
def files_cancel(
    file: Annotated[str, typer.Argument(help="A file name in outbox/pending.")],
    by: ByOpt,
    reason: ReasonOpt,
) -> None:
    """Cancel a payment file waiting for release, through the `payment_file_cancellation` job. It never
    goes to the bank (it moves to outbox/cancelled); its refunds are due again, or its collections' refunds
    can be collected again, in the next run. A released file cannot be cancelled.

    Example: payouts files cancel PO-2024-W21-0001.xml --by alice --reason "wrong execution date"
    """
    from pipelines.jobs import op_config

    home = _home()
    name = Path(file).name
    _launch(home, "payment_file_cancellation", config=op_config("cancel_payment_file", file=name, by=by, reason=reason))
    out.print(f"{name} cancelled by {by}; in {home.outbox / 'cancelled'}", highlight=False)


@files_app.command("validate")
def files_validate(
    path: Annotated[Path, typer.Argument(help="A pain.001, pain.008, pain.002 or camt.05x file.")],
) -> None:
    """Validate a file against the official XSD of its message type (picked from its namespace); print
    each error with its line, element and value. Exit status 0 when valid, 1 when not. Schemas not shipped
    (pain.002.001.03) can be added as $PAYOUTS_HOME/xsd/<message type>.xsd.

    Example: payouts files validate outbox/pending/PO-2024-W21-0001.xml
    """
    from sepa.xsd import validate_document

    if not path.is_file():
        raise _fail(f"no such file: {path}", 2)
    # Schemas an installation adds (a version not shipped, or its bank's own variant) live in $PAYOUTS_HOME/xsd.
    extra = _home().root / "xsd"
    result = validate_document(path.read_bytes(), extra_xsd_dirs=[extra] if extra.is_dir() else [])
    if result.ok:
        out.print(f"{path.name}: valid {result.message_type}")
        return
    for error in result.errors:
        out.print(f"{path.name}: {error}")
    raise typer.Exit(1)


# ----------------------------------------------------------------------------------------- bank files


@app.command("inspect")
def inspect(
    path: Annotated[Path, typer.Argument(help="A camt.052/053/054 or pain.002 file.")],
    as_json: JsonFlag = False,
) -> None:
    """Read a bank file safely and print one line per transaction (JSON with --json): message type, ids,
    account, entry reference, dates, status, direction, amount in cents, codes, return reason, counterparty.
    Exit status 2 with a one-line reason when the file cannot be read.

    Example: payouts inspect statement.xml --json
    """
    from sepa.bank_files import read_bank_file
    from sepa.safe_xml import BankFileError

    try:
        bank_file = read_bank_file(path)
    except (BankFileError, OSError) as exc:
        raise _fail(str(exc), 2) from None
    rows = bank_file.rows
    if as_json:
        _print_json_lines(rows)
        return
    shown = rows.select("entry_ref", "booking_date", "status", "direction", "amount_cents", "bank_tx_code",
                        "end_to_end_id", "return_reason", "counterparty_name")  # fmt: skip
    _print_table(shown, f"{path.name}: {bank_file.message_type}")
    for note in bank_file.notes:
        out.print(f"note: {note}")


@app.command("import-bank")
def import_bank(
    paths: Annotated[list[Path], typer.Argument(help="Bank files (camt.05x, pain.002).", exists=True)],
    now: Annotated[
        bool, typer.Option("--now", help="Reconcile at once and wait, instead of leaving it to the sensor.")
    ] = False,
) -> None:
    """Put bank files into $PAYOUTS_HOME/inbox/bank (atomically) for the sensor to reconcile; with --now,
    reconcile each at once through the same Dagster job and return when the books are updated.

    Example: payouts import-bank statement.xml --now
    """
    home = _home()
    names = [_queue_file(p, home.bank_inbox, file_sha256(p), prefix=True).name for p in paths]
    if not now:
        out.print(f"{len(names)} file(s) in {home.bank_inbox}; the sensor reconciles them")
        return
    _reconcile_inbox(home, names)


@run_app.command("reconcile")
def run_reconcile() -> None:
    """Reconcile every file waiting in inbox/bank now, one run of the `reconcile` job each, as the sensor
    would; print what each did.

    Example: payouts run reconcile
    """
    home = _home()
    _reconcile_inbox(home)


def _reconcile_inbox(home: Home, names: list[str] | None = None) -> pl.DataFrame:
    from pipelines.launch import add_bank_file_partitions

    if names is None:
        names = sorted(p.name for p in home.bank_inbox.iterdir() if p.is_file() and not p.name.startswith("."))
    if not names:
        out.print("inbox/bank is empty")
        return pl.DataFrame()
    add_bank_file_partitions(home, names)
    failed = 0
    for name in names:
        try:
            _launch(home, "reconcile", partition_key=name)
        except typer.Exit:
            failed += 1
    with open_ledger(home.ledger) as con:
        done = con.execute(
            "SELECT file_name, message_type, lines_total, lines_new, matched, proposed, exceptions, ignored "
            "FROM bank_files WHERE file_name IN (" + ", ".join("?" for _ in names) + ") ORDER BY file_name",
            names,
        ).pl()
    _print_table(done, "Bank files reconciled")
    if failed:
        raise typer.Exit(1)
    return done


@app.command("sandbox-bank")
def sandbox_bank(
    return_rate: Annotated[float, typer.Option(help="Share of transactions returned or rejected.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed answers the same way.")] = 7,
) -> None:
    """Play the bank: answer every released payment file with a pain.002 (some rejects), camt.054
    notifications (batch bookings, returns with realistic reason codes) and camt.053 statements with
    correct balances, written into inbox/bank for reconciliation.

    Example: payouts sandbox-bank --return-rate 0.1 && payouts run reconcile
    """
    from pipelines.sandbox_bank import answer_released_files

    written = answer_released_files(_home(), return_rate=return_rate, seed=seed)
    out.print(f"{len(written)} bank file(s) written to inbox/bank")


@exceptions_app.command("list")
def exceptions_list(
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False, as_json: JsonFlag = False
) -> None:
    """The exceptions queue: bank lines nobody could match, returns that need a person, balance gaps;
    each naming the refund it concerns, or the bank line's EndToEndId and entry reference.

    Example: payouts exceptions list --json
    """
    from ledger.reconciliation import list_exceptions

    with open_ledger(_home().ledger) as con:
        frame = list_exceptions(con, None if all_ else "open")
    if as_json:
        _print_json_lines(frame)
        return
    # The short id is what `exceptions resolve` takes; the full rows are in --json.
    shown = frame.select(
        pl.col("exception_id").str.slice(0, 12).alias("id"), "file_name", "refund_ref",
        pl.coalesce("collection_id", "end_to_end_id", "entry_ref").alias("about"), "direction", "amount_cents",
        "reason",
    )  # fmt: skip
    _print_table(shown, "Exceptions")


@exceptions_app.command("resolve")
def exceptions_resolve(
    exception: Annotated[str, typer.Argument(help="The exception's id, or its first 8 characters or more.")],
    action: Annotated[
        str,
        typer.Argument(
            help="match, bank_charge, send_back, write_off, pay_again, ask_bank_details, represent or dismiss."
        ),
    ],
    by: ByOpt,
    reason: ReasonOpt,
    refund: Annotated[str | None, typer.Option("--refund", help="match: the refund's reference or id.")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="match: the collection id.")] = None,
    approved_by: Annotated[
        str | None, typer.Option("--approved-by", help="write_off above the limit: the second person approving.")
    ] = None,
) -> None:
    """Resolve an exception through the `exception_resolution` job; what is booked is in the ledger and
    the operations log. Which actions fit depends on the exception:

    a bank line nobody matched: match (--refund or --collection), bank_charge, send_back, write_off;
    a returned payout: pay_again (same account) or ask_bank_details (the customer is notified);
    a returned collection: represent (collect again next run) or write_off (the merchant's debt);
    dismiss: only what carries no money of its own (a line whose amount could not be read, a balance gap).

    A write-off above the limit in controls.toml (default 100.00 EUR) needs --approved-by, someone else.

    Example: payouts exceptions resolve 3f2a9c1b bank_charge --by alice --reason "fee for the return"
    """
    from pipelines.jobs import op_config

    config = op_config(
        "resolve_bank_exception", exception=exception, action=action, by=by, reason=reason, refund=refund or "",
        collection=collection or "", approved_by=approved_by or "",
    )  # fmt: skip
    _launch(_home(), "exception_resolution", config=config)
    out.print(f"exception {exception} resolved: {action} by {by}", highlight=False)


@exceptions_app.command("proposals")
def exceptions_proposals(
    all_: Annotated[bool, typer.Option("--all", help="Confirmed and declined ones too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Matches reconciliation proposed by amount, date and name, waiting for a person to confirm them.

    Example: payouts exceptions proposals --json
    """
    from ledger.exceptions import list_proposals

    with open_ledger(_home().ledger) as con:
        frame = list_proposals(con, None if all_ else "proposed")
    if as_json:
        _print_json_lines(frame)
        return
    shown = frame.with_columns(pl.col("line_id").str.slice(0, 12).alias("line")).drop("line_id", "matched_ref")
    _print_table(shown.select("line", *[c for c in shown.columns if c != "line"]), "Proposed matches")


def _review(line: str, confirm: bool, by: str, reason: str) -> None:
    from pipelines.jobs import op_config

    config = op_config("review_proposed_match", line=line, confirm=confirm, by=by, reason=reason)
    _launch(_home(), "proposed_match_review", config=config)
    out.print(f"proposal {line} {'confirmed' if confirm else 'declined'} by {by}", highlight=False)


@exceptions_app.command("confirm")
def exceptions_confirm(
    line: Annotated[str, typer.Argument(help="The proposal's line id, or its first 8 characters or more.")],
    by: ByOpt,
    reason: ReasonOpt,
) -> None:
    """Confirm a proposed match: the line is booked as if it had matched by EndToEndId.

    Example: payouts exceptions confirm 9b1c0d2e --by alice --reason "name and amount agree"
    """
    _review(line, True, by, reason)


@exceptions_app.command("decline")
def exceptions_decline(
    line: Annotated[str, typer.Argument(help="The proposal's line id, or its first 8 characters or more.")],
    by: ByOpt,
    reason: ReasonOpt,
) -> None:
    """Decline a proposed match: the line goes to the exceptions queue to be resolved by hand.

    Example: payouts exceptions decline 9b1c0d2e --by alice --reason "different customer"
    """
    _review(line, False, by, reason)


# ----------------------------------------------------------------------------------------- merchants


@collections_app.command("list")
def collections_list(
    status: Annotated[str | None, typer.Option("--status", help="Only this status, e.g. returned.")] = None,
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's collections.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Merchant collections: week, sequence type, date, amount, status (in_file, released, booked, returned,
    represented, written_off, cancelled) and refunds covered.

    Example: payouts collections list --status returned
    """
    from ledger.collections import list_collections

    with open_ledger(_home().ledger) as con:
        frame = list_collections(con, status=status, merchant_id=merchant)
    _print_json_lines(frame) if as_json else _print_table(frame, "Collections")


@collections_app.command("represent")
def collections_represent(
    collection: Annotated[str, typer.Argument(help="The returned collection's id.")], by: ByOpt, reason: ReasonOpt
) -> None:
    """Present a returned collection again, through the `collection_representation` job: its refunds go
    into the next collection run's direct debit to the merchant.

    Example: payouts collections represent CL0123ABCD --by alice --reason "merchant topped up the account"
    """
    from pipelines.jobs import op_config

    config = op_config("represent_returned_collection", collection=collection, by=by, reason=reason)
    _launch(_home(), "collection_representation", config=config)
    out.print(f"collection {collection} will be presented again in the next collection run", highlight=False)


@merchants_app.command("list")
def merchants_list(
    blocked: Annotated[bool, typer.Option("--blocked", help="Only blocked merchants.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Merchants: funding, collection rhythm, blocked or not, IBAN problem, and what each owes (receivable).

    Example: payouts merchants list --blocked
    """
    from ledger.merchants import list_merchants

    with open_ledger(_home().ledger) as con:
        frame = list_merchants(con, blocked=True if blocked else None)
    _print_json_lines(frame) if as_json else _print_table(frame, "Merchants")


def _block(merchant: str, blocked: bool, by: str, reason: str) -> None:
    from pipelines.jobs import op_config

    config = op_config("block_or_unblock_merchant", merchant=merchant, blocked=blocked, by=by, reason=reason)
    _launch(_home(), "merchant_block", config=config)
    out.print(f"merchant {merchant} {'blocked' if blocked else 'unblocked'} by {by}", highlight=False)


@merchants_app.command("block")
def merchants_block(
    merchant: Annotated[str, typer.Argument(help="The merchant id.")], by: ByOpt, reason: ReasonOpt
) -> None:
    """Block a merchant, through the `merchant_block` job: nothing is collected from it and none of its
    customers is paid until it is unblocked (their refunds stay due).

    Example: payouts merchants block M0042 --by alice --reason "mandate disputed"
    """
    _block(merchant, True, by, reason)


@merchants_app.command("unblock")
def merchants_unblock(
    merchant: Annotated[str, typer.Argument(help="The merchant id.")], by: ByOpt, reason: ReasonOpt
) -> None:
    """Unblock a merchant: the next runs collect from it and pay its customers again.

    Example: payouts merchants unblock M0042 --by bob --reason "dispute settled"
    """
    _block(merchant, False, by, reason)


@operations_app.command("list")
def operations_list(
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50, as_json: JsonFlag = False
) -> None:
    """The operations log: every file cancelled, exception resolved, proposal reviewed, collection presented
    again and merchant blocked by hand, with who, who approved and why.

    Example: payouts operations list --limit 20
    """
    from ledger.audit import list_operations

    with open_ledger(_home().ledger) as con:
        frame = list_operations(con, limit)
    _print_json_lines(frame) if as_json else _print_table(frame, "Operations log")


# ----------------------------------------------------------------------------------------- books


@ledger_app.command("balances")
def ledger_balances(as_json: JsonFlag = False) -> None:
    """Balance per account in cents (debit positive, credit negative); the total is always zero.

    Example: payouts ledger balances --json
    """
    with open_ledger(_home().ledger) as con:
        frame = balances(con)
        total = ledger_total(con)
    if as_json:
        _print_json_lines(frame)
        return
    _print_table(frame, "Ledger balances")
    out.print(f"ledger total: {euros(total)}", highlight=False)


@notifications_app.command("list")
def notifications_list(as_json: JsonFlag = False) -> None:
    """Every customer- or merchant-facing notification queued, with its template and data.

    Example: payouts notifications list --json
    """
    with open_ledger(_home().ledger) as con:
        frame = list_notifications(con)
    _print_json_lines(frame) if as_json else _print_table(frame.drop("data"), "Notifications outbox")


# ----------------------------------------------------------------------------------------- demo


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """Where money stands, on one screen: refunds by stage, the platform's position in the ledger, and the
    work waiting for finance ops (exceptions, proposals, files to release).

    Example: payouts status
    """
    from ledger.reports import money_position, open_work, refunds_by_stage

    with open_ledger(_home().ledger) as con:
        stages, position, work = refunds_by_stage(con), money_position(con), open_work(con)
    if as_json:
        _print_json_lines(stages.with_columns(pl.lit("refunds").alias("table")))
        _print_json_lines(position.with_columns(pl.lit("ledger").alias("table")))
        _print_json_lines(work.with_columns(pl.lit("work").alias("table")))
        return
    _print_table(stages, "Refunds by stage")
    _print_table(position, "Where the money is (ledger)")
    _print_table(work, "Waiting for finance ops")


@app.command("generate")
def generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the export files into.")],
    merchants: Annotated[int, typer.Option(help="How many merchants.")] = 200,
    orders: Annotated[int, typer.Option(help="How many orders.")] = 20_000,
    start: Annotated[str | None, typer.Option(help="First refund request day (default 10 weeks ago).")] = None,
    end: Annotated[str | None, typer.Option(help="Last refund request day (default today).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same files.")] = 7,
) -> None:
    """Write a realistic shop export (merchants, orders, payments, refunds, excluded IBANs), awkward
    cases included on purpose: instalments, over-limit requests, duplicates, bad IBANs...

    Example: payouts generate --merchants 50 --orders 5000 --seed 1 ./export
    """
    from pipelines.demo_data import generate_shop_export

    last = _parse_day(end) if end else date.today()
    first = _parse_day(start) if start else last - timedelta(weeks=10)
    counts = generate_shop_export(out_dir, merchants=merchants, orders=orders, start=first, end=last, seed=seed)
    for key, value in counts.items():
        out.print(f"{key}: {value}", highlight=False)


@app.command("bench")
def bench(
    refunds: Annotated[int, typer.Option(help="How many refunds in the week (merchants: refunds // 100).")] = 100_000,
    as_json: JsonFlag = False,
    baselines: Annotated[bool, typer.Option(help="Also time sepaxml and pycamt on the same data.")] = True,
    work_dir: Annotated[
        Path | None, typer.Option("--dir", help="Keep the benchmark's installation here (default: a temporary one).")
    ] = None,
) -> None:
    """Time a busy week end to end on a fresh installation: intake, nightly, the weekly collection and
    payout files (written, validated, registered, released, posted), and the reconciliation of a camt.054
    and a camt.053 with one line per payout; then sepaxml and pycamt on the same data. Prints each stage's
    seconds, rows per second and peak memory; with --json the last line is one JSON object.

    Example: payouts bench --refunds 100000 --json
    """
    import tempfile
    from dataclasses import asdict

    from pipelines.bench import run_bench

    def report(stage) -> None:
        out.print(
            f"{stage.name:<20} {stage.seconds:>8.2f} s {stage.rows:>10,} rows {stage.rows_per_second:>10,.0f} rows/s "
            f"{stage.peak_mb:>8.0f} MB peak",
            highlight=False,
        )

    def note(text: str) -> None:
        out.print(f"[dim]{text}[/dim]", highlight=False)

    with tempfile.TemporaryDirectory(prefix="payouts-bench-") as scratch:
        where = work_dir or Path(scratch)
        try:
            result = run_bench(refunds, where, baselines=baselines, report=report, note=note)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    out.print(
        f"intake {result.intake_seconds:.2f} s · weekly {result.weekly_seconds:.2f} s · reconcile (camt.054) "
        f"{result.reconcile_seconds:.2f} s · statement (camt.053) {result.statement_seconds:.2f} s · peak "
        f"{result.peak_mb:.0f} MB",
        highlight=False,
    )
    for name, figures in result.baselines.items():
        if "error" in figures:
            out.print(f"baseline {name}: could not run: {figures['error']}", highlight=False)
        else:
            out.print(
                f"baseline {figures['library']}: {figures['theirs']['seconds']:.2f} s against our "
                f"{figures['ours']['seconds']:.2f} s for {figures['rows']:,} rows ({figures['speedup']}x); peak "
                f"{figures['theirs']['peak_mb']:.0f} MB against {figures['ours']['peak_mb']:.0f} MB",
                highlight=False,
            )
    checks = result.checks
    out.print(
        f"checks: {checks['payouts_released']:,} payouts released, {checks['refunds_paid_twice']} paid twice, "
        f"{checks['unaccounted_lines']} bank lines unaccounted, ledger total {checks['ledger_total_cents']} cents",
        highlight=False,
    )
    if as_json:
        print(json.dumps(asdict(result), default=str))


@app.command("demo")
def demo(
    merchants: Annotated[int, typer.Option(help="How many merchants.")] = 200,
    orders: Annotated[int, typer.Option(help="How many orders.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    weeks: Annotated[int, typer.Option(help="How many weeks of refunds to generate and run.")] = 6,
) -> None:
    """Run the whole loop end to end on the embedded default: generate a shop export of the last weeks,
    import it, then week by week run the nightly and weekly jobs through Dagster, release the payment
    files, let the sandbox bank answer and reconcile its files; print where money stands.

    Example: payouts demo --merchants 50 --orders 5000
    """
    from pipelines.demo_data import generate_shop_export

    home = _home()
    today = date.today()
    export = home.root / "demo-export"
    out.rule("1. shop export")
    generate_shop_export(
        export, merchants=merchants, orders=orders, start=today - timedelta(weeks=10), end=today, seed=seed
    )
    out.print(f"written to {export}", highlight=False)
    out.rule("2. intake (job 'intake')")
    import_into(home, [export])
    from pipelines.jobs import release_run_config, weekly_run_config
    from pipelines.sandbox_bank import answer_released_files

    first = today - timedelta(weeks=weeks, days=today.weekday())
    mondays = [first + timedelta(weeks=n) for n in range((today - first).days // 7 + 1)]
    with _progress() as progress:
        task = progress.add_task("weeks", total=len(mondays))
        for monday in mondays:
            year, week, _ = monday.isocalendar()
            progress.update(task, description=f"week {year}-W{week:02d}")
            out.rule(f"3. week {year}-W{week:02d}: nightly, weekly, release, sandbox bank, reconcile")
            _launch(home, "nightly", monday)
            # Prepared by the schedule, released by a person: the four-eyes rule holds in the demo too.
            _launch(home, "weekly", config=weekly_run_config("main", "schedule"), partition_key=monday.isoformat())
            with open_ledger(home.ledger) as con:
                pending = list_files(con, status="written").height
            if pending:
                _launch(home, "release", config=release_run_config("demo", None))
            answers = answer_released_files(home, return_rate=0.05, seed=seed)
            out.print(f"{pending} payment file(s) written and released; the bank answered with {len(answers)} file(s)")
            if answers:
                _reconcile_inbox(home, [p.name for p in answers])
            progress.advance(task)
    out.rule(f"4. nightly run for {today}")
    _launch(home, "nightly", today)
    out.rule("summary")
    print_summary(home)


def print_summary(home: Home) -> None:
    """Refunds by status, what is due, rejects by problem, and the ledger total."""
    with open_ledger(home.ledger) as con:
        summary = status_summary(con)
        rejects = con.execute(
            "SELECT severity, column_name, COUNT(*) AS rows, MIN(problem) AS example "
            "FROM rejects GROUP BY 1, 2 ORDER BY rows DESC"
        ).pl()
        refused = con.execute(
            "SELECT CASE WHEN status_reason LIKE 'over the refund limit%' THEN 'over the refund limit' "
            "WHEN status_reason LIKE '%refund window%' THEN 'after the refund window' "
            "WHEN status_reason LIKE '%not refundable%' THEN 'order not refundable' "
            "ELSE status_reason END AS reason, COUNT(*) AS refunds, MIN(status_reason) AS example "
            "FROM refunds WHERE status = 'rejected' GROUP BY 1 ORDER BY refunds DESC"
        ).pl()
        total = ledger_total(con)
        bank = con.execute(
            "SELECT outcome, event, matched_kind, COUNT(*) AS lines, CAST(SUM(amount_cents) AS BIGINT) AS amount_cents "
            "FROM bank_lines GROUP BY ALL ORDER BY ALL"
        ).pl()
        queue = con.execute(
            "SELECT CASE WHEN refund_id IS NOT NULL THEN 'refund' WHEN collection_id IS NOT NULL THEN 'collection' "
            "ELSE 'bank line' END AS about, COUNT(*) AS open, MIN(reason) AS example FROM exceptions "
            "WHERE status = 'open' GROUP BY 1 ORDER BY 1"
        ).pl()
        files = con.execute(
            "SELECT kind, message_type, status, COUNT(*) AS files, SUM(n_tx) AS transactions, "
            "CAST(SUM(ctrl_sum_cents) AS BIGINT) AS ctrl_sum_cents FROM payment_files GROUP BY ALL ORDER BY ALL"
        ).pl()
    _print_table(summary, "Refunds by status")
    due = summary.filter(pl.col("status") == "due")
    out.print(
        f"due for payout: {int(due['refunds'].sum() or 0)} refunds, {euros(int(due['payout_cents'].sum() or 0))}",
        highlight=False,
    )
    _print_table(refused, "Refused by the rules")
    _print_table(rejects, "Rejected at intake")
    _print_table(files, "Payment files by kind and status")
    _print_table(bank, "Bank lines reconciled")
    _print_table(queue, "Exceptions waiting for finance ops")
    out.print(f"ledger total (must be zero): {euros(total)}", highlight=False)


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option(help="Port of the web UI on 127.0.0.1.")] = 3000,
) -> None:
    """Start the Dagster UI (and its schedule daemon) on this installation's persistent instance.

    Dagster's open-source webserver has no log-in: it listens on 127.0.0.1 only; see the README
    before exposing it. Stop it with Ctrl-C.

    Example: payouts ui --port 3000
    """
    home = _home()
    os.environ["DAGSTER_HOME"] = str(home.dagster)
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    dagster = Path(sys.executable).parent / "dagster"
    os.execv(str(dagster), [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)])


def main() -> None:
    """Entry point of the `payouts` command."""
    app()


if __name__ == "__main__":
    main()
