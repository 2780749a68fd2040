"""The chart of accounts. Debits are positive, credits negative; every transfer sums to zero.

- `platform:bank` is the platform's bank account (an asset: positive when it holds money).
- `customers:payable` is what the platform owes customers for accepted refunds (a liability: negative).
- `merchant:<id>:receivable` is what an own-account merchant owes for its customers' refunds.
- `merchant:<id>:balance` is an integrated merchant's money the platform holds (a liability: negative).
"""

from __future__ import annotations

PLATFORM_BANK = "platform:bank"
CUSTOMER_PAYABLE = "customers:payable"
CUSTOMER_INSTALMENTS = "customers:instalments_receivable"
# Money on its way: direct debits released to the bank and not yet booked, credit transfers likewise.
COLLECTIONS_IN_TRANSIT = "platform:collections_in_transit"
PAYOUTS_IN_TRANSIT = "platform:payouts_in_transit"
PLATFORM_FEES = "platform:fee_income"
# What finance ops book by hand when resolving exceptions: the bank's charges, money that arrived and is
# owed back to whoever sent it (a payment return), and amounts given up.
BANK_CHARGES = "platform:bank_charges"
TO_SEND_BACK = "platform:to_send_back"
WRITE_OFFS = "platform:write_offs"


def merchant_receivable(merchant_id: str) -> str:
    """What an own-account merchant owes the platform for refunds paid on its behalf."""
    return f"merchant:{merchant_id}:receivable"


def merchant_balance(merchant_id: str) -> str:
    """An integrated merchant's balance held by the platform (credit-normal)."""
    return f"merchant:{merchant_id}:balance"


def merchant_cancelled_instalments(merchant_id: str) -> str:
    """Instalments the merchant gives up when a refund cancels a customer's open instalments."""
    return f"merchant:{merchant_id}:cancelled_instalments"
