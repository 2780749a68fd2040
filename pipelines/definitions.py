"""The one Definitions of the product, loaded by `workspace.yaml`, the CLI and the tests."""

from __future__ import annotations

import dagster as dg

from assets.intake import shop_exports
from assets.payment_files import customer_payouts, file_checks, merchant_collections, released_payment_files
from assets.reconciliation import every_bank_line_accounted_for, reconciled_bank_files
from assets.refunds import due_refunds, ledger_balances_to_zero
from assets.reports import weekly_reconciliation_report
from pipelines.jobs import (
    OPERATION_JOBS,
    intake_job,
    midweek_schedule,
    nightly_job,
    nightly_schedule,
    reconcile_job,
    release_job,
    report_job,
    weekly_job,
    weekly_schedule,
)
from pipelines.resources import BankProfileResource, ControlsResource, HomeResource, LedgerResource
from pipelines.sensors import bank_inbox_sensor
from pipelines.settings import Home, payouts_home


def build_definitions(home: Home) -> dg.Definitions:
    """Definitions wired to one installation's folders and ledger."""
    home.prepare()
    return dg.Definitions(
        assets=[
            shop_exports,
            due_refunds,
            merchant_collections,
            customer_payouts,
            released_payment_files,
            reconciled_bank_files,
            weekly_reconciliation_report,
        ],
        asset_checks=[ledger_balances_to_zero, *file_checks, every_bank_line_accounted_for],
        jobs=[
            intake_job,
            nightly_job,
            weekly_job,
            release_job,
            reconcile_job,
            report_job,
            *OPERATION_JOBS,
        ],
        schedules=[nightly_schedule, weekly_schedule, midweek_schedule],
        sensors=[bank_inbox_sensor],
        resources={
            "ledger": LedgerResource(database=str(home.ledger)),
            "home": HomeResource(root=str(home.root)),
            "bank": BankProfileResource(**home.bank_settings()),
            "controls": ControlsResource(**home.control_settings()),
        },
    )


defs = build_definitions(payouts_home())
