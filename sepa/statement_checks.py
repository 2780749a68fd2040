"""Checks a statement must pass on its own, before anything in it is believed."""

from __future__ import annotations

import polars as pl

from sepa.bank_files import BankFile


def balance_gaps(bank_file: BankFile) -> list[str]:
    """Balance continuity: a statement's opening balance plus its booked entries must equal its closing
    balance. Checked for files holding one statement with both balances (a file of several statements
    does not say which line belongs to which); a statement whose balances cannot be read is a problem too.
    Each is described in words."""
    # A statement (camt.053) always has both balances: one missing or unreadable is said, never passed over.
    unread = [
        f"statement {s.id}: balance continuity not checked: "
        + ("; ".join(s.problems) if s.problems else "its opening or closing balance is missing")
        for s in bank_file.statements
        if s.element == "Stmt" and (s.problems or s.opening_balance_cents is None or s.closing_balance_cents is None)
    ]
    with_balances = [
        s for s in bank_file.statements if s.opening_balance_cents is not None and s.closing_balance_cents is not None
    ]
    if len(bank_file.statements) != 1 or not with_balances:
        return unread
    statement = with_balances[0]
    booked = bank_file.rows.filter(pl.col("status") == "BOOK")
    if booked["amount_cents"].null_count():
        return [*unread, f"statement {statement.id}: balance continuity not checked, some amounts could not be read"]
    signed = booked.select(
        pl.when(pl.col("direction") == "CRDT").then(pl.col("amount_cents")).otherwise(-pl.col("amount_cents")).sum()
    ).item()
    expected = statement.opening_balance_cents + int(signed or 0)
    if expected == statement.closing_balance_cents:
        return unread
    return [
        *unread,
        f"statement {statement.id}: opening balance {statement.opening_balance_cents} cents plus booked entries "
        f"{int(signed or 0)} gives {expected}, but the closing balance is {statement.closing_balance_cents}",
    ]
