"""Fixtures for the ledger tests: a fresh in-memory ledger per test, a shop that records exports into it,
and ledgers prepared once per session and copied into memory for each test that starts from them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from tests.ledger.shop import Shop, Templates, memory_ledger


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A new, migrated, empty ledger."""
    connection = memory_ledger()
    yield connection
    connection.close()


@pytest.fixture
def shop(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> Shop:
    """Writes shop exports into tmp_path/shop and records them into `con`."""
    return Shop(tmp_path / "shop", con)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    """Prepared ledgers shared by the whole session (each test works on its own in-memory copy)."""
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def shop_from(tmp_path: Path, templates: Templates) -> Iterator[Callable[[str, Callable[[Shop], None]], Shop]]:
    """`shop_from(name, build)`: a Shop on a private copy of the ledger `build` made (once per session)."""
    made: list[Shop] = []

    def make(name: str, build: Callable[[Shop], None]) -> Shop:
        made.append(templates.shop(name, build, tmp_path / "shop"))
        return made[-1]

    yield make
    for shop in made:
        shop.con.close()
