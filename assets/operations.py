"""Finance-ops operations as Dagster ops with typed config: launched from the Launchpad or by the CLI,
validated, audited with the operator's name and reason. Refunds' manual statuses and bank details, the
exceptions queue and proposed matches, pending files, returned collections, blocked merchants."""
# No `from __future__ import annotations` here: Dagster reads the context and config type hints at runtime.

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from enum import Enum

import dagster as dg

from assets.formatting import masked
from assets.outbox import cancel
from ledger.audit import OperationRefused
from ledger.collections import represent_collection
from ledger.exceptions import resolve_exception, review_proposal
from ledger.lifecycle import IllegalTransition
from ledger.merchants import set_merchant_blocked
from ledger.reconciliation import ReturnPolicy
from ledger.refunds import BankDetailsRefused, RefundNotFound, find_refund, set_manual_status, update_bank_details
from sepa.iban import iban_problem, mask_iban, normalise_iban
from sepa.reason_codes import reason


@contextmanager
def refused_as_failure() -> Iterator[None]:
    """An operation the books refuse fails its run with the books' own message (no traceback to read), IBANs
    in it masked: the message is kept in the run's log."""
    try:
        yield
    except (OperationRefused, RefundNotFound, BankDetailsRefused, IllegalTransition, ValueError) as exc:
        raise dg.Failure(masked(str(exc))) from None


class ManualStatus(Enum):
    """The statuses finance ops set by hand (the Launchpad offers just these)."""

    open = "open"
    in_progress = "in_progress"
    already_refunded = "already_refunded"


class ExceptionAction(Enum):
    """What resolving an exception does (which ones fit depends on what the exception is about)."""

    match = "match"
    bank_charge = "bank_charge"
    send_back = "send_back"
    write_off = "write_off"
    pay_again = "pay_again"
    ask_bank_details = "ask_bank_details"
    represent = "represent"
    dismiss = "dismiss"


class ManualStatusConfig(dg.Config):
    """A manual status change: refund (shop reference or platform id), new status (open, in_progress,
    already_refunded), who and why; merchant only when two merchants share the reference."""

    refund: str
    status: ManualStatus
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
    with context.resources.ledger.connect() as con, refused_as_failure():
        refund = set_manual_status(
            con, config.refund, config.status.value, actor=config.by, reason=config.reason,
            merchant_id=config.merchant or None,
        )  # fmt: skip
    context.log.info(
        masked(f"refund {refund['refund_ref']} is now {refund['status']} (by {config.by}: {config.reason})")
    )


@dg.op(required_resource_keys={"ledger"})
def update_customer_bank_details(context: dg.OpExecutionContext, config: BankDetailsConfig) -> None:
    """A new IBAN replaces the old with an audit entry (invalid ones, the merchant's or a carrier's are
    refused and nothing changes); a confirmed IBAN makes the refund due at once."""
    if not config.iban and not config.confirm:
        raise dg.Failure("give a new IBAN, a confirmation, or both")
    new_iban = normalise_iban(config.iban) if config.iban else None
    with context.resources.ledger.connect() as con, refused_as_failure():
        before = find_refund(con, config.refund, config.merchant or None)["customer_iban"]
        note = f"IBAN changed from {mask_iban(before) or 'none'} to {mask_iban(new_iban)}" if new_iban else ""
        refund = update_bank_details(
            con, config.refund, iban=new_iban, iban_problem=iban_problem(new_iban) if new_iban else None,
            confirm=config.confirm, today=date.today(), actor=config.by, change_note=note,
            merchant_id=config.merchant or None,
        )  # fmt: skip
    context.log.info(
        masked(f"refund {refund['refund_ref']}: {refund['status']}, IBAN {mask_iban(refund['customer_iban'])}")
    )


def _reason_of(code: str | None) -> tuple[str | None, str | None]:
    found = reason(code) if code else None
    return (found.action.value, found.name) if found else (None, None)


def _return_policy(context: dg.OpExecutionContext) -> ReturnPolicy:
    bank = context.resources.bank
    return ReturnPolicy(charges_to=bank.return_charges_to, represent_once=bank.represent_am04_once)


class ResolveExceptionConfig(dg.Config):
    """Resolve one exception: its id (or the first 8+ characters), the action (match, bank_charge, send_back,
    write_off, pay_again, ask_bank_details, represent, dismiss), who and why. For match: the refund
    (reference or id) or the collection id. A write-off above the approval limit names a second person in
    approved_by."""

    exception: str
    action: ExceptionAction
    by: str
    reason: str
    refund: str = ""
    collection: str = ""
    approved_by: str = ""


@dg.op(required_resource_keys={"ledger", "bank", "controls"})
def resolve_bank_exception(context: dg.OpExecutionContext, config: ResolveExceptionConfig) -> None:
    """Resolve an exception from the reconciliation queue, booking what the action means in the ledger."""
    with context.resources.ledger.connect() as con, refused_as_failure():
        done = resolve_exception(
            con, config.exception, config.action.value, by=config.by, reason=config.reason, today=date.today(),
            refund=config.refund or None, collection=config.collection or None,
            approved_by=config.approved_by or None, approval=context.resources.controls.approval(),
            policy=_return_policy(context), reasons=_reason_of,
        )  # fmt: skip
    context.log.info(
        masked(f"exception {done['exception_id'][:12]}: {done['action']} by {done['by']}: {done['detail']}")
    )


class ProposalReviewConfig(dg.Config):
    """Confirm (confirm: true) or decline (confirm: false) a proposed match: the bank line's id (or its first
    8+ characters), who and why."""

    line: str
    confirm: bool
    by: str
    reason: str


@dg.op(required_resource_keys={"ledger", "bank"})
def review_proposed_match(context: dg.OpExecutionContext, config: ProposalReviewConfig) -> None:
    """Confirm a proposed match (booked as automatic matching would) or decline it (an exception to resolve)."""
    with context.resources.ledger.connect() as con, refused_as_failure():
        done = review_proposal(
            con, config.line, config.confirm, by=config.by, reason=config.reason, policy=_return_policy(context),
            reasons=_reason_of,
        )  # fmt: skip
    what = f"{done['matched_kind']} {done['matched_ref']}"
    context.log.info(masked(f"proposal {done['line_id'][:12]} ({what}): {done['status']}"))


class CancelFileConfig(dg.Config):
    """Cancel a payment file waiting for release (its name in outbox/pending), with who and why."""

    file: str
    by: str
    reason: str


@dg.op(required_resource_keys={"ledger", "home"})
def cancel_payment_file(context: dg.OpExecutionContext, config: CancelFileConfig) -> None:
    """Cancel a pending payment file: it never goes to the bank; its refunds are due again (payouts) or can
    be collected again (collections); the file moves to outbox/cancelled/."""
    with context.resources.ledger.connect() as con, refused_as_failure():
        row = cancel(con, context.resources.home.home, config.file, by=config.by, reason=config.reason)
    context.log.info(masked(f"{row['file_name']} cancelled by {config.by}: {row['n_tx']} transaction(s) back"))


class RepresentConfig(dg.Config):
    """Present a returned merchant collection again (its collection id), with who and why."""

    collection: str
    by: str
    reason: str


@dg.op(required_resource_keys={"ledger"})
def represent_returned_collection(context: dg.OpExecutionContext, config: RepresentConfig) -> None:
    """A returned collection's refunds go into the next collection run's direct debit to the merchant."""
    with context.resources.ledger.connect() as con, refused_as_failure():
        done = represent_collection(con, config.collection, by=config.by, reason=config.reason)
    context.log.info(masked(f"collection {done['collection_id']}: {done['refunds']} refund(s) presented again"))


class MerchantBlockConfig(dg.Config):
    """Block (blocked: true) or unblock (blocked: false) a merchant, with who and why."""

    merchant: str
    blocked: bool = True
    by: str
    reason: str


@dg.op(required_resource_keys={"ledger"})
def block_or_unblock_merchant(context: dg.OpExecutionContext, config: MerchantBlockConfig) -> None:
    """Blocked merchants are neither collected from nor their customers paid until unblocked."""
    with context.resources.ledger.connect() as con, refused_as_failure():
        done = set_merchant_blocked(con, config.merchant, config.blocked, by=config.by, reason=config.reason)
    context.log.info(masked(f"merchant {done['merchant_id']} is now {'blocked' if done['blocked'] else 'unblocked'}"))
