"""Where runtime state lives: everything under one data directory, `$PAYOUTS_HOME` (default ./data)."""

from __future__ import annotations

import os
from pathlib import Path

from assets.home import DAGSTER_YAML, Home

__all__ = ["DAGSTER_YAML", "Home", "payouts_home"]


def payouts_home() -> Home:
    """The installation named by `$PAYOUTS_HOME`, or ./data."""
    return Home(Path(os.environ.get("PAYOUTS_HOME", "data")).resolve())
