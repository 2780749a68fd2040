"""The benchmark: a busy week at scale, through the same functions the assets run, timed stage by stage.

`run_bench(n)` generates a realistic shop export of `n` refunds (one per order) across `n // 100` merchants
in a fresh installation, then takes it through intake, the nightly step, the weekly collection and payout
files (written, XSD-validated, registered, released and posted), and the reconciliation of a camt.054
notifying one line per payout and of a camt.053 statement repeating them. Each step runs as Dagster runs
it: in a fresh process of its own that opens the ledger and closes it, so its time includes DuckDB's
checkpoint on closing and its memory is its own. Each stage reports wall seconds, rows, rows per second
and the peak resident memory of its process and that process's workers.

In the same run, baselines measure the obvious alternatives on the same data, side by side: sepaxml
building and validating (with its own xmlschema validation) the payouts in files small enough for it,
against our streaming writer and lxml validation; and pycamt, a camt.053 reader from PyPI, against our
streaming reader. Baselines run in a separate process each, so their memory is their own.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
import polars as pl

from assets.home import Home
from assets.intake import take_in_shop_file
from assets.outbox import release, run_window, write_collection_files, write_payout_files
from assets.reconciliation import book_bank_file, read_bank_file_and_hash
from ledger.db import open_ledger
from ledger.intake_files import discover
from ledger.postings import ledger_total, reused_transfer_ids, unbalanced_transfers
from ledger.reconciliation import ReturnPolicy, repeated_lines, unaccounted_lines
from ledger.refunds import make_refunds_due
from pipelines.resources import BankProfileResource
from sepa.bank_files import read_bank_file
from sepa.bank_messages import ENTRY_COLUMNS, write_camt053, write_camt054

BENCH_WEEK = date(2026, 3, 2)  # a Monday: the week is fixed so that runs compare (dates, holidays)
PREPARED_BY = "bench (prepares)"
RELEASED_BY = "bench (releases)"
SEPAXML_SAMPLE = 20_000  # payouts given to sepaxml: its validation takes ~0.3 ms per transaction
SEPAXML_FILE = 5_000  # transactions per file for sepaxml: its xmlschema refuses documents over 1M elements
# Statement lines given to pycamt: it searches the whole statement for the account once per entry, so its
# time grows with the square of the lines (1.5 s for 1,000, minutes for 10,000).
PYCAMT_SAMPLE = 2_000


@dataclass
class Stage:
    """One timed stage: wall seconds, rows handled, peak resident memory (process plus its workers)."""

    name: str
    seconds: float
    rows: int
    peak_mb: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BenchResult:
    """What `payouts bench --json` prints as its last line."""

    refunds: int
    merchants: int
    intake_seconds: float
    weekly_seconds: float
    reconcile_seconds: float
    statement_seconds: float
    peak_mb: float
    stages: list[dict[str, Any]]
    baselines: dict[str, Any]
    written: dict[str, Any]
    checks: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------


def _rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _children() -> list[str]:
    pids: list[str] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.extend((task / "children").read_text().split())
        except OSError:
            continue
    return pids


class MemorySampler:
    """Samples the resident memory of this process and its child processes (file-writing workers) every
    few milliseconds in a thread; `peak()` is the largest sum seen since the last `reset()`."""

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        total = _rss_bytes() + sum(_rss_bytes(pid) for pid in _children())
        self._peak = max(self._peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def reset(self) -> None:
        self._peak = 0
        self._sample()

    def peak_mb(self) -> float:
        self._sample()
        return round(self._peak / 1024**2, 1)


# ---------------------------------------------------------------------------------------------------------
# The week's data
# ---------------------------------------------------------------------------------------------------------

_LOCALES = ["de_DE", "fr_FR", "nl_NL", "it_IT", "es_ES", "de_AT", "fr_BE"]
_COUNTRIES = ["DE", "FR", "NL", "IT", "ES", "AT", "BE"]


def generate_week(folder: Path, refunds: int, *, monday: date = BENCH_WEEK, seed: int = 1) -> dict[str, int]:
    """Write merchants.csv, orders.csv and refunds.csv for a week with `refunds` refunds, one per order,
    across `max(10, refunds // 100)` merchants: 70 % own-account merchants collected by direct debit
    (paid out on release; every 20th collected per refund), 30 % integrated with a balance. Order sizes
    follow a log-normal distribution, merchant sizes a Zipf-like one; customers' names come from Faker
    in seven locales (umlauts, accents, apostrophes) and their IBANs are valid, from schwifty's registry.
    All refunds fall due by `monday`. Returns the rows per file."""
    from faker import Faker

    from pipelines.demo_data import valid_iban

    rng = Random(seed)
    np_rng = np.random.default_rng(seed)
    n_merchants = max(10, refunds // 100)
    folder.mkdir(parents=True, exist_ok=True)

    ids = [f"M{i:05d}" for i in range(n_merchants)]
    own = [i % 10 < 7 for i in range(n_merchants)]
    companies = Faker("de_DE")
    companies.seed_instance(seed)
    merchants = pl.DataFrame(
        {
            "merchant_id": ids,
            "name": [companies.company() for _ in ids],
            "iban": [str(valid_iban(rng, "DE")) for _ in ids],
            "funding": ["own_account" if o else "integrated" for o in own],
            "mandate_id": [f"MNDT-{m}" if o else None for m, o in zip(ids, own, strict=True)],
            "mandate_signed_on": ["2024-01-15" if o else None for o in own],
            "waiting_days": [7] * n_merchants,
            "refund_window_days": [90] * n_merchants,
            "collection": ["per_refund" if i % 20 == 0 else "weekly" for i in range(n_merchants)],
            "balance_cents": [0 if o else 10**10 for o in own],
            "pay_on_release": ["true" if o else "false" for o in own],
        }
    )
    merchants.write_csv(folder / "merchants.csv")

    # Customers: a pool of names and of accounts, drawn from for each order.
    names, accounts = [], []
    for locale, country in zip(_LOCALES, _COUNTRIES, strict=True):
        fake = Faker(locale)
        fake.seed_instance(seed)
        names.extend(fake.name() for _ in range(300))
        accounts.extend(str(valid_iban(rng, country)) for _ in range(max(50, min(refunds, 100_000) // 14)))
    weights = 1.0 / np.arange(1, n_merchants + 1) ** 0.7
    merchant_of = np_rng.choice(n_merchants, size=refunds, p=weights / weights.sum())
    amounts = np.clip(np_rng.lognormal(np.log(4500), 0.9, size=refunds), 500, 250_000).astype(np.int64)
    partial = np_rng.random(refunds) < 0.3
    refund_amounts = np.where(partial, np.maximum(amounts // 2, 1), amounts)
    requested_ago = np_rng.integers(8, 14, size=refunds)
    ordered_before = np_rng.integers(1, 30, size=refunds)
    requested_on = pl.Series(np.datetime64(monday) - requested_ago.astype("timedelta64[D]"))
    ordered_on = pl.Series(np.datetime64(monday) - (requested_ago + ordered_before).astype("timedelta64[D]"))
    order_ids = pl.Series([f"O{i:08d}" for i in range(refunds)])
    merchant_ids = pl.Series(ids).gather(merchant_of)
    orders = pl.DataFrame(
        {
            "order_id": order_ids,
            "merchant_id": merchant_ids,
            "customer_name": pl.Series(names).gather(np_rng.integers(0, len(names), size=refunds)),
            "customer_iban": pl.Series(accounts).gather(np_rng.integers(0, len(accounts), size=refunds)),
            "amount_cents": amounts,
            "paid_cents": amounts,
            "ordered_on": ordered_on.cast(pl.Date),
        }
    )
    orders.write_csv(folder / "orders.csv")
    refund_rows = pl.DataFrame(
        {
            "refund_ref": pl.Series([f"R{i:08d}" for i in range(refunds)]),
            "merchant_id": merchant_ids,
            "order_id": order_ids,
            "payment_id": pl.Series([None] * refunds, dtype=pl.String),
            "amount_cents": refund_amounts,
            "requested_on": requested_on.cast(pl.Date),
            "reason": pl.Series(["returned goods", "cancelled order", "damaged in transit"]).gather(
                np_rng.integers(0, 3, size=refunds)
            ),
        }
    )
    refund_rows.write_csv(folder / "refunds.csv")
    return {"merchants": merchants.height, "orders": orders.height, "refunds": refund_rows.height}


def payout_entries(con, booking_date: date) -> pl.DataFrame:
    """The bank's booking of every released payout: one debit entry per credit transfer, as a camt.054
    (or camt.053) lists them when the bank books each transfer on its own."""
    frame = con.execute(
        "SELECT i.end_to_end_id, i.payment_info_id, i.file_id AS msg_id, i.amount_cents, "
        "r.customer_name AS counterparty_name, r.customer_iban AS counterparty_iban, r.refund_ref AS remittance "
        "FROM payment_file_items i JOIN payment_files f USING (file_id) JOIN refunds r USING (refund_id) "
        "WHERE f.kind = 'payout' AND f.status = 'released' ORDER BY f.file_id, i.end_to_end_id"
    ).pl()
    return frame.with_row_index("n").select(
        pl.format("BENCH{}", pl.col("n").cast(pl.String).str.zfill(9)).alias("entry_ref"),
        pl.lit(booking_date).alias("booking_date"),
        pl.lit(booking_date).alias("value_date"),
        pl.lit("DBIT").alias("direction"),
        "amount_cents",
        pl.lit("PMNT/ICDT/ESCT").alias("bank_tx_code"),
        "end_to_end_id",
        "payment_info_id",
        "msg_id",
        "counterparty_name",
        "counterparty_iban",
        "remittance",
    )


# ---------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------


class _Stages:
    """The stages of one step, timed in the step's own process."""

    def __init__(self, sampler: MemorySampler) -> None:
        self.sampler = sampler
        self.done: list[Stage] = []

    @contextmanager
    def stage(self, name: str, rows: int = 0) -> Iterator[dict[str, int]]:
        """Time a stage; the body may set `counter["rows"]` when it learns how many rows it handled."""
        counter = {"rows": rows}
        self.sampler.reset()
        start = time.perf_counter()
        yield counter
        seconds = time.perf_counter() - start
        self.done.append(Stage(name, round(seconds, 3), counter["rows"], self.sampler.peak_mb()))


# Imported once by the fork server rather than once per step (about 0.9 s each). Only modules that start
# no thread on import: Polars, NumPy and DuckDB do, and a fork must not copy a process with threads.
_PRELOADED = ["dagster", "sqlalchemy", "lxml.etree", "schwifty", "holidays"]


def fresh_processes() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that has imported only thread-free modules: as fresh as spawned ones."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOADED)
    return context


class _Steps:
    """The week's steps, each run as Dagster runs a step: in a fresh process of its own, which opens the
    ledger and closes it. Their stages' time and memory are that process's and its workers'."""

    def __init__(self, report: Callable[[Stage], None]) -> None:
        self.report = report
        self.done: list[Stage] = []

    def run(self, step: Callable[..., Any], *args: Any) -> Any:
        """`step(stages, *args)` in its own process; its stages are reported and kept, its result returned."""
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=fresh_processes()) as pool:
            done, result = pool.submit(_own_process, step, *args).result()
        for stage in done:
            self.done.append(stage)
            self.report(stage)
        return result

    def seconds(self, *names: str) -> float:
        return round(sum(s.seconds for s in self.done if s.name in names), 3)


def _own_process(step: Callable[..., Any], *args: Any) -> tuple[list[Stage], Any]:
    with MemorySampler() as sampler:
        stages = _Stages(sampler)
        result = step(stages, *args)
    return stages.done, result


# The steps, each as its asset or command runs it, each timed in its own process (see `_Steps`).


def _take_in(stages: _Stages, home: Home, path: Path) -> None:
    name = "intake" if path.name.startswith("refunds") else f"intake_{path.stem}"
    with stages.stage(name) as counter, open_ledger(home.ledger) as con:
        result = take_in_shop_file(con, home, path)
        if isinstance(result, str):
            raise RuntimeError(f"bench data refused: {result}")
        counter["rows"] = result.rows_total


def _nightly(stages: _Stages, home: Home, day: date) -> None:
    with stages.stage("nightly") as counter, open_ledger(home.ledger) as con:
        counter["rows"] = make_refunds_due(con, day)["due"]


def _write_files(stages: _Stages, kind: str, home: Home, bank, window, now: datetime) -> pl.DataFrame:
    write = write_collection_files if kind == "collection" else write_payout_files
    with stages.stage(f"{kind}_files") as counter, open_ledger(home.ledger) as con:
        written = write(con, home, bank, window, now, prepared_by=PREPARED_BY).written
        counter["rows"] = int(written["n_tx"].sum() or 0)
    return written


def _release(stages: _Stages, kind: str, home: Home, names: list[str]) -> None:
    with stages.stage(f"{kind}_release") as counter, open_ledger(home.ledger) as con:
        released = release(con, home, names, by=RELEASED_BY)
        counter["rows"] = int(released["n_tx"].sum() or 0)


def _reconcile(stages: _Stages, label: str, home: Home, path: Path, lines: int, policy: ReturnPolicy) -> None:
    """Read and book a bank file in one process, as the reconciliation asset does."""
    with stages.stage(f"{label}_read", lines):
        bank_file, sha256 = read_bank_file_and_hash(path)
    with stages.stage(f"{label}_book", lines), open_ledger(home.ledger) as con:
        book_bank_file(con, path.name, sha256, bank_file, policy)


def run_bench(
    refunds: int,
    work: Path,
    *,
    baselines: bool = True,
    report: Callable[[Stage], None] = lambda _stage: None,
    note: Callable[[str], None] = lambda _text: None,
) -> BenchResult:
    """Generate a week of `refunds` refunds in a fresh installation under `work` and run it end to end,
    step by step, each step in a process of its own; then the baselines. Returns the figures and the
    end-of-run checks."""
    if refunds < 10:
        raise ValueError("refunds must be at least 10")
    home = Home(work).prepare()
    bank = BankProfileResource().profile()
    monday = BENCH_WEEK
    window = run_window(monday, "main")
    now = datetime.combine(monday, datetime.min.time(), tzinfo=UTC)

    started = time.perf_counter()
    counts = generate_week(home.shop_inbox, refunds, monday=monday)
    note(f"generated {counts['refunds']:,} refunds across {counts['merchants']:,} merchants "
         f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    os.sync()  # the shop's files are on disk before the intake reads them, as uploaded files are

    steps = _Steps(report)
    for path in discover([home.shop_inbox]):
        steps.run(_take_in, home, path)
    steps.run(_nightly, home, monday)
    collections = steps.run(_write_files, "collection", home, bank, window, now)
    steps.run(_release, "collection", home, collections["file_name"].to_list())
    payouts = steps.run(_write_files, "payout", home, bank, window, now)
    steps.run(_release, "payout", home, payouts["file_name"].to_list())

    booking_date = payouts["requested_on"][0] if payouts.height else monday
    with open_ledger(home.ledger) as con:
        entries = payout_entries(con, booking_date)
    started = time.perf_counter()
    notification, statement, sample = _bank_files(home, bank.platform.iban, entries, now, booking_date)
    note(f"bank files of {entries.height:,} lines written in {time.perf_counter() - started:.1f} s")
    # Written files reach the disk in the background: 3 GB of them at 1M would slow down the steps that
    # follow (their commits wait behind it). A bank's file arrives long before it is read; so here too.
    os.sync()

    policy = ReturnPolicy(charges_to=bank.return_charges_to, represent_once=bank.represent_am04_once)
    for label, path in (("reconcile", notification), ("statement", statement)):
        steps.run(_reconcile, label, home, path, entries.height, policy)

    with open_ledger(home.ledger) as con:
        checks = _checks(con, refunds)
    sepaxml_input = (
        entries.head(min(SEPAXML_SAMPLE, entries.height)).select(
            "end_to_end_id", "amount_cents", pl.col("counterparty_name").alias("name"),
            pl.col("counterparty_iban").alias("iban"), pl.lit(None, pl.String).alias("bic"),
            pl.col("remittance"),
        )
    )  # fmt: skip
    written = {
        "collection_files": collections.height,
        "collections": int(collections["n_tx"].sum() or 0),
        "payout_files": payouts.height,
        "payouts": int(payouts["n_tx"].sum() or 0),
        "outbox_mb": round(sum(p.stat().st_size for p in (home.outbox / "released").iterdir()) / 1024**2, 1),
        "camt054_mb": round(notification.stat().st_size / 1024**2, 1),
        "camt053_mb": round(statement.stat().st_size / 1024**2, 1),
        "ledger_mb": round(home.ledger.stat().st_size / 1024**2, 1),
    }
    done = {s.name: s for s in steps.done}
    result = BenchResult(
        refunds=refunds,
        merchants=counts["merchants"],
        intake_seconds=done["intake"].seconds,
        weekly_seconds=steps.seconds("collection_files", "collection_release", "payout_files", "payout_release"),
        reconcile_seconds=steps.seconds("reconcile_read", "reconcile_book"),
        statement_seconds=steps.seconds("statement_read", "statement_book"),
        peak_mb=max(s.peak_mb for s in steps.done),
        stages=[asdict(s) | {"rows_per_second": round(s.rows_per_second)} for s in steps.done],
        baselines={},
        written=written,
        checks=checks,
        machine=machine(),
    )
    if baselines:
        result.baselines = run_baselines(sepaxml_input, sample, bank, now, booking_date, note=note)
    return result


def _bank_files(home: Home, iban: str, entries: pl.DataFrame, now: datetime, day: date) -> tuple[Path, Path, Path]:
    """A camt.054 notifying every payout's booking, the day's camt.053 statement listing them again, and a
    statement of the first lines only, small enough for a reader that builds the whole tree."""
    folder = home.root / "bench-bank"
    folder.mkdir(parents=True, exist_ok=True)
    full = entries.with_columns(
        [pl.lit(None, t).alias(c) for c, t in ENTRY_COLUMNS.items() if c not in entries.columns]
    ).select(list(ENTRY_COLUMNS))
    notification = folder / "camt054-payouts.xml"
    write_camt054(notification, msg_id="BENCH-NTF-1", created_at=now, account_iban=iban, entries=full)
    paths = []
    for name, rows in (("camt053-statement.xml", full), ("camt053-sample.xml", full.head(PYCAMT_SAMPLE))):
        statement = folder / name
        write_camt053(
            statement, msg_id="BENCH-STM-1", created_at=now, statement_id="BENCH-STM-1", account_iban=iban,
            opening_balance_cents=int(rows["amount_cents"].sum()), entries=rows, booking_date=day,
        )  # fmt: skip
        paths.append(statement)
    return notification, paths[0], paths[1]


def _checks(con, refunds: int) -> dict[str, Any]:
    """What must hold after the week, whatever the speed: every refund paid exactly once, nothing left
    unmatched, the ledger balanced."""
    paid = con.execute(
        "SELECT COUNT(*), COUNT(DISTINCT refund_id) FROM payment_file_items i JOIN payment_files f USING (file_id) "
        "WHERE f.kind = 'payout' AND f.status = 'released'"
    ).fetchone()
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM refunds GROUP BY status").fetchall())
    return {
        "refunds_recorded": sum(statuses.values()),
        "refunds_by_status": statuses,
        "payouts_released": paid[0],
        "refunds_paid_twice": paid[0] - paid[1],
        "open_exceptions": con.execute("SELECT COUNT(*) FROM exceptions WHERE status = 'open'").fetchone()[0],
        "unaccounted_lines": unaccounted_lines(con).height,
        "unbalanced_transfers": unbalanced_transfers(con).height,
        "reused_transfer_ids": reused_transfer_ids(con).height,
        "repeated_lines": repeated_lines(con).height,
        "ledger_total_cents": ledger_total(con),
        "all_completed": statuses.get("completed", 0) == refunds,
    }


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "memory_gb": round(memory / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "processor": platform.processor() or platform.machine(),
    }


# ---------------------------------------------------------------------------------------------------------
# Baselines, each in a process of its own
# ---------------------------------------------------------------------------------------------------------


def run_baselines(
    transfers: pl.DataFrame, statement: Path, bank, now: datetime, day: date, *, note: Callable[[str], None]
) -> dict[str, Any]:
    """sepaxml against our writer on the same payouts; pycamt against our reader on the same statement."""
    context = fresh_processes()
    results: dict[str, Any] = {}
    for name, job, args in (
        ("sepaxml", _sepaxml_baseline, (transfers, bank, now, day)),
        ("pycamt", _pycamt_baseline, (statement,)),
    ):
        note(f"baseline {name} ...")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                results[name] = pool.submit(job, *args).result()
            except Exception as exc:  # a baseline that cannot run is reported, not fatal
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def _timed(sampler: MemorySampler, job: Callable[[], int]) -> dict[str, Any]:
    sampler.reset()
    start = time.perf_counter()
    rows = job()
    return {"seconds": round(time.perf_counter() - start, 3), "rows": rows, "peak_mb": sampler.peak_mb()}


def _compare(ours: dict[str, Any], theirs: dict[str, Any], library: str) -> dict[str, Any]:
    return {
        "library": library,
        "rows": ours["rows"],
        "ours": ours,
        "theirs": theirs,
        "speedup": round(theirs["seconds"] / ours["seconds"], 1) if ours["seconds"] else None,
    }


def _sepaxml_baseline(transfers: pl.DataFrame, bank, now: datetime, day: date) -> dict[str, Any]:
    """Build and validate the same payouts in files of SEPAXML_FILE: our writer + lxml's XMLSchema, then
    sepaxml's ElementTree build with its own xmlschema validation."""
    from importlib.metadata import version

    from sepa.files import split_frame
    from sepa.pain001 import build_credit_transfers, reference_credit_transfers
    from sepa.xsd import validate_document

    parts = split_frame(transfers, SEPAXML_FILE)
    common = {"execution_date": day, "version": bank.pain001_version, "created_at": now}

    def ours() -> int:
        for i, part in enumerate(parts):
            xml = build_credit_transfers(bank.platform, part, msg_id=f"BENCH-{i}", payment_info_id=f"BENCH-{i}-1",
                                         **common)  # fmt: skip
            if not validate_document(xml, indented_by_us=True).ok:
                raise RuntimeError(f"our file {i} is not valid")
        return transfers.height

    def theirs() -> int:
        for i, part in enumerate(parts):
            reference_credit_transfers(bank.platform, part, msg_id=f"BENCH-{i}", payment_info_id=f"BENCH-{i}-1",
                                       validate=True, **common)  # fmt: skip
        return transfers.height

    with MemorySampler() as sampler:
        mine = _timed(sampler, ours)
        other = _timed(sampler, theirs)
    result = _compare(mine, other, f"sepaxml {version('sepaxml')} (export(validate=True), xmlschema)")
    return result | {"files": len(parts), "per_file": SEPAXML_FILE}


def _pycamt_baseline(statement: Path) -> dict[str, Any]:
    """Read the same camt.053 with our streaming reader, then with pycamt (whole tree, XPath)."""
    from importlib.metadata import version

    from pycamt.parser import Camt053Parser

    def ours() -> int:
        return read_bank_file(statement).rows.height

    def theirs() -> int:
        return len(Camt053Parser.from_file(statement).get_transactions())

    with MemorySampler() as sampler:
        mine = _timed(sampler, ours)
        other = _timed(sampler, theirs)
    result = _compare(mine, other, f"pycamt {version('pycamt')} (Camt053Parser.get_transactions)")
    return result | {"same_count": mine["rows"] == other["rows"]}
