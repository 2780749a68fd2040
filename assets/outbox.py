"""Payment files into the outbox: pick what the ledger says is due, build the XML with `sepa`, validate it,
write it to `outbox/pending/` and record it in the ledger; release moves it to `outbox/released/`.

The one place where the two libraries meet for payment files; the assets and the CLI call these.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from assets.faults import crash_point
from assets.home import Home
from ledger.db import transaction
from ledger.intake_files import file_sha256
from ledger.payment_files import (
    COLLECTION,
    PAYOUT,
    PaymentFile,
    RunWindow,
    cancel_file,
    collectable_refunds,
    hold_unpayable,
    list_files,
    next_seq,
    payable_refunds,
    plan_collections,
    record_collection_files,
    record_payout_files,
    release_files,
)
from sepa import ids
from sepa.calendar import collection_date, next_business_day
from sepa.creditor_id import creditor_id_problem
from sepa.files import split_frame
from sepa.pain001 import build_credit_transfers
from sepa.pain008 import build_direct_debits
from sepa.parties import Party
from sepa.xsd import validate_document

# Files ready for the bank are not for everyone's eyes.
FILE_MODE = 0o640
# A run this big writes its files on every core; a smaller one is done before the workers would pay for
# themselves: a worker takes about 0.8 s to start (a fresh interpreter, its imports, its schemas, its
# shutdown), a file of 5,000 transactions about 0.07 s to build, validate and write. The 15 collection
# files of a week of a million refunds took 1.9 s in workers and 1.2 s in one process.
PARALLEL_FROM_ROWS = 120_000


@dataclass(frozen=True)
class BankProfile:
    """The platform's account and what its bank accepts."""

    platform: Party
    pain001_version: str
    pain008_version: str
    max_transactions_per_file: int
    collection_lead_days: int
    per_refund_fee_cents: int
    auto_release: bool
    return_charges_to: str = "platform"
    represent_am04_once: bool = True

    def __post_init__(self) -> None:
        problem = creditor_id_problem(self.platform.creditor_id or "")
        if problem:
            raise ValueError(f"bank profile: creditor_id {self.platform.creditor_id!r}: {problem}")


@dataclass(frozen=True)
class RunFiles:
    """What a run wrote, and what it could not do."""

    written: pl.DataFrame  # the registry rows of the files written by this run
    skipped: pl.DataFrame  # merchants not collected from, or refunds held back, with the reason


def write_collection_files(
    con, home: Home, bank: BankProfile, window: RunWindow, now: datetime, prepared_by: str | None = None
) -> RunFiles:
    """One SEPA Core direct debit per merchant (per refund for per-refund merchants) for the payouts of its
    refunds due by the cut-off, in as many pain.008 files as the bank's limit needs."""
    when = collection_date(window.cutoff, bank.collection_lead_days)
    refunds, skipped = collectable_refunds(con, window, when)
    collections, covered = plan_collections(
        con, refunds, window, collection_date=when, per_refund_fee_cents=bank.per_refund_fee_cents
    )
    build = functools.partial(_collection_file, bank=bank, window=window, when=when, now=now)
    names = _write_in_files(
        con, home, bank, window, COLLECTION, collections, version=bank.pain008_version, on=when, build=build,
        prepared_by=prepared_by,
        record=lambda written: record_collection_files(con, written, covered),
    )  # fmt: skip
    return RunFiles(_registry(con, names), skipped)


def _collection_file(
    part: pl.DataFrame, msg_id: str, pmt_id: str, *, bank: BankProfile, window: RunWindow, when: date, now: datetime
) -> tuple[bytes, pl.DataFrame]:
    """A pain.008 of the collections in `part`, and its items for the registry."""
    debits = part.select(
        _end_to_end_ids("collection_id", "collection"),
        "amount_cents",
        pl.col("merchant_name").alias("name"),
        "iban",
        "bic",
        "mandate_id",
        "mandate_signed_on",
        "sequence_type",
        pl.format("Refunds {} {}", pl.lit(window.partition_key), pl.col("merchant_id")).alias("remittance"),
    )
    xml = build_direct_debits(
        bank.platform, debits, msg_id=msg_id, payment_info_id=pmt_id, collection_date=when,
        version=bank.pain008_version, created_at=now,
    )  # fmt: skip
    items = debits.select("end_to_end_id", "amount_cents").with_columns(
        part["collection_id"], part["merchant_id"], _pmt_ids(pmt_id, part["sequence_type"])
    )
    return xml, items


def write_payout_files(
    con, home: Home, bank: BankProfile, window: RunWindow, now: datetime, prepared_by: str | None = None
) -> RunFiles:
    """One SEPA credit transfer per refund whose money is secured, in as many pain.001 files as needed."""
    payable, held = hold_unpayable(con, payable_refunds(con, window), [bank.platform.iban], actor="weekly run")
    when = next_business_day(window.cutoff)
    build = functools.partial(_payout_file, bank=bank, when=when, now=now)
    names = _write_in_files(
        con, home, bank, window, PAYOUT, payable, version=bank.pain001_version, on=when, build=build,
        prepared_by=prepared_by,
        record=lambda written: record_payout_files(con, [f for f, _part in written], actor="weekly run"),
    )  # fmt: skip
    skipped = held.select(
        "merchant_id", pl.format("refund {}: not paid, the IBAN on record is {}", pl.col("refund_ref"),
                                 pl.col("owner")).alias("skip_reason")
    )  # fmt: skip
    return RunFiles(_registry(con, names), skipped)


def _payout_file(
    part: pl.DataFrame, msg_id: str, pmt_id: str, *, bank: BankProfile, when: date, now: datetime
) -> tuple[bytes, pl.DataFrame]:
    """A pain.001 of the payouts in `part`, and its items for the registry."""
    transfers = part.select(
        _end_to_end_ids("refund_id", "payout"),
        pl.col("payout_cents").alias("amount_cents"),
        pl.col("customer_name").alias("name"),
        pl.col("customer_iban").alias("iban"),
        pl.lit(None, pl.String).alias("bic"),
        pl.format("Refund {} order {} ref {}", pl.col("merchant_name"),
                  pl.coalesce("order_id", "payment_id"), pl.col("refund_ref")).alias("remittance"),
    )  # fmt: skip
    xml = build_credit_transfers(
        bank.platform, transfers, msg_id=msg_id, payment_info_id=pmt_id, execution_date=when,
        version=bank.pain001_version, created_at=now,
    )  # fmt: skip
    items = transfers.select("end_to_end_id", "amount_cents").with_columns(
        part["refund_id"], part["merchant_id"], pl.lit(pmt_id).alias("payment_info_id")
    )
    return xml, items


def _write_in_files(
    con, home: Home, bank: BankProfile, window: RunWindow, kind: str, rows: pl.DataFrame, *, version: str,
    on: date, build, record, prepared_by: str | None,
) -> list[str]:  # fmt: skip
    """Cut `rows` into files within the bank's limit. Files are independent, so they are built, validated
    and written side by side on every core when there are several big ones; once all are on disk, `record`
    registers them in the ledger in one transaction: a run that stops half-way has recorded nothing, and
    its files (never released unregistered) are written again, with the same names, by the next run."""
    parts = split_frame(rows, bank.max_transactions_per_file)
    first = next_seq(con, window, kind)
    jobs = []
    for n, part in enumerate(parts):
        msg_id = ids.msg_id(version[:8], window.partition_key, first + n)
        jobs.append((build, home, part, msg_id, ids.payment_info_id(msg_id, 1), kind, version, window, first + n,
                     on, prepared_by))  # fmt: skip
    parallel = len(parts) > 1 and rows.height >= PARALLEL_FROM_ROWS
    written = list(zip(_each_in_workers(_build_file, jobs, parallel), parts, strict=True))
    crash_point(f"{kind}_files_written")
    with transaction(con):
        record(written)
    crash_point(f"{kind}_files_recorded")
    return [payment_file.file_name for payment_file, _part in written]


def _build_file(
    build, home: Home, part: pl.DataFrame, msg_id: str, pmt_id: str, kind: str, version: str, window: RunWindow,
    seq: int, on: date, prepared_by: str | None,
) -> PaymentFile:  # fmt: skip
    xml, items = build(part, msg_id, pmt_id)
    return _write(home, xml, msg_id, kind, version, window, seq, on, items, prepared_by)


def _each_in_workers(fn, jobs: list[tuple], parallel: bool) -> Iterator:
    """`fn(*job)` for each job, in order: in worker processes (one per core) when `parallel`, else here."""
    if not parallel:
        yield from (fn(*job) for job in jobs)
        return
    workers = min(len(jobs), len(os.sched_getaffinity(0)))
    # spawn: a fresh interpreter per worker, nothing inherited from DuckDB's or Polars' threads.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = collections.deque(pool.submit(fn, *job) for job in jobs)
        try:
            while futures:
                yield futures.popleft().result()  # and let it go: results do not pile up
        finally:
            for future in futures:
                future.cancel()


def _end_to_end_ids(column: str, purpose: str) -> pl.Expr:
    return (
        pl.col(column)
        .map_batches(lambda ids_: ids.end_to_end_ids(ids_, purpose), return_dtype=pl.String)
        .alias("end_to_end_id")
    )


def _pmt_ids(base: str, sequence_types: pl.Series) -> pl.Series:
    # The direct-debit writer puts each sequence type in its own payment block, named after it.
    names = {seq: ids.with_suffix(base, seq) for seq in sequence_types.unique().to_list()}
    return sequence_types.replace_strict(names, return_dtype=pl.String).alias("payment_info_id")


def _write(
    home: Home, xml: bytes, msg_id: str, kind: str, version: str, window: RunWindow, seq: int, on: date,
    items: pl.DataFrame, prepared_by: str | None,
) -> PaymentFile:  # fmt: skip
    """Validate, then write atomically (temporary name, fsync, rename) into outbox/pending/."""
    validation = validate_document(xml, indented_by_us=True)
    verdict = "valid" if validation.ok else "; ".join(str(e) for e in validation.errors[:20])
    pending = home.outbox / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    name = f"{msg_id}.xml"
    partial = pending / f".{name}.part"
    # Created with its final mode: the bank's file is never readable by others, not even for a moment.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with open(fd, "wb") as fh:
        fh.write(xml[: len(xml) // 2])
        crash_point(f"{kind}_file_half_written")
        fh.write(xml[len(xml) // 2 :])
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(partial, FILE_MODE)  # exactly this mode, whatever the umask
    os.replace(partial, pending / name)
    _sync_folder(pending)
    return PaymentFile(
        file_id=msg_id, file_name=name, kind=kind, message_type=version, window=window, seq=seq,
        sha256=hashlib.sha256(xml).hexdigest(), requested_on=on, validation=verdict, items=items,
        prepared_by=prepared_by,
    )  # fmt: skip


def _registry(con, names: list[str]) -> pl.DataFrame:
    files = list_files(con)
    return files.filter(pl.col("file_name").is_in(names))


def release(con, home: Home, names: list[str] | None, *, by: str, four_eyes: bool = True) -> pl.DataFrame:
    """Release pending files (all when `names` is None): checked against the registry (valid, unchanged
    since written, no problem), posted in the ledger, then moved to outbox/released/ for the bank."""
    pending = home.outbox / "pending"
    released_dir = home.outbox / "released"
    released_dir.mkdir(parents=True, exist_ok=True)
    if names is None:
        names = list_files(con, status="written")["file_name"].to_list()
    names = [Path(n).name for n in names]
    # hashlib lets go of the GIL: a week's 200 payout files (540 MB) are hashed on every core.
    with concurrent.futures.ThreadPoolExecutor() as pool:
        on_disk = dict(zip(names, pool.map(lambda name: _sha256(pending / name), names), strict=True))
    files = release_files(con, names, by=by, sha256_on_disk=on_disk, four_eyes=four_eyes)
    crash_point("release_booked")
    for n, name in enumerate(files["file_name"].to_list() if not files.is_empty() else []):
        if n == 1:
            crash_point("release_half_moved")
        os.replace(pending / name, released_dir / name)
    _sync_folder(released_dir)
    return files


def cancel(con, home: Home, name: str, *, by: str, reason: str) -> dict:
    """Cancel a pending file: the books first (its refunds due again, or its collections free again), then
    the file leaves outbox/pending/ for outbox/cancelled/, where no bank upload looks."""
    name = Path(name).name
    row = cancel_file(con, name, by=by, reason=reason)
    _move(home, name, "cancelled")
    return row


def finish_interrupted_releases(con, home: Home) -> list[str]:
    """Files the ledger says are released (or cancelled) but that still lie in pending/ (interrupted between
    the books and the move) are moved on, so the bank gets exactly what the books say was released."""
    moved = []
    for status in ("released", "cancelled"):
        for name in list_files(con, status=status)["file_name"].to_list():
            if _move(home, name, status):
                moved.append(name)
    return moved


@dataclass(frozen=True)
class OutboxTidied:
    """What `tidy_outbox` found left behind by an interrupted run, and did with it."""

    releases_finished: list[str]  # released or cancelled in the books, moved on from pending/
    partial_files_removed: list[str]  # half-written temporary files of a run that died while writing
    unregistered_set_aside: list[str]  # whole files never registered (a run that died before its books)

    @property
    def anything(self) -> bool:
        return bool(self.releases_finished or self.partial_files_removed or self.unregistered_set_aside)


def tidy_outbox(con, home: Home) -> OutboxTidied:
    """Make the outbox say what the books say, before a run writes or releases files.

    The books are the truth: a run killed half-way leaves its ledger transaction undone, but its files may
    be on disk. Releases booked but not moved are finished; half-written temporary files are removed; a file
    in pending/ that the registry does not know (written, then the run died before recording it) goes to
    outbox/unregistered/, where no release or bank upload looks: its refunds are still due and the next run
    writes them again. Nothing the books know is touched.
    """
    finished = finish_interrupted_releases(con, home)
    pending = home.outbox / "pending"
    partial = sorted(p.name for p in pending.glob(".*.part"))
    for name in partial:
        (pending / name).unlink(missing_ok=True)
    known = set(list_files(con)["file_name"].to_list())
    on_disk = (p.name for p in pending.iterdir() if p.is_file() and not p.name.startswith("."))
    stray = sorted(name for name in on_disk if name not in known)
    if stray:
        aside = home.outbox / "unregistered"
        aside.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        for name in stray:
            os.replace(pending / name, aside / f"{stamp}-{name}")
    return OutboxTidied(finished, partial, stray)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable: without it a power cut may undo the rename after the books commit."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move(home: Home, name: str, folder: str) -> bool:
    src = home.outbox / "pending" / name
    if not src.exists():
        return False
    (home.outbox / folder).mkdir(parents=True, exist_ok=True)
    os.replace(src, home.outbox / folder / name)
    return True


def _sha256(path: Path) -> str | None:
    return file_sha256(path) if path.exists() else None


def run_window(week_start: date, run: str = "main") -> RunWindow:
    """The run of the ISO week starting on `week_start` (a Monday): the main run on Monday collects from
    every merchant and pays; the midweek run on Thursday collects from twice-weekly merchants only."""
    year, week, _ = week_start.isocalendar()
    key = f"{year}-W{week:02d}"
    if run == "midweek":
        return RunWindow(key, "midweek", date.fromordinal(week_start.toordinal() + 3), ("twice_weekly",))
    if run != "main":
        raise ValueError(f"run must be main or midweek, not {run!r}")
    return RunWindow(key, "main", week_start)
