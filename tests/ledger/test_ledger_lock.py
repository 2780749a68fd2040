"""One process at a time holds the ledger: another waits its turn, or gives up naming the holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ledger.db import LedgerBusy, ledger_lock, open_ledger

HOLD = textwrap.dedent(
    """
    import sys, time
    from ledger.db import open_ledger
    with open_ledger(sys.argv[1]) as con:
        con.execute("CREATE TABLE IF NOT EXISTS held (n INTEGER)")
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def hold_in_another_process(path: Path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_waits_for_the_first_then_opens(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    holder = hold_in_another_process(path, 1.5)
    started = time.monotonic()
    with open_ledger(path, wait_seconds=60) as con:
        waited = time.monotonic() - started
        assert con.execute("SELECT COUNT(*) FROM held").fetchone() == (0,)
    assert holder.wait(timeout=30) == 0
    assert waited >= 0.5  # it waited instead of failing on DuckDB's lock


def test_giving_up_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    holder = hold_in_another_process(path, 5)
    try:
        busy = rf"in use by pid {holder.pid} \(.*-c.*\) since .* UTC; gave up after"
        with pytest.raises(LedgerBusy, match=busy), open_ledger(path, wait_seconds=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_frees_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    holder = hold_in_another_process(path, 600)
    holder.kill()  # SIGKILL: no chance to let go
    holder.wait()
    with open_ledger(path, wait_seconds=5) as con:
        assert con.execute("SELECT COUNT(*) FROM held").fetchone() == (0,)


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    with open_ledger(path, wait_seconds=0) as outer, open_ledger(path, wait_seconds=0) as inner:
        outer.execute("CREATE TABLE t (n INTEGER)")
        assert inner.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
        with ledger_lock(path, wait_seconds=0):
            pass
    other = hold_in_another_process(path, 0)  # let go when the last user is done
    assert other.wait(timeout=30) == 0
