"""Runs at the same time take turns on the ledger instead of failing on DuckDB's lock; the same bank file
uploaded twice at once is booked once; a Dagster instance that lost its memory books nothing twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipelines.resources import HomeResource
from pipelines.sensors import bank_inbox_sensor
from tests.reliability.books import Books, in_process, read_books, start_cli
from tests.reliability.figures import tally
from tests.reliability.week import Installations, reconcile, weekly

pytestmark = pytest.mark.slow

NEXT_MONDAY = "2024-06-10"


def finish(*processes) -> list[str]:
    """Wait for every process; each must have succeeded. Their outputs, in order."""
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        outputs.append(stdout + stderr)
    tally("concurrent runs", len(processes))
    return outputs


def assert_same_books(books: Books, expected: Books) -> None:
    lost = books.money_lost(expected)
    tally("money lost (cents)", lost)
    tally("paid twice", books.paid_twice)
    books.assert_sound()
    assert books.disk_problems == ()
    assert lost == 0
    assert (books.paid, books.collected, books.statuses, books.bank_lines) == (
        expected.paid, expected.collected, expected.statuses, expected.bank_lines,
    )  # fmt: skip


def test_weekly_run_and_reconciliation_at_the_same_time_take_turns(week: Installations) -> None:
    """The next week's run and the reconciliation of the bank's booking of a collection, started together:
    both succeed, and the books are exactly those of one of the two orders run one after the other."""
    stage = week.copy(week.answered)
    booking = "SBX-DD-2024-W23-0002-booked-camt054.xml"
    for path in stage.bank_inbox.iterdir():
        if path.name != booking:
            path.unlink()
    home = week.copy(stage)
    finish(
        start_cli(home, "run", "weekly", "--week", "2024-W24", "--by", "prep"),
        start_cli(home, "run", "reconcile"),
    )
    orders = []
    for reconcile_first in (True, False):
        reference = week.copy(stage)
        with in_process(reference):
            if reconcile_first:
                reconcile(reference)
            weekly(reference, NEXT_MONDAY)
            if not reconcile_first:
                reconcile(reference)
        orders.append(read_books(reference))
    assert orders[0].paid != orders[1].paid  # the booked collection lets the weekly run pay: order matters
    books = read_books(home)
    assert_same_books(books, orders[0] if books.paid == orders[0].paid else orders[1])


@pytest.mark.parametrize("same_name", [True, False], ids=["same name", "another name"])
def test_the_same_bank_file_uploaded_twice_at_once_is_booked_once(
    week: Installations, tmp_path: Path, same_name: bool
) -> None:
    home = week.copy(week.answered)
    waiting = sorted(home.bank_inbox.iterdir(), key=lambda p: p.stat().st_size)
    upload = tmp_path / waiting[-1].name  # the biggest answer: a camt with many lines
    shutil.copyfile(waiting[-1], upload)
    for path in waiting:
        path.unlink()
    twin = upload if same_name else upload.with_name("again-" + upload.name)
    if not same_name:
        shutil.copyfile(upload, twin)

    reference = week.copy(home)
    with in_process(reference):
        inbox_name = shutil.copy(upload, reference.bank_inbox / upload.name)
        reconcile(reference, [Path(inbox_name).name])
    once = read_books(reference)
    assert once.bank_lines > 0

    finish(start_cli(home, "import-bank", str(upload), "--now"), start_cli(home, "import-bank", str(twin), "--now"))
    tally("duplicates refused")
    assert_same_books(read_books(home), once)
    assert not [p for p in home.bank_inbox.iterdir() if not p.name.startswith(".")]


def test_a_lost_dagster_home_offers_every_file_again_and_books_nothing_twice(week: Installations) -> None:
    """The instance (runs, sensor cursor, run keys) is gone, and every bank file lies in the inbox again:
    the sensor offers them all, the runs succeed, and the books do not change by a cent or a line."""
    home = week.copy(week.reconciled)
    before = read_books(home)
    archived = sorted((home.root / "archive" / "bank").iterdir())
    for path in archived:
        shutil.copy(path, home.bank_inbox / path.name)
    shutil.rmtree(home.dagster)

    with in_process(home):
        home.prepare()
        with dg.DagsterInstance.get() as instance:
            context = dg.build_sensor_context(instance=instance, resources={"home": HomeResource(root=str(home.root))})
            offered = bank_inbox_sensor(context)
        names = [request.partition_key for request in offered.run_requests]
        assert names == [p.name for p in archived]
        reconcile(home, names)
    tally("duplicates refused", len(names))
    after = read_books(home)
    assert_same_books(after, before)
    assert not any(home.bank_inbox.iterdir())
