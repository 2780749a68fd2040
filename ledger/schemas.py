"""pandera schemas for every frame that crosses into or out of the ledger."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

# Characters SEPA allows in identifiers (EPC basic Latin without space); at most 35 of them.
SEPA_ID = r"^[A-Za-z0-9/\-?:().,'+]{1,35}$"
# A refund of more than a million euros is an input error, not a refund.
MAX_CENTS = 100_000_000


class MerchantRows(pa.DataFrameModel):
    """merchants.csv after parsing."""

    merchant_id: pl.String = pa.Field(str_matches=SEPA_ID)
    name: pl.String = pa.Field(str_length={"min_value": 1, "max_value": 140})
    iban: pl.String
    bic: pl.String = pa.Field(nullable=True, str_matches=r"^[A-Z0-9]{8}([A-Z0-9]{3})?$")
    funding: pl.String = pa.Field(isin=["own_account", "integrated"])
    mandate_id: pl.String = pa.Field(nullable=True, str_matches=SEPA_ID)
    mandate_signed_on: pl.Date = pa.Field(nullable=True)
    waiting_days: pl.Int64 = pa.Field(ge=0, le=365)
    refund_window_days: pl.Int64 = pa.Field(ge=0, le=3650)
    only_refund_paid: pl.Boolean
    collection: pl.String = pa.Field(isin=["weekly", "twice_weekly", "per_refund"])
    balance_cents: pl.Int64 = pa.Field(ge=0, le=MAX_CENTS * 100)
    pay_on_release: pl.Boolean


class ExcludedIbanRows(pa.DataFrameModel):
    """excluded_ibans.csv: accounts that are never a customer's (carriers, banks' internal, the platform)."""

    iban: pl.String
    owner: pl.String = pa.Field(str_length={"min_value": 1})
    kind: pl.String = pa.Field(isin=["carrier", "bank_internal", "platform"])


class OrderRows(pa.DataFrameModel):
    """orders.csv after parsing."""

    order_id: pl.String = pa.Field(str_matches=SEPA_ID)
    merchant_id: pl.String = pa.Field(str_matches=SEPA_ID)
    customer_name: pl.String = pa.Field(str_length={"min_value": 1, "max_value": 140})
    customer_email: pl.String = pa.Field(nullable=True)
    customer_iban: pl.String = pa.Field(nullable=True)
    amount_cents: pl.Int64 = pa.Field(gt=0, le=MAX_CENTS)
    paid_cents: pl.Int64 = pa.Field(ge=0, le=MAX_CENTS * 10)
    ordered_on: pl.Date
    instalments: pl.Int64 = pa.Field(ge=1, le=48)
    instalments_paid: pl.Int64 = pa.Field(ge=0, le=48)
    refundable: pl.Boolean

    @pa.dataframe_check(error="instalments_paid is more than instalments")
    @classmethod
    def paid_instalments_exist(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("instalments_paid") <= pl.col("instalments"))


class PaymentRows(pa.DataFrameModel):
    """payments.csv: incoming payments not matched to any order."""

    payment_id: pl.String = pa.Field(str_matches=SEPA_ID)
    merchant_id: pl.String = pa.Field(str_matches=SEPA_ID)
    payer_name: pl.String = pa.Field(str_length={"min_value": 1, "max_value": 140})
    payer_iban: pl.String = pa.Field(nullable=True)
    amount_cents: pl.Int64 = pa.Field(gt=0, le=MAX_CENTS)
    received_on: pl.Date


class RefundRows(pa.DataFrameModel):
    """refunds.csv after parsing."""

    refund_ref: pl.String = pa.Field(str_length={"min_value": 1, "max_value": 35})
    merchant_id: pl.String = pa.Field(str_matches=SEPA_ID)
    order_id: pl.String = pa.Field(nullable=True)
    payment_id: pl.String = pa.Field(nullable=True)
    amount_cents: pl.Int64 = pa.Field(gt=0, le=MAX_CENTS)
    requested_on: pl.Date
    reason: pl.String = pa.Field(nullable=True)

    @pa.dataframe_check(error="exactly one of order_id and payment_id must be given")
    @classmethod
    def one_target(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_id").is_null() != pl.col("payment_id").is_null())


class TransferFrame(pa.DataFrameModel):
    """Transfer heads on their way into the ledger."""

    # Unique too: `post_frames` checks that first, naming the id given twice (a million a week: once is enough).
    transfer_id: pl.String
    kind: pl.String
    refund_id: pl.String = pa.Field(nullable=True)
    merchant_id: pl.String = pa.Field(nullable=True)
    memo: pl.String = pa.Field(nullable=True)


class PostingFrame(pa.DataFrameModel):
    """Postings on their way into the ledger: integer cents, EUR."""

    transfer_id: pl.String
    account: pl.String
    amount_cents: pl.Int64
    currency: pl.String = pa.Field(isin=["EUR"])


class RefundView(pa.DataFrameModel):
    """A refund as the ledger shows it to the outside (CLI, assets, reports)."""

    refund_id: pl.String
    refund_ref: pl.String
    merchant_id: pl.String
    order_id: pl.String = pa.Field(nullable=True)
    payment_id: pl.String = pa.Field(nullable=True)
    status: pl.String
    amount_cents: pl.Int64 = pa.Field(ge=0)
    payout_cents: pl.Int64 = pa.Field(ge=0)
    due_on: pl.Date = pa.Field(nullable=True)
    reason: pl.String = pa.Field(nullable=True)


class BankLinesIn(pa.DataFrameModel):
    """Bank lines handed to reconciliation: one per transaction, with each return reason's action."""

    message_type: pl.String = pa.Field(nullable=True)
    message_id: pl.String = pa.Field(nullable=True)
    account_iban: pl.String = pa.Field(nullable=True)
    entry_ref: pl.String = pa.Field(nullable=True)
    booking_date: pl.Date = pa.Field(nullable=True)
    value_date: pl.Date = pa.Field(nullable=True)
    status: pl.String = pa.Field(nullable=True)
    direction: pl.String = pa.Field(nullable=True, isin=["CRDT", "DBIT"])
    amount_cents: pl.Int64 = pa.Field(nullable=True, ge=0)
    currency: pl.String = pa.Field(nullable=True)
    reversal: pl.Boolean = pa.Field(nullable=True)
    bank_tx_code: pl.String = pa.Field(nullable=True)
    end_to_end_id: pl.String = pa.Field(nullable=True)
    payment_info_id: pl.String = pa.Field(nullable=True)
    return_reason: pl.String = pa.Field(nullable=True)
    return_info: pl.String = pa.Field(nullable=True)
    charges_cents: pl.Int64 = pa.Field(nullable=True, ge=0)
    counterparty_name: pl.String = pa.Field(nullable=True)
    counterparty_iban: pl.String = pa.Field(nullable=True)
    row_problem: pl.String = pa.Field(nullable=True)
    reason_action: pl.String = pa.Field(nullable=True)
    reason_text: pl.String = pa.Field(nullable=True)
