"""Crash anywhere: `payouts run weekly`, the release and the reconciliation killed with SIGKILL (the whole
process group) at every named crash point and at random times, then run again. Afterwards no refund is in
two files, every refund the clean run put in a file is in exactly one, the ledger sums to zero and equals
the clean run's to the cent, and the file registry matches the files on disk."""

from __future__ import annotations

import random
import time

import pytest

from assets.faults import CRASH_POINTS
from pipelines.settings import Home
from tests.reliability.books import (
    Books,
    cli,
    crashed_at,
    in_process,
    kill_group,
    read_books,
    runs_in_progress,
    start_cli,
)
from tests.reliability.figures import tally
from tests.reliability.week import WEEK, Installations, reconcile, release, weekly

pytestmark = pytest.mark.slow

WEEKLY_POINTS = [p for p in CRASH_POINTS if p.startswith(("collection_", "payout_"))]
RELEASE_POINTS = ["release_booked", "release_half_moved"]


def assert_same_outcome(books: Books, clean: Books) -> None:
    """The same money in the same places as the clean run, whatever the files are called."""
    lost = books.money_lost(clean)
    tally("money lost (cents)", lost)
    tally("paid twice", books.paid_twice)
    books.assert_sound()
    assert books.disk_problems == (), books.disk_problems
    assert lost == 0, f"balances differ from the clean run's by {lost} cents"
    assert books.paid == clean.paid, "refunds paid differ from the clean run's"
    assert books.collected == clean.collected, "collections differ from the clean run's"
    assert books.statuses == clean.statuses
    assert books.bank_lines == clean.bank_lines


def test_the_clean_week_has_several_files_of_each_kind_and_money_in_every_stage(week: Installations) -> None:
    """The scenario is worth crashing: several files per kind, payouts and collections, bank answers."""
    pending = sorted(p.name for p in (week.written.outbox / "pending").iterdir())
    assert sum(n.startswith("DD-") for n in pending) >= 2 and sum(n.startswith("PO-") for n in pending) >= 2
    assert len(week.after_weekly.paid) >= 24 and len(week.after_weekly.collected) >= 13
    assert week.after_release.balances != week.after_weekly.balances  # release moved money
    kinds = {p.name.rsplit("-", 1)[-1] for p in week.bank_files}
    assert {"pain002.xml", "camt054.xml", "camt053.xml"} <= kinds and week.after_reconcile.bank_lines > 0
    for books in (week.after_weekly, week.after_release, week.after_reconcile):
        books.assert_sound()
        assert books.disk_problems == ()


@pytest.mark.parametrize("point", WEEKLY_POINTS)
def test_weekly_run_killed_at_a_crash_point_then_run_again(week: Installations, point: str) -> None:
    home = week.copy(week.due)
    crashed = cli(home, "run", "weekly", "--week", WEEK, "--by", "prep", crash_at=point)
    assert crashed_at(home, crashed) == point, crashed.stderr[-2000:]
    tally("crash points tried")
    read_books(home).assert_sound()  # before any repair: the killed transaction left nothing half-done

    with in_process(home):
        weekly(home)
        tally("re-runs after a crash")
        again = read_books(home)
        assert again.paid == week.after_weekly.paid and again.collected == week.after_weekly.collected
        assert again.disk_problems == (), again.disk_problems
        release(home)
    assert_same_outcome(read_books(home), week.after_release)
    assert runs_in_progress(home) == 0  # the killed run was marked failed, it does not hold the queue


@pytest.mark.parametrize("point", RELEASE_POINTS)
def test_release_killed_at_a_crash_point_then_run_again(week: Installations, point: str) -> None:
    home = week.copy(week.written)
    crashed = cli(home, "files", "release", "--all", "--by", "rel", crash_at=point)
    assert crashed_at(home, crashed) == point, crashed.stderr[-2000:]
    tally("crash points tried")
    books = read_books(home)
    books.assert_sound()
    assert books.balances == week.after_release.balances  # the release was booked whole before the kill
    assert books.disk_problems  # ... and its files were not all moved yet: what the next run must mend

    with in_process(home):
        release(home)
        tally("re-runs after a crash")
    assert_same_outcome(read_books(home), week.after_release)


def test_reconciliation_killed_after_booking_a_file_then_run_again(week: Installations) -> None:
    home = week.copy(week.answered)
    crashed = cli(home, "run", "reconcile", crash_at="bank_file_booked")
    assert crashed_at(home, crashed) == "bank_file_booked", crashed.stderr[-2000:]
    tally("crash points tried")
    booked = read_books(home)
    booked.assert_sound()
    assert 0 < booked.bank_lines < week.after_reconcile.bank_lines  # the first file booked, still in the inbox

    with in_process(home):
        reconcile(home)  # offers the booked file again, with the others
        tally("re-runs after a crash")
    assert_same_outcome(read_books(home), week.after_reconcile)
    assert not any(home.bank_inbox.iterdir())


def test_every_crash_point_is_tried() -> None:
    tried = {*WEEKLY_POINTS, *RELEASE_POINTS, "bank_file_booked"}
    assert tried == set(CRASH_POINTS)


@pytest.mark.parametrize("seed", range(2))
def test_weekly_run_killed_at_a_random_time_then_run_again(week: Installations, seed: int) -> None:
    """Killed at a random moment of a run's life (its first seconds are the interpreter starting, so the
    moment is drawn from the second half, where the books and files are written)."""
    home = kill_at_random(week, week.due, random.Random(seed), "run", "weekly", "--week", WEEK, "--by", "prep")
    with in_process(home):
        weekly(home)
        tally("re-runs after a crash")
        release(home)
    assert_same_outcome(read_books(home), week.after_release)


def test_release_killed_at_a_random_time_then_run_again(week: Installations) -> None:
    home = kill_at_random(week, week.written, random.Random(100), "files", "release", "--all", "--by", "rel")
    with in_process(home):
        release(home)
        tally("re-runs after a crash")
    assert_same_outcome(read_books(home), week.after_release)


def kill_at_random(week: Installations, stage: Home, rng: random.Random, *args: str) -> Home:
    """A copy of `stage` where `payouts ARGS` was killed at a random moment while it ran. A run that ended
    before the moment came is not a kill: the next try draws from a shorter span."""
    span = clean_run_seconds(week)
    for _ in range(4):
        home = week.copy(stage)
        started = time.monotonic()
        run = start_cli(home, *args)
        time.sleep(rng.uniform(0.5, 0.95) * span)
        if kill_group(run):
            tally("random kills")
            read_books(home).assert_sound()
            return home
        span = 0.9 * (time.monotonic() - started)
    raise AssertionError(f"payouts {' '.join(args)} ended every time before it could be killed")


_clean: list[float] = []


def clean_run_seconds(week: Installations) -> float:
    """How long `payouts run weekly` takes here, start to end, measured once on a copy (its books must be
    the clean run's too: the CLI and the jobs are one path)."""
    if not _clean:
        home = week.copy(week.due)
        started = time.monotonic()
        done = cli(home, "run", "weekly", "--week", WEEK, "--by", "prep")
        _clean.append(time.monotonic() - started)
        assert done.returncode == 0, done.stderr
        books = read_books(home)
        assert books.paid == week.after_weekly.paid and books.balances == week.after_weekly.balances
    return _clean[0]
