"""Finance-ops operations on single refunds, as Dagster ops with typed config: launched from the Launchpad
or by the CLI, audited with the operator's name and reason."""
# No `from __future__ import annotations` here: Dagster reads the context and config type hints at runtime.

from datetime import date

import dagster as dg

from ledger.lifecycle import IllegalTransition
from ledger.refunds import BankDetailsRefused, RefundNotFound, find_refund, set_manual_status, update_bank_details
from sepa.iban import iban_problem, mask_iban, normalise_iban


class ManualStatusConfig(dg.Config):
    """A manual status change: refund (shop reference or platform id), new status (open, in_progress,
    already_refunded), who and why; merchant only when two merchants share the reference."""

    refund: str
    status: str
    by: str
    reason: str
    merchant: str = ""


class BankDetailsConfig(dg.Config):
    """New bank details for a refund, as the customer's link gives them: a new IBAN, a confirmation, or both."""

    refund: str
    iban: str = ""
    confirm: bool = False
    by: str = "customer"
    merchant: str = ""


@dg.op(required_resource_keys={"ledger"})
def change_refund_status(context: dg.OpExecutionContext, config: ManualStatusConfig) -> None:
    """Record progress by hand (open, in progress, already refunded). Audit only: no money moves."""
    with context.resources.ledger.connect() as con:
        try:
            refund = set_manual_status(
                con, config.refund, config.status, actor=config.by, reason=config.reason,
                merchant_id=config.merchant or None,
            )  # fmt: skip
        except (RefundNotFound, IllegalTransition, ValueError) as exc:
            raise dg.Failure(str(exc)) from None
    context.log.info(f"refund {refund['refund_ref']} is now {refund['status']} (by {config.by}: {config.reason})")


@dg.op(required_resource_keys={"ledger"})
def update_customer_bank_details(context: dg.OpExecutionContext, config: BankDetailsConfig) -> None:
    """A new IBAN replaces the old with an audit entry (invalid ones, the merchant's or a carrier's are
    refused and nothing changes); a confirmed IBAN makes the refund due at once."""
    if not config.iban and not config.confirm:
        raise dg.Failure("give a new IBAN, a confirmation, or both")
    new_iban = normalise_iban(config.iban) if config.iban else None
    with context.resources.ledger.connect() as con:
        try:
            before = find_refund(con, config.refund, config.merchant or None)["customer_iban"]
            note = f"IBAN changed from {mask_iban(before) or 'none'} to {mask_iban(new_iban)}" if new_iban else ""
            refund = update_bank_details(
                con, config.refund, iban=new_iban, iban_problem=iban_problem(new_iban) if new_iban else None,
                confirm=config.confirm, today=date.today(), actor=config.by, change_note=note,
                merchant_id=config.merchant or None,
            )  # fmt: skip
        except (RefundNotFound, BankDetailsRefused, IllegalTransition) as exc:
            raise dg.Failure(str(exc)) from None
    context.log.info(f"refund {refund['refund_ref']}: {refund['status']}, IBAN {mask_iban(refund['customer_iban'])}")
