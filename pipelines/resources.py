"""Resources: the DuckDB ledger and the installation's folders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from assets.home import Home
from assets.outbox import BankProfile
from ledger.db import open_ledger
from ledger.exceptions import ApprovalPolicy
from sepa.iban import normalise_iban
from sepa.parties import Party


class LedgerResource(dg.ConfigurableResource):
    """The ledger's DuckDB file. One writer at a time: runs that write it are queued, not raced."""

    database: str

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An open, migrated connection for the length of a step."""
        with open_ledger(self.database) as con:
            yield con


class HomeResource(dg.ConfigurableResource):
    """The installation's data directory: inboxes, outboxes, archive and reports."""

    root: str

    @property
    def home(self) -> Home:
        return Home(Path(self.root)).prepare()


class BankProfileResource(dg.ConfigurableResource):
    """The platform's bank account and what its bank accepts: the account refunds are paid from and
    collections are credited to, the SEPA creditor identifier, file versions, limits and lead times.

    Defaults suit the demo; an installation sets its own in `$PAYOUTS_HOME/bank_profile.toml`
    (same keys), and the Launchpad can override any of them for one run.
    """

    platform_name: str = "Refund Platform GmbH"
    platform_iban: str = "DE75512108001245126199"
    platform_bic: str = "SOGEDEFFXXX"
    creditor_id: str = "DE98ZZZ09999999999"
    pain001_version: str = "pain.001.001.03"
    pain008_version: str = "pain.008.001.02"
    max_transactions_per_file: int = 5000
    collection_lead_days: int = 1
    per_refund_fee_cents: int = 50
    auto_release: bool = False
    return_charges_to: str = "platform"  # who bears banks' charges on returns: platform or merchant
    represent_am04_once: bool = True  # present a collection returned for insufficient funds once more

    def profile(self) -> BankProfile:
        """The profile as the file writers use it (creditor identifier checked)."""
        return BankProfile(
            platform=Party(
                name=self.platform_name,
                iban=normalise_iban(self.platform_iban),
                bic=self.platform_bic.replace(" ", "").upper() or None,
                creditor_id=self.creditor_id,
            ),
            pain001_version=self.pain001_version,
            pain008_version=self.pain008_version,
            max_transactions_per_file=self.max_transactions_per_file,
            collection_lead_days=self.collection_lead_days,
            per_refund_fee_cents=self.per_refund_fee_cents,
            auto_release=self.auto_release,
            return_charges_to=self.return_charges_to,
            represent_am04_once=self.represent_am04_once,
        )


class ControlsResource(dg.ConfigurableResource):
    """Finance ops' controls: four eyes on release (the releaser may not be the person who prepared or last
    configured the week's run) and the write-off amount above which a second person must approve.

    Defaults are the safe ones; an installation sets its own in `$PAYOUTS_HOME/controls.toml` (same keys).
    """

    four_eyes_release: bool = True
    write_off_approval_above_cents: int = 10_000

    def approval(self) -> ApprovalPolicy:
        """The approval rule for write-offs."""
        return ApprovalPolicy(write_off_approval_above_cents=self.write_off_approval_above_cents)
