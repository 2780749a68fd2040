"""Bank files in: every statement, notification and status report in `inbox/bank/` read and reconciled."""
# No `from __future__ import annotations` here: Dagster reads the context type hints at runtime.

import concurrent.futures
import shutil
from pathlib import Path

import dagster as dg
import polars as pl

from assets.faults import crash_point
from assets.formatting import markdown_table, masked
from ledger.intake_files import file_sha256
from ledger.postings import ledger_total, unbalanced_transfers
from ledger.reconciliation import (
    Reconciled,
    ReturnPolicy,
    list_exceptions,
    reconcile_bank_file,
    repeated_lines,
    unaccounted_lines,
)
from sepa.bank_files import BankFile, read_bank_file
from sepa.reason_codes import reason
from sepa.safe_xml import BankFileError
from sepa.statement_checks import balance_gaps

bank_file_partitions = dg.DynamicPartitionsDefinition(name="bank_files")


def read_bank_file_and_hash(path: Path) -> tuple[BankFile, str]:
    """A bank file read safely, and the SHA-256 of its bytes that says whether it was booked before. The hash
    is taken in a thread while the file is read (hashlib lets go of the GIL): 1.3 s for a file of 1.6 GB.
    Raises BankFileError as `read_bank_file` does."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        sha = pool.submit(file_sha256, path)
        bank_file = read_bank_file(path)
        return bank_file, sha.result()


def with_reason_actions(rows: pl.DataFrame) -> pl.DataFrame:
    """Each line's return reason looked up in the ISO catalogue: its action and meaning (null if unknown)."""
    codes = rows["return_reason"].drop_nulls().unique().to_list()
    known = {code: reason(code) for code in codes}
    # Looked up by value, not joined: a join copies every column of a million lines (200 MB) to add two.
    return rows.with_columns(
        pl.col("return_reason")
        .replace_strict({c: r.action.value for c, r in known.items() if r}, default=None, return_dtype=pl.String)
        .alias("reason_action"),
        pl.col("return_reason")
        .replace_strict({c: r.name for c, r in known.items() if r}, default=None, return_dtype=pl.String)
        .alias("reason_text"),
    )


@dg.asset(
    partitions_def=bank_file_partitions,
    group_name="reconciliation",
    kinds={"xml", "duckdb"},
    owners=["team:finance-ops"],
    required_resource_keys={"ledger", "home", "bank"},
)
def reconciled_bank_files(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One bank file (camt.052/053/054 or pain.002) from `inbox/bank/`, read safely and reconciled against
    the ledger: payouts executed or returned, collections booked or returned, files accepted or rejected;
    what cannot be matched is proposed for confirmation or put in the exceptions queue with the reason.
    The file then moves to `archive/bank/` (refused files to `archive/bank-refused/`). Booked once, however
    often the file is offered."""
    home = context.resources.home.home
    name = context.partition_key
    path = home.bank_inbox / name
    # The whole file is handled holding the ledger, so two runs of the same file (two uploads at once, a
    # sensor that forgot its cursor) take turns: the second finds it booked, or already archived.
    with context.resources.ledger.connect() as con:
        if not path.exists():
            archived = home.root / "archive" / "bank" / name
            if archived.exists():
                return dg.MaterializeResult(metadata={"file": name, "note": "already reconciled"})
            raise dg.Failure(masked(f"{name} is not in inbox/bank"))
        try:
            bank_file, sha = read_bank_file_and_hash(path)
        except BankFileError as exc:
            _move(path, home.root / "archive" / "bank-refused" / name)
            # The reader's message may quote the file's text.
            raise dg.Failure(masked(f"refused: {exc}")) from None
        lines, done = book_bank_file(con, name, sha, bank_file, _return_policy(context.resources.bank.profile()))
        queue = list_exceptions(con).filter(pl.col("file_name") == name)
        crash_point("bank_file_booked")
        _move(path, home.root / "archive" / "bank" / name)
    summary = lines.group_by("direction", "status").agg(
        pl.len().alias("lines"), pl.col("amount_cents").sum().alias("amount_cents")
    )
    return dg.MaterializeResult(
        metadata={
            "file": name,
            "message_type": bank_file.message_type,
            "already_imported": done.already_imported,
            "lines": done.lines,
            "new_lines": done.new_lines,
            "matched": done.matched,
            "proposed": done.proposed,
            "exceptions": done.exceptions,
            "not_booked_yet": done.ignored,
            "lines_by_direction": dg.MetadataValue.md(markdown_table(summary)),
            "exceptions_raised": dg.MetadataValue.md(
                markdown_table(queue.select("refund_ref", "end_to_end_id", "entry_ref", "amount_cents", "reason"))
            ),
            "reader_notes": dg.MetadataValue.md("\n".join(f"- {masked(n)}" for n in bank_file.notes) or "_none_"),
        }
    )


def book_bank_file(
    con, name: str, sha256: str, bank_file: BankFile, policy: ReturnPolicy
) -> tuple[pl.DataFrame, Reconciled]:
    """Reconcile a bank file already read: its lines with their return reasons looked up, matched and booked
    in the ledger (once, however often the file comes). Returns the lines and what was done."""
    lines = with_reason_actions(bank_file.rows)
    done = reconcile_bank_file(
        con, file_name=name, sha256=sha256, lines=lines, balance_gaps=balance_gaps(bank_file), policy=policy
    )
    return lines, done


def _return_policy(bank) -> ReturnPolicy:
    return ReturnPolicy(charges_to=bank.return_charges_to, represent_once=bank.represent_am04_once)


def _move(src, target) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(target))


@dg.asset_check(asset=reconciled_bank_files, required_resource_keys={"ledger"}, blocking=True)
def every_bank_line_accounted_for(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Every line read from a bank file is matched, proposed, set aside as not booked, or in the
    exceptions queue (none dropped), none is recorded twice; and the ledger sums to zero."""
    with context.resources.ledger.connect() as con:
        dropped = unaccounted_lines(con)
        repeated = repeated_lines(con)
        broken = unbalanced_transfers(con)
        total = ledger_total(con)
    return dg.AssetCheckResult(
        passed=dropped.is_empty() and repeated.is_empty() and broken.is_empty() and total == 0,
        metadata={
            "unaccounted_lines": dropped.height,
            "repeated_lines": repeated.height,
            "unbalanced_transfers": broken.height,
            "ledger_total": total,
        },
    )
