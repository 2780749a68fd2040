"""Resources: the DuckDB ledger and the installation's folders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ledger.db import open_ledger
from pipelines.settings import Home


class LedgerResource(dg.ConfigurableResource):
    """The ledger's DuckDB file. One writer at a time: runs that write it are queued, not raced."""

    database: str

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An open, migrated connection for the length of a step."""
        with open_ledger(self.database) as con:
            yield con


class HomeResource(dg.ConfigurableResource):
    """The installation's data directory: inboxes, outboxes, archive and reports."""

    root: str

    @property
    def home(self) -> Home:
        return Home(Path(self.root)).prepare()
