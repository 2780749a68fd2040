"""Opening the ledger database and bringing its schema up to date."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def open_ledger(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open (creating if needed) the ledger at `path`, migrated to the current schema."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), config={"checkpoint_threshold": "1GB"})
    try:
        migrate(con)
        yield con
    finally:
        con.close()


def run_with_frames(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None, **frames: pl.DataFrame
) -> pl.DataFrame:
    """Run `sql` with Polars frames visible as tables under the given names (bulk, never row by row).

    The result is fetched before the frames are released: DuckDB reads them lazily.
    """
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        return con.execute(sql, params or []).pl()
    finally:
        for name in frames:
            con.unregister(name)
