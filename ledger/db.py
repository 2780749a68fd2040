"""Opening the ledger database and bringing its schema up to date."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl

MIGRATIONS_PACKAGE = "ledger.migrations"


def migrations() -> list[tuple[int, str, str]]:
    """The schema migrations shipped with the package, as (version, name, sql), oldest first."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet applied, each in its own transaction; return the versions applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)", [version, name])
        applied.append(version)
    return applied


_open_transactions: dict[int, int] = {}


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run a block as one transaction: everything in it lands together or not at all.

    Nested blocks join the outermost transaction, so a step that posts and changes statuses
    commits both or neither.
    """
    key = id(con)
    depth = _open_transactions.get(key, 0)
    if depth:
        _open_transactions[key] = depth + 1
        try:
            yield con
        finally:
            _open_transactions[key] = depth
        return
    con.execute("BEGIN TRANSACTION")
    _open_transactions[key] = 1
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")
    finally:
        _open_transactions.pop(key, None)


# How long a process waits for another one to finish with the ledger before it gives up.
LEDGER_WAIT_SECONDS = float(os.environ.get("PAYOUTS_LEDGER_WAIT_SECONDS", 3600))
_POLL_SECONDS = 0.2

log = logging.getLogger(__name__)


class LedgerBusy(RuntimeError):
    """Another process held the ledger for longer than this one would wait."""


_held: dict[str, list[int]] = {}  # lock file -> [descriptor, depth] for the locks this process holds
_held_guard = threading.RLock()


@contextmanager
def ledger_lock(path: Path | str, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the ledger at `path` for this process; another process waits its turn.

    DuckDB lets one process at a time open a database file for writing and refuses the second at once.
    The pipeline's runs come from the CLI, the schedules and the sensor, in different processes: rather
    than fail on DuckDB's lock, each waits here (up to `wait_seconds`, then `LedgerBusy` naming the holder).
    An OS file lock, so a process killed with the lock held frees it with its death. Re-entrant within a
    process (its connections share one database instance).
    """
    lock_path = str(Path(path).with_name(Path(path).name + ".lock"))
    with _held_guard:  # one thread of this process takes the lock, the others join it
        held = _held.get(lock_path)
        if held:
            held[1] += 1
        else:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                _acquire(fd, lock_path, LEDGER_WAIT_SECONDS if wait_seconds is None else wait_seconds)
                since = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:200]}) since {since}".encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            _held[lock_path] = [fd, 1]
    try:
        yield
    finally:
        with _held_guard:
            held = _held[lock_path]
            held[1] -= 1
            if held[1] == 0:
                del _held[lock_path]
                os.close(held[0])  # closing the descriptor releases the lock


def _acquire(fd: int, lock_path: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(lock_path)
            if time.monotonic() >= deadline:
                raise LedgerBusy(
                    f"the ledger is in use by {holder}; gave up after waiting {wait_seconds:.0f} s"
                ) from None
            if not said:
                log.warning("waiting for the ledger: in use by %s", holder)
                said = True
            time.sleep(_POLL_SECONDS)


def _holder(lock_path: str) -> str:
    try:
        return Path(lock_path).read_text(encoding="utf-8", errors="replace").strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def open_ledger(path: Path | str, wait_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open (creating if needed) the ledger at `path`, migrated to the current schema.

    The process holds the ledger while the connection is open (`ledger_lock`): other processes wait.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with ledger_lock(path, wait_seconds):
        con = duckdb.connect(str(path), config={"checkpoint_threshold": "1GB"})
        try:
            # DuckDB draws a progress bar on stdout for long queries when it thinks someone is watching (in a
            # spawned worker, say): the pipeline's output is logs and JSON, never a bar.
            con.execute("SET enable_progress_bar = false")
            migrate(con)
            yield con
        finally:
            con.close()


# DuckDB's row group size. DuckDB reads an Arrow table batch by batch, one batch per thread: a frame of a
# million rows in one chunk is scanned and inserted on one core. Cut into batches of a row group each, it
# is inserted on every core (measured: 1M bank lines 5.9 s in one chunk, 2.6 s in row groups).
ROW_GROUP_ROWS = 122_880


def in_row_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame in chunks of one DuckDB row group each (the last shorter), so DuckDB works on it in parallel."""
    if frame.height <= ROW_GROUP_ROWS:
        return frame
    whole = frame.rechunk()
    return pl.concat(
        [whole.slice(start, ROW_GROUP_ROWS) for start in range(0, whole.height, ROW_GROUP_ROWS)], rechunk=False
    )


def run_with_frames(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: list | None = None,
    *,
    string_views: bool = False,
    **frames: pl.DataFrame,
) -> pl.DataFrame:
    """Run `sql` with Polars frames visible as tables under the given names (bulk, never row by row).

    The result is fetched before the frames are released: DuckDB reads them lazily. By default their strings
    are copied into new Arrow arrays on the way (250 MB for the identity columns of a million bank lines);
    `string_views` hands them over as Arrow string views, which DuckDB reads where they lie. Only for queries
    that neither filter the frames nor probe them in a join: DuckDB pushes such filters down to pyarrow,
    which cannot compare string views.
    """
    for name, frame in frames.items():
        chunks = in_row_groups(frame)
        con.register(name, chunks.to_arrow(compat_level=pl.CompatLevel.newest()) if string_views else chunks)
    try:
        return con.execute(sql, params or []).pl()
    finally:
        for name in frames:
            con.unregister(name)
