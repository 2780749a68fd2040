"""The parties on our side of a SEPA file: the debtor of a payout file, the creditor of a direct-debit file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Party:
    """An account holder as written into a file's header and payment blocks.

    `bic` is optional (IBAN-only SEPA); `creditor_id` is the SEPA creditor identifier, needed to collect
    direct debits (pain.008) only.
    """

    name: str
    iban: str
    bic: str | None = None
    creditor_id: str | None = None
