"""pain.008 writer: SEPA Core direct debits that collect refunds from merchants, built with sepaxml."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from sepaxml import SepaDD

from sepa import _pain
from sepa.calendar import is_business_day
from sepa.charset import to_epc
from sepa.creditor_id import creditor_id_problem, normalise_creditor_id
from sepa.iban import normalise_iban
from sepa.ids import is_safe_id, with_suffix
from sepa.parties import Party

VERSIONS = ("pain.008.001.02", "pain.008.001.08")
SEQUENCE_TYPES = ("FRST", "RCUR", "OOFF", "FNAL")

DEBIT_COLUMNS: dict[str, type[pl.DataType]] = {
    "end_to_end_id": pl.String,
    "amount_cents": pl.Int64,  # any integer type
    "name": pl.String,
    "iban": pl.String,
    "bic": pl.String,
    "mandate_id": pl.String,
    "mandate_signed_on": pl.Date,
    "sequence_type": pl.String,
    "remittance": pl.String,
}


def pmt_inf_id_for(payment_info_id: str, sequence_type: str) -> str:
    """The PmtInfId of the block of one sequence type: `PO-2024W21-0001-1-FRST` (at most 35 characters)."""
    return with_suffix(payment_info_id, sequence_type)


def build_direct_debits(
    creditor: Party,
    debits: pl.DataFrame,
    *,
    msg_id: str,
    payment_info_id: str,
    collection_date: date,
    version: str,
    created_at: datetime,
) -> bytes:
    """A pain.008 SEPA Core file collecting each row of `debits` for `creditor` on `collection_date`.

    `debits` has end_to_end_id, amount_cents (integer cents), name, iban, bic (nullable), mandate_id,
    mandate_signed_on (date), sequence_type (FRST, RCUR, OOFF, FNAL) and remittance. Each sequence type gets its
    own PmtInf block (FRST first), named `pmt_inf_id_for(payment_info_id, sequence_type)`. The creditor
    identifier comes from `creditor.creditor_id`. Raises ValueError on unusable input; NbOfTxs and CtrlSum are
    checked against the rows.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}, got {version!r}")
    if not is_business_day(collection_date):
        raise ValueError(f"collection date {collection_date} is not a TARGET2 business day")
    _pain.check_ids(msg_id=msg_id, payment_info_id=payment_info_id)
    _pain.check_party(creditor, "creditor")
    if creditor.creditor_id is None:
        raise ValueError("creditor has no SEPA creditor identifier")
    problem = creditor_id_problem(creditor.creditor_id)
    if problem:
        raise ValueError(problem)
    creditor_bic = _pain.normalise_bic(creditor.bic)
    if version == "pain.008.001.02" and not creditor_bic:
        raise ValueError("pain.008.001.02 needs the creditor's BIC (sepaxml refuses it without one)")
    _pain.check_frame(debits, DEBIT_COLUMNS, nullable={"bic"})
    _check_mandates(debits, collection_date)

    config = {
        "name": to_epc(creditor.name, 70),
        "IBAN": normalise_iban(creditor.iban),
        "creditor_id": normalise_creditor_id(creditor.creditor_id),
        "currency": "EUR",
        "batch": True,  # one PmtInf per sequence type and collection date
        "instrument": "CORE",
    }
    if creditor_bic:
        config["BIC"] = creditor_bic
    writer = SepaDD(config, schema=version, clean=False)  # clean=False: texts go through to_epc instead
    # FRST before RCUR (sepaxml orders the blocks by first appearance); row order is kept within a block.
    order = {seq: i for i, seq in enumerate(SEQUENCE_TYPES)}
    ordered = debits.with_row_index("_row").sort(
        pl.col("sequence_type").replace_strict(order, return_dtype=pl.Int8), "_row"
    )
    for row in ordered.iter_rows(named=True):
        e2e = row["end_to_end_id"]
        payment = {
            "name": _pain.epc_text(row["name"], 70, "name", e2e),
            "IBAN": normalise_iban(row["iban"]),
            "amount": int(row["amount_cents"]),  # sepaxml takes integer cents
            "type": row["sequence_type"],
            "collection_date": collection_date,
            "mandate_id": row["mandate_id"],
            "mandate_date": row["mandate_signed_on"],
            "description": _pain.epc_text(row["remittance"], 140, "remittance", e2e),
            "endtoend_id": e2e,
        }
        _pain.add_payment(writer, payment, row["bic"])
    exported = writer.export(validate=False)  # validated with sepa.xsd by the caller, much faster
    return _pain.finish(
        exported,
        tx_tag="DrctDbtTxInf",
        msg_id=msg_id,
        created_at=created_at,
        pmt_inf_id=lambda block, ns: pmt_inf_id_for(payment_info_id, block.findtext(f"{ns}PmtTpInf/{ns}SeqTp") or ""),
        expected_count=debits.height,
        expected_cents=int(debits["amount_cents"].sum()),
        expected_date=collection_date,
        date_path="ReqdColltnDt",
    )


def _check_mandates(debits: pl.DataFrame, collection_date: date) -> None:
    """Raise ValueError for unknown sequence types, unsafe mandate ids and mandates signed after collection."""
    problems: list[str] = []
    for e2e, mandate_id, signed_on, seq in debits.select(
        "end_to_end_id", "mandate_id", "mandate_signed_on", "sequence_type"
    ).iter_rows():
        if seq not in SEQUENCE_TYPES:
            problems.append(f"{e2e}: sequence_type {seq!r} is not one of {', '.join(SEQUENCE_TYPES)}")
        # A mandate reference must match the signed mandate exactly: refused, never transliterated.
        if not is_safe_id(mandate_id):
            problems.append(f"{e2e}: mandate_id {mandate_id!r} is not 1-35 characters of the SEPA identifier set")
        if signed_on > collection_date:
            problems.append(f"{e2e}: mandate signed on {signed_on}, after the collection date {collection_date}")
    if problems:
        raise ValueError(f"{len(problems)} invalid rows: " + "; ".join(problems[:5]))
