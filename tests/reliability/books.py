"""What must hold after anything at all happened to a run, read from the books and the outbox of one
installation; and installations made for the tests that try to break it."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ledger.db import open_ledger
from ledger.postings import ledger_total, unbalanced_transfers
from pipelines.settings import Home

PAYOUTS = str(Path(sys.executable).parent / "payouts")
# Where each status of the file registry keeps its file.
FOLDER_OF_STATUS = {"written": "pending", "released": "released", "acknowledged": "released", "cancelled": "cancelled"}


@dataclass(frozen=True)
class Books:
    """The outcome of a run as money and files, without names or times that may differ between two runs."""

    balances: dict[str, int]  # account -> balance in cents (zero balances left out)
    paid: dict[str, int]  # refund_id -> cents, in live payout files
    collected: dict[str, int]  # collection_id -> cents, in live collection files
    statuses: dict[str, str]  # refund_id -> status
    bank_lines: int  # lines read from bank files and recorded
    paid_twice: int  # refunds or collections open in two live files
    total: int  # the sum of every posting
    unbalanced: int  # transfers whose postings do not sum to zero
    disk_problems: tuple[str, ...]  # where the outbox and the registry disagree

    def money_lost(self, expected: Books) -> int:
        """Cents by which these balances differ from `expected`'s, summed over accounts."""
        accounts = self.balances.keys() | expected.balances.keys()
        return sum(abs(self.balances.get(a, 0) - expected.balances.get(a, 0)) for a in accounts)

    def assert_sound(self) -> None:
        """What holds after any crash, before any repair: the books are whole and nothing is paid twice."""
        assert self.paid_twice == 0, "a refund or collection is in two live files"
        assert self.total == 0, f"the ledger sums to {self.total}, not zero"
        assert self.unbalanced == 0, f"{self.unbalanced} transfers do not balance"


def read_books(home: Home) -> Books:
    """The books and the outbox of `home` as they stand."""
    with open_ledger(home.ledger) as con:
        balances = dict(
            con.execute(
                "SELECT account, SUM(amount_cents) FROM postings GROUP BY account HAVING SUM(amount_cents) <> 0"
            ).fetchall()
        )
        live = """SELECT i.* FROM payment_file_items i JOIN payment_files f USING (file_id)
                  WHERE f.status IN ('written', 'released', 'acknowledged')
                    AND COALESCE(i.outcome, 'open') NOT IN ('returned', 'rejected')"""
        paid = dict(con.execute(f"SELECT refund_id, amount_cents FROM ({live}) WHERE refund_id IS NOT NULL").fetchall())
        collected = dict(
            con.execute(f"SELECT collection_id, amount_cents FROM ({live}) WHERE collection_id IS NOT NULL").fetchall()
        )
        twice = con.execute(
            f"SELECT COUNT(*) FROM (SELECT COALESCE(refund_id, collection_id) FROM ({live}) GROUP BY 1 "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        statuses = dict(con.execute("SELECT refund_id, status FROM refunds").fetchall())
        bank_lines = con.execute("SELECT COUNT(*) FROM bank_lines").fetchone()[0]
        registry = con.execute("SELECT file_name, status, sha256 FROM payment_files").fetchall()
        total = ledger_total(con)
        unbalanced = unbalanced_transfers(con).height
    return Books(
        balances, paid, collected, statuses, bank_lines, twice, total, unbalanced, outbox_problems(home, registry)
    )


def outbox_problems(home: Home, registry: list[tuple[str, str, str]]) -> tuple[str, ...]:
    """Every file of the registry lies in its status's folder, unchanged; no other file lies there."""
    problems = []
    expected: dict[str, set[str]] = {folder: set() for folder in set(FOLDER_OF_STATUS.values())}
    for name, status, sha in registry:
        folder = FOLDER_OF_STATUS.get(status)
        if folder is None:
            continue
        expected[folder].add(name)
        path = home.outbox / folder / name
        if not path.exists():
            problems.append(f"{name} ({status}) is not in outbox/{folder}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            problems.append(f"{name} in outbox/{folder} is not the file registered")
    for folder, names in expected.items():
        for path in (home.outbox / folder).iterdir():
            if path.name not in names:
                problems.append(f"outbox/{folder}/{path.name} is not in the registry with that status")
    return tuple(problems)


def cli(home: Home, *args: str, crash_at: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`payouts ARGS` in its own process group, as a user or a scheduler starts it; optionally to die at a
    named crash point."""
    env = _env(home, crash_at)
    return subprocess.run(
        [PAYOUTS, *args], env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def start_cli(home: Home, *args: str) -> subprocess.Popen:
    """`payouts ARGS` started in its own process group, not waited for."""
    return subprocess.Popen(
        [PAYOUTS, *args],
        env=_env(home, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen) -> bool:
    """SIGKILL the process's whole group (the CLI and any worker it started); True if it was still running."""
    running = process.poll() is None
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    return running


def _env(home: Home, crash_at: str | None) -> dict[str, str]:
    env = {**os.environ, "PAYOUTS_HOME": str(home.root)}
    env.pop("DAGSTER_HOME", None)
    env.pop("PAYOUTS_CRASH_AT", None)
    env["PAYOUTS_CRASH_MARK"] = str(crash_mark(home))
    if crash_at:
        env["PAYOUTS_CRASH_AT"] = crash_at
    return env


def crash_mark(home: Home) -> Path:
    """The file where a crash point names itself before it kills the run (next to the installation)."""
    return home.root.with_name(home.root.name + ".crashed-at")


def crashed_at(home: Home, done: subprocess.CompletedProcess) -> str | None:
    """The crash point a run died at: killed by SIGKILL, having named the point; else None."""
    mark = crash_mark(home)
    return mark.read_text(encoding="utf-8") if done.returncode == -9 and mark.exists() else None


def copy_home(source: Home, target: Path) -> Home:
    """A private copy of an installation (ledger, Dagster instance, folders)."""
    shutil.copytree(source.root, target, symlinks=True)
    return Home(target)


@contextmanager
def in_process(home: Home) -> Iterator[Home]:
    """Run jobs of `home` from this process (`pipelines.launch.run_job`), restoring the environment after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAYOUTS_HOME", str(home.root))
        patch.setenv("DAGSTER_HOME", str(home.dagster))
        yield home


def runs_in_progress(home: Home) -> int:
    """Runs the installation's Dagster instance still counts as in progress."""
    with in_process(home), dg.DagsterInstance.get() as instance:
        return len(
            instance.get_runs(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
            )
        )
