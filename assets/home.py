"""The folders of one installation (`$PAYOUTS_HOME`): inboxes, outboxes, archive, ledger, Dagster home."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DAGSTER_YAML = """\
# Written by payouts: a persistent local instance so runs, schedules and sensor cursors survive restarts.
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 1
# A run whose process died is marked failed, so it does not hold the queue for ever.
run_monitoring:
  enabled: true
"""


@dataclass(frozen=True)
class Home:
    """The folders of one installation."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.duckdb"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    @property
    def shop_inbox(self) -> Path:
        return self.root / "inbox" / "shop"

    @property
    def bank_inbox(self) -> Path:
        return self.root / "inbox" / "bank"

    @property
    def shop_archive(self) -> Path:
        return self.root / "archive" / "shop"

    @property
    def shop_refused(self) -> Path:
        return self.root / "archive" / "shop-refused"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def bank_profile(self) -> Path:
        return self.root / "bank_profile.toml"

    @property
    def controls(self) -> Path:
        return self.root / "controls.toml"

    def bank_settings(self) -> dict:
        """The installation's bank profile settings (empty when it uses the defaults)."""
        return _read_toml(self.bank_profile)

    def control_settings(self) -> dict:
        """The installation's controls (four eyes, approval limits; empty when it uses the defaults)."""
        return _read_toml(self.controls)

    def prepare(self) -> Home:
        """Create the folders and the Dagster instance config if missing; return self."""
        for folder in (
            self.shop_inbox,
            self.bank_inbox,
            self.shop_archive,
            self.shop_refused,
            self.outbox / "pending",
            self.outbox / "released",
            self.outbox / "cancelled",
            self.reports,
            self.dagster,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        config = self.dagster / "dagster.yaml"
        if not config.exists():
            config.write_text(DAGSTER_YAML, encoding="utf-8")
        return self


def _read_toml(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        return tomllib.load(fh)
