"""One shop's week, made once for every test that tries to break it."""

from __future__ import annotations

import pytest

from tests.reliability.week import Installations


@pytest.fixture(scope="session")
def week(tmp_path_factory: pytest.TempPathFactory) -> Installations:
    """The week at every stage, with the clean run's books."""
    return Installations(tmp_path_factory.mktemp("week"))
