"""Fixtures for the ledger tests: a fresh ledger file per test and a shop that records exports into it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ledger.db import open_ledger
from tests.ledger.shop import Shop


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new, migrated ledger in the test's temporary folder."""
    with open_ledger(tmp_path / "ledger.duckdb") as connection:
        yield connection


@pytest.fixture
def shop(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> Shop:
    """Writes shop exports into tmp_path/shop and records them into `con`."""
    return Shop(tmp_path / "shop", con)
