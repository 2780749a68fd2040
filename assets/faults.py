"""Named crash points: where a test of recovery may kill the run, to prove the next run mends what a crash
there leaves behind (a file written but not registered, books posted but a file not moved...).

Inert unless `$PAYOUTS_CRASH_AT` names the point; then the process and its workers die there at once
(SIGKILL to the process group, as `kill -9 -PGID` would), with no chance to tidy up. The point's name is
first written to `$PAYOUTS_CRASH_MARK` when set (a run's stderr is captured by Dagster, and its capture
dies with it), so a test knows the run died there and not elsewhere.
"""

import os
import signal
import sys

CRASH_ENV = "PAYOUTS_CRASH_AT"
MARK_ENV = "PAYOUTS_CRASH_MARK"

# Every point, in the order a week reaches them; tests try each.
CRASH_POINTS = (
    "collection_file_half_written",
    "collection_files_written",
    "collection_files_recorded",
    "payout_file_half_written",
    "payout_files_written",
    "payout_files_recorded",
    "release_booked",
    "release_half_moved",
    "bank_file_booked",
)


def crash_point(name: str) -> None:
    """Die here, with the whole process group, when `$PAYOUTS_CRASH_AT` is `name`."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    if os.environ.get(CRASH_ENV) == name:
        mark = os.environ.get(MARK_ENV)
        if mark:
            with open(mark, "w", encoding="utf-8") as fh:
                fh.write(name)
        sys.stderr.write(f"crash point {name}: killing process group {os.getpgrp()}\n")
        sys.stderr.flush()
        os.killpg(os.getpgrp(), signal.SIGKILL)
