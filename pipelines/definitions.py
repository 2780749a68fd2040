"""The one Definitions of the product, loaded by `workspace.yaml`, the CLI and the tests."""

from __future__ import annotations

import dagster as dg

from assets.intake import shop_exports
from assets.refunds import due_refunds, ledger_balances_to_zero
from pipelines.jobs import intake_job, nightly_job, nightly_schedule
from pipelines.resources import HomeResource, LedgerResource
from pipelines.settings import Home, payouts_home


def build_definitions(home: Home) -> dg.Definitions:
    """Definitions wired to one installation's folders and ledger."""
    home.prepare()
    return dg.Definitions(
        assets=[shop_exports, due_refunds],
        asset_checks=[ledger_balances_to_zero],
        jobs=[intake_job, nightly_job],
        schedules=[nightly_schedule],
        resources={
            "ledger": LedgerResource(database=str(home.ledger)),
            "home": HomeResource(root=str(home.root)),
        },
    )


defs = build_definitions(payouts_home())
