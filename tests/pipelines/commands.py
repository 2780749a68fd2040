"""The `payouts` command as the tests run it: in this process through the CLI's own app, or installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.settings import Home

PAYOUTS = str(Path(sys.executable).parent / "payouts")


def payouts(home: Home, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`payouts ARGS` on HOME, parsed and run by the CLI's own app in this process.

    The command, its Dagster runs and the ledger are the real ones; what this saves is Python's start and
    Dagster's import for every command (3-4 s each). `installed` runs the installed command in a process
    of its own, for the tests of what a user types in a shell.
    """
    env = {"PAYOUTS_HOME": str(home.root), "DAGSTER_HOME": None}  # the CLI must find its instance by itself
    result = CliRunner().invoke(app, list(args), env=env)
    stderr = result.stderr
    if result.exc_info and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # what the shell would have shown
    done = subprocess.CompletedProcess(["payouts", *args], result.exit_code, result.stdout, stderr)
    if ok:
        assert done.returncode == 0, f"payouts {' '.join(args)}: {done.stderr}{done.stdout}"
    return done


def installed(home: Home, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`payouts ARGS` on HOME through the installed command, in a process of its own."""
    env = {**os.environ, "PAYOUTS_HOME": str(home.root)}
    env.pop("DAGSTER_HOME", None)  # the CLI must find its instance under $PAYOUTS_HOME by itself
    done = subprocess.run([PAYOUTS, *args], env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, f"payouts {' '.join(args)}: {done.stderr}{done.stdout}"
    return done


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
