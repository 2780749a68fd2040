"""pain.001 writer: SEPA credit transfers that pay refunds out to customers, built with sepaxml."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from sepaxml import SepaTransfer

from sepa import _pain
from sepa.calendar import is_business_day
from sepa.charset import to_epc
from sepa.iban import normalise_iban
from sepa.parties import Party

VERSIONS = ("pain.001.001.03", "pain.001.001.09")

TRANSFER_COLUMNS: dict[str, type[pl.DataType]] = {
    "end_to_end_id": pl.String,
    "amount_cents": pl.Int64,  # any integer type
    "name": pl.String,
    "iban": pl.String,
    "bic": pl.String,
    "remittance": pl.String,
}


def build_credit_transfers(
    debtor: Party,
    transfers: pl.DataFrame,
    *,
    msg_id: str,
    payment_info_id: str,
    execution_date: date,
    version: str,
    created_at: datetime,
) -> bytes:
    """A pain.001 file paying each row of `transfers` from `debtor`'s account, in one PmtInf block executed on
    `execution_date` (a TARGET2 business day).

    `transfers` has end_to_end_id, amount_cents (integer cents), name, iban, bic (nullable) and remittance.
    Names and remittance texts are transliterated into the EPC set (Nm at most 70, Ustrd at most 140
    characters). MsgId, PmtInfId and CreDtTm are the given ones, so the same inputs give the same bytes.
    Raises ValueError on unusable input; the file's NbOfTxs and CtrlSum are checked against the rows.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}, got {version!r}")
    if not is_business_day(execution_date):
        raise ValueError(f"execution date {execution_date} is not a TARGET2 business day")
    _pain.check_ids(msg_id=msg_id, payment_info_id=payment_info_id)
    _pain.check_party(debtor, "debtor")
    _pain.check_frame(transfers, TRANSFER_COLUMNS, nullable={"bic"})

    config = {
        "name": to_epc(debtor.name, 70),
        "IBAN": normalise_iban(debtor.iban),
        "currency": "EUR",
        "batch": True,  # one PmtInf per execution date, i.e. one per file
    }
    debtor_bic = _pain.normalise_bic(debtor.bic)
    if debtor_bic:
        config["BIC"] = debtor_bic
    # clean=False: sepaxml's own cleaning turns ü into u and keeps &; texts go through to_epc instead.
    writer = SepaTransfer(config, schema=version, clean=False)
    for row in transfers.iter_rows(named=True):
        e2e = row["end_to_end_id"]
        payment = {
            "name": _pain.epc_text(row["name"], 70, "name", e2e),
            "IBAN": normalise_iban(row["iban"]),
            "amount": int(row["amount_cents"]),  # sepaxml takes integer cents
            "execution_date": execution_date,
            "description": _pain.epc_text(row["remittance"], 140, "remittance", e2e),
            "endtoend_id": e2e,
        }
        _pain.add_payment(writer, payment, row["bic"])
    # validate=False: sepaxml validates with the slow pure-Python xmlschema; callers validate with sepa.xsd.
    exported = writer.export(validate=False)
    return _pain.finish(
        exported,
        tx_tag="CdtTrfTxInf",
        msg_id=msg_id,
        created_at=created_at,
        pmt_inf_id=lambda _block, _ns: payment_info_id,
        expected_count=transfers.height,
        expected_cents=int(transfers["amount_cents"].sum()),
        expected_date=execution_date,
        date_path="ReqdExctnDt" if version == "pain.001.001.03" else "ReqdExctnDt/Dt",
    )
