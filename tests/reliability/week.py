"""One shop's week at every stage, and the jobs the tests that try to break it run in-process."""

from __future__ import annotations

from pathlib import Path

from pipelines.jobs import release_run_config, weekly_run_config
from pipelines.launch import add_bank_file_partitions, run_job
from pipelines.sandbox_bank import answer_released_files
from pipelines.settings import Home
from tests.pipelines.commands import payouts
from tests.reliability.books import copy_home, in_process, read_books

WEEK, MONDAY = "2024-W23", "2024-06-03"


class Installations:
    """One shop's week at each stage, made once, with the clean run's books at each stage."""

    def __init__(self, root: Path) -> None:
        self.root = root
        due = Home(root / "due").prepare()
        # Small files, so a week has several of each kind and a crash can fall between two of them.
        (due.root / "bank_profile.toml").write_text("max_transactions_per_file = 12\n", encoding="utf-8")
        export = root / "export"
        for args in (
            ("generate", "--merchants", "30", "--orders", "1500", "--start", "2024-04-01", "--end", "2024-05-31",
             "--seed", "3", str(export)),
            ("import", str(export)),
            ("run", "nightly", "--date", MONDAY),
        ):  # fmt: skip
            payouts(due, *args)  # in this process: the crashes are tried on the copies, by `cli`
        self.due = due
        self.written = copy_home(due, root / "written")
        with in_process(self.written):
            weekly(self.written)
        self.after_weekly = read_books(self.written)
        released = copy_home(self.written, root / "released")
        with in_process(released):
            release(released)
        self.after_release = read_books(released)
        self.answered = copy_home(released, root / "answered")
        # The bank's answers to the second file of each kind (status report, bookings, returns, statement):
        # every kind of bank file, at a third of the cost of reconciling them all in every test.
        answers = answer_released_files(self.answered, return_rate=0.1, seed=5)
        self.bank_files = [p for p in answers if "-2024-W23-0002-" in p.name]
        for path in set(answers) - set(self.bank_files):
            path.unlink()
        self.reconciled = copy_home(self.answered, root / "reconciled")
        with in_process(self.reconciled):
            reconcile(self.reconciled)
        self.after_reconcile = read_books(self.reconciled)
        self.n = 0

    def copy(self, stage: Home) -> Home:
        self.n += 1
        return copy_home(stage, self.root / f"try-{self.n}")


def weekly(home: Home, monday: str = MONDAY) -> None:
    """The weekly job's main run, prepared by `prep`."""
    run_job(home, "weekly", weekly_run_config("main", "prep"), partition_key=monday)


def release(home: Home) -> None:
    """Every pending file released by `rel`."""
    run_job(home, "release", release_run_config("rel", None))


def reconcile(home: Home, names: list[str] | None = None) -> None:
    """One reconcile run per bank file in the inbox (or the named ones), as the sensor starts them."""
    names = names or sorted(p.name for p in home.bank_inbox.iterdir() if p.is_file())
    add_bank_file_partitions(home, names)
    for name in names:
        run_job(home, "reconcile", partition_key=name)
