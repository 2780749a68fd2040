"""Working the exceptions queue: each exception resolved by a person, with an action that says what the
bank line or return was, booked in the ledger in one transaction, with who, why and (above a limit) who
approved it. Proposed matches are confirmed or declined here too.

What each action means depends on what the exception is about:

- a bank line nobody matched: `match` it to a refund's payout or a collection (booked as matching would
  have), `bank_charge` (the bank's fee), `send_back` (money that is not ours, owed back to its sender; a
  debit line is that money going back) or `write_off` (given up, with approval above the limit);
- a returned payout that needs a person: `pay_again` (to the same account), `ask_bank_details` (the customer
  is asked for a new IBAN), or `dismiss` once the refund has moved on;
- a returned collection: `represent` (collect from the merchant again), `write_off` the merchant's debt,
  or `dismiss` once the collection is presented again;
- a statement whose balances do not add up, or a line whose amount could not be read: `dismiss` with the
  explanation, once the bank has answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

from ledger import accounts
from ledger.audit import OperationRefused, log_operation, require, same_person
from ledger.collections import represent_collection
from ledger.db import transaction
from ledger.lifecycle import change_status
from ledger.notifications import queue_notifications
from ledger.postings import post, transfer
from ledger.reconciliation import ReturnPolicy, match_line
from ledger.refunds import RefundNotFound, find_refund

ACTIONS = ("match", "bank_charge", "send_back", "write_off", "pay_again", "ask_bank_details", "represent", "dismiss")
DEFAULT_RETURNS = ReturnPolicy()
ReasonLookup = Callable[[str | None], tuple[str | None, str | None]]


@dataclass(frozen=True)
class ApprovalPolicy:
    """Above this amount a write-off needs a second person's approval (`approved_by`, not the resolver)."""

    write_off_approval_above_cents: int = 10_000


def find_exception(con: duckdb.DuckDBPyConnection, ident: str) -> dict:
    """An exception by its id or a unique prefix of it (at least 6 characters), with its bank line."""
    ident = ident.strip().lower()
    if len(ident) < 6:
        raise OperationRefused(f"exception id {ident!r} is too short: give at least 6 characters")
    rows = con.execute(
        "SELECT e.exception_id, e.line_id, e.file_name, e.refund_id, e.collection_id, e.reason, e.status, "
        "l.direction, l.amount_cents, l.return_reason, l.note AS line_note, l.outcome AS line_outcome, "
        "l.counterparty_name FROM exceptions e LEFT JOIN bank_lines l USING (line_id) "
        "WHERE e.exception_id LIKE ? || '%' ORDER BY e.exception_id LIMIT 2",
        [ident],
    ).pl()
    if rows.is_empty():
        raise OperationRefused(f"no exception {ident!r}")
    if rows.height > 1:
        raise OperationRefused(f"exception id {ident!r} is ambiguous: give more characters")
    return rows.row(0, named=True)


def subject_of(exception: dict) -> str:
    """What an exception is about: refund, collection, line (a bank line with money) or statement."""
    if exception["refund_id"]:
        return "refund"
    if exception["collection_id"]:
        return "collection"
    return "line" if exception["amount_cents"] is not None else "statement"


ALLOWED = {
    "line": {"match", "bank_charge", "send_back", "write_off", "dismiss"},
    "refund": {"pay_again", "ask_bank_details", "dismiss"},
    "collection": {"represent", "write_off", "dismiss"},
    "statement": {"dismiss"},
}


def resolve_exception(
    con: duckdb.DuckDBPyConnection,
    ident: str,
    action: str,
    *,
    by: str,
    reason: str,
    today: date,
    refund: str | None = None,
    collection: str | None = None,
    approved_by: str | None = None,
    approval: ApprovalPolicy = ApprovalPolicy(),
    policy: ReturnPolicy = DEFAULT_RETURNS,
    reasons: ReasonLookup | None = None,
) -> dict:
    """Resolve one open exception with `action` (see the module's doc), all of it in one transaction.

    `refund` (reference or id) or `collection` names what a line is matched to; `approved_by` is the second
    person a write-off above the limit needs; `reasons` maps a return reason code to (action, text).
    Returns the resolution as recorded.
    """
    by, reason = require(by, "who resolves (by)"), require(reason, "a reason")
    exc = find_exception(con, ident)
    if exc["status"] != "open":
        raise OperationRefused(f"exception {exc['exception_id'][:12]} is already {exc['status']}")
    if action not in ACTIONS:
        raise OperationRefused(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
    subject = subject_of(exc)
    if action not in ALLOWED[subject]:
        raise OperationRefused(
            f"{action} does not apply to an exception about a {subject}; for this one: "
            f"{', '.join(sorted(ALLOWED[subject]))}"
        )
    with transaction(con):
        outcome = _ACTIONS[action](
            con, exc, by=by, reason=reason, today=today, refund=refund, collection=collection, policy=policy,
            reasons=reasons,
        )  # fmt: skip
        amount = outcome.get("amount_cents")
        if action == "write_off":
            _check_approval(amount or 0, by, approved_by, approval)
        elif approved_by:
            approved_by = approved_by.strip() or None
        con.execute(
            "INSERT INTO exception_resolutions VALUES (?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
            [exc["exception_id"], action, outcome.get("kind"), outcome.get("ref"), amount, by, approved_by, reason],
        )
        con.execute("UPDATE exceptions SET status = 'resolved' WHERE exception_id = ?", [exc["exception_id"]])
        log_operation(con, f"resolve_exception:{action}", exc["exception_id"], actor=by, reason=reason,
                      approved_by=approved_by, detail=outcome.get("detail"))  # fmt: skip
    return {"exception_id": exc["exception_id"], "action": action, "by": by, "approved_by": approved_by, **outcome}


def _check_approval(amount: int, by: str, approved_by: str | None, approval: ApprovalPolicy) -> None:
    if abs(amount) <= approval.write_off_approval_above_cents:
        return
    limit = approval.write_off_approval_above_cents
    if not approved_by or not approved_by.strip():
        raise OperationRefused(
            f"a write-off of {amount} cents is above the {limit} cents limit: a second person must approve "
            "it (approved_by)"
        )
    if same_person(by, approved_by):
        raise OperationRefused(f"{by} cannot approve their own write-off: a second person must approve it")


def _match(con, exc, *, by, reason, refund, collection, policy, reasons, **_) -> dict:
    if bool(refund) == bool(collection):
        raise OperationRefused("match needs the refund (its reference or id) or the collection id, one of them")
    if refund:
        try:
            ref = find_refund(con, refund)["refund_id"]
        except RefundNotFound as exc_:
            raise OperationRefused(str(exc_)) from None
        kind = "payout"
    else:
        kind, ref = "collection", collection
    action, text = reasons(exc["return_reason"]) if reasons else (None, None)
    event = match_line(con, exc["line_id"], kind=kind, ref=ref, note=f"matched by {by}: {reason}", policy=policy,
                       reason_action=action, reason_text=text)  # fmt: skip
    return {"kind": kind, "ref": ref, "amount_cents": exc["amount_cents"], "detail": f"{kind} {ref} {event}"}


def _line_transfer(con, exc, prefix: str, kind: str, account: str, memo: str) -> dict:
    """Book an unmatched line's money against `account`: a debit left the bank, a credit came in."""
    amount = int(exc["amount_cents"])
    bank = accounts.PLATFORM_BANK
    debit, credit = (account, bank) if exc["direction"] == "DBIT" else (bank, account)
    post(con, [transfer(f"{prefix}:{exc['line_id']}", kind, debit, credit, amount, memo=memo)])
    return {"amount_cents": amount, "detail": f"{exc['direction']} {amount} cents booked to {account}"}


def _bank_charge(con, exc, *, by, reason, **_) -> dict:
    return _line_transfer(con, exc, "charge", "bank_charges", accounts.BANK_CHARGES, f"bank charge ({by}: {reason})")


def _send_back(con, exc, *, by, reason, **_) -> dict:
    memo = (f"payment from {exc['counterparty_name'] or 'unknown sender'} owed back" if exc["direction"] == "CRDT"
            else "payment sent back") + f" ({by}: {reason})"  # fmt: skip
    return _line_transfer(con, exc, "sendback", "payment_return", accounts.TO_SEND_BACK, memo)


def _write_off(con, exc, *, by, reason, **_) -> dict:
    if subject_of(exc) == "line":
        return _line_transfer(con, exc, "writeoff", "write_off", accounts.WRITE_OFFS, f"written off ({by}: {reason})")
    row = con.execute(
        "SELECT merchant_id, amount_cents, status FROM collections WHERE collection_id = ?", [exc["collection_id"]]
    ).fetchone()
    if row[2] != "returned":
        raise OperationRefused(f"collection {exc['collection_id']} is {row[2]}: only a returned one is written off")
    post(con, [transfer(
        f"writeoff:{exc['exception_id']}", "write_off", accounts.WRITE_OFFS, accounts.merchant_receivable(row[0]),
        int(row[1]), merchant_id=row[0], memo=f"merchant's debt written off ({by}: {reason})",
    )])  # fmt: skip
    con.execute("UPDATE collections SET status = 'written_off' WHERE collection_id = ?", [exc["collection_id"]])
    return {"kind": "collection", "ref": exc["collection_id"], "amount_cents": int(row[1]),
            "detail": f"merchant {row[0]}'s debt of {row[1]} cents written off"}  # fmt: skip


def _returned_refund(con, exc) -> dict:
    refund = find_refund(con, exc["refund_id"])
    if refund["status"] != "returned":
        raise OperationRefused(
            f"refund {refund['refund_ref']} is {refund['status']}, no longer returned: dismiss the exception instead"
        )
    return refund


def _pay_again(con, exc, *, by, reason, today, **_) -> dict:
    refund = _returned_refund(con, exc)
    change_status(con, pl.DataFrame(
        {"refund_id": [refund["refund_id"]], "to_status": ["due"], "reason": [f"paid again: {reason}"],
         "due_on": [today]}, schema_overrides={"due_on": pl.Date},
    ), actor=by)  # fmt: skip
    return {"kind": "payout", "ref": refund["refund_id"], "detail": f"refund {refund['refund_ref']} due again"}


def _ask_bank_details(con, exc, *, by, reason, **_) -> dict:
    refund = _returned_refund(con, exc)
    why = f"new bank details asked for: {reason}"
    con.execute("UPDATE refunds SET iban_problem = ? WHERE refund_id = ?", [why, refund["refund_id"]])
    events = change_status(con, pl.DataFrame(
        {"refund_id": [refund["refund_id"]], "to_status": ["awaiting_bank_details"], "reason": [why]}
    ), actor=by)  # fmt: skip
    queue_notifications(con, pl.DataFrame({
        "notification_id": [f"bank_details_needed:{events['event_id'][0]}"], "template": ["bank_details_needed"],
        "refund_id": [refund["refund_id"]], "merchant_id": [refund["merchant_id"]],
        "data": [json.dumps({k: refund[k] for k in ("refund_ref", "merchant_id", "customer_name", "payout_cents")}
                            | {"reason": why}, ensure_ascii=False)],
    }))  # fmt: skip
    return {"kind": "payout", "ref": refund["refund_id"], "detail": f"customer of {refund['refund_ref']} asked"}


def _represent(con, exc, *, by, reason, **_) -> dict:
    done = represent_collection(con, exc["collection_id"], by=by, reason=reason)
    return {"kind": "collection", "ref": exc["collection_id"], "amount_cents": done["amount_cents"],
            "detail": f"{done['refunds']} refund(s) presented again"}  # fmt: skip


def _dismiss(con, exc, **_) -> dict:
    subject = subject_of(exc)
    if subject == "line":
        raise OperationRefused(
            f"the line carries {exc['amount_cents']} cents: match it, book it as a bank charge, send it back "
            "or write it off; it cannot be dismissed"
        )
    if subject == "refund":
        refund = find_refund(con, exc["refund_id"])
        if refund["status"] == "returned":
            raise OperationRefused(
                f"refund {refund['refund_ref']} is still returned: pay it again or ask for bank details"
            )
    if subject == "collection":
        status = con.execute("SELECT status FROM collections WHERE collection_id = ?", [exc["collection_id"]])
        if status.fetchone()[0] == "returned":
            raise OperationRefused(
                f"collection {exc['collection_id']} is still returned: present it again or write it off"
            )
    return {"detail": "dismissed: nothing booked"}


_ACTIONS = {
    "match": _match,
    "bank_charge": _bank_charge,
    "send_back": _send_back,
    "write_off": _write_off,
    "pay_again": _pay_again,
    "ask_bank_details": _ask_bank_details,
    "represent": _represent,
    "dismiss": _dismiss,
}


def list_proposals(con: duckdb.DuckDBPyConnection, status: str | None = "proposed") -> pl.DataFrame:
    """Matches proposed by amount, date and name, waiting for a person to confirm or decline them."""
    return con.execute(
        "SELECT p.line_id, p.status, p.matched_kind, p.matched_ref, r.refund_ref, p.score, l.file_name, "
        "l.booking_date, l.direction, l.amount_cents, l.counterparty_name, p.created_at FROM proposed_matches p "
        "JOIN bank_lines l USING (line_id) LEFT JOIN refunds r ON r.refund_id = p.matched_ref "
        "WHERE (? IS NULL OR p.status = ?) ORDER BY p.created_at, p.line_id",
        [status, status],
    ).pl()


def review_proposal(
    con: duckdb.DuckDBPyConnection,
    ident: str,
    confirm: bool,
    *,
    by: str,
    reason: str,
    policy: ReturnPolicy = DEFAULT_RETURNS,
    reasons: ReasonLookup | None = None,
) -> dict:
    """Confirm a proposed match (booked as matching would have) or decline it (the line becomes an
    exception to resolve by hand). `ident` is the line id or a unique prefix of it."""
    by, reason = require(by, "who decides (by)"), require(reason, "a reason")
    ident = ident.strip().lower()
    rows = con.execute(
        "SELECT p.line_id, p.matched_kind, p.matched_ref, p.status, l.file_name, l.return_reason "
        "FROM proposed_matches p JOIN bank_lines l USING (line_id) WHERE p.line_id LIKE ? || '%' LIMIT 2",
        [ident],
    ).pl()
    if len(ident) < 6 or rows.height != 1:
        raise OperationRefused(f"no single proposed match {ident!r} (give at least 6 characters of its line id)")
    proposal = rows.row(0, named=True)
    if proposal["status"] != "proposed":
        raise OperationRefused(f"the proposal for line {proposal['line_id'][:12]} is already {proposal['status']}")
    with transaction(con):
        if confirm:
            action, text = reasons(proposal["return_reason"]) if reasons else (None, None)
            match_line(con, proposal["line_id"], kind=proposal["matched_kind"], ref=proposal["matched_ref"],
                       note=f"proposal confirmed by {by}: {reason}", policy=policy, reason_action=action,
                       reason_text=text)  # fmt: skip
        else:
            con.execute("UPDATE bank_lines SET outcome = 'exception' WHERE line_id = ?", [proposal["line_id"]])
            con.execute(
                "INSERT INTO exceptions (exception_id, line_id, file_name, refund_id, collection_id, reason, status, "
                "created_at) VALUES (?, ?, ?, NULL, NULL, ?, 'open', current_timestamp)",
                [proposal["line_id"], proposal["line_id"], proposal["file_name"],
                 f"proposed match to {proposal['matched_kind']} {proposal['matched_ref']} declined by {by}: {reason}"],
            )  # fmt: skip
        decision = "confirmed" if confirm else "declined"
        con.execute("UPDATE proposed_matches SET status = ? WHERE line_id = ?", [decision, proposal["line_id"]])
        log_operation(con, f"proposal:{decision}", proposal["line_id"], actor=by, reason=reason,
                      detail=f"{proposal['matched_kind']} {proposal['matched_ref']}")  # fmt: skip
    return {**proposal, "status": decision}
