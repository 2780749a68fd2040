"""pain.008 writer: SEPA Core direct debits that collect refunds from merchants.

`write_direct_debits` streams the file with `sepa.xml_out` (lxml's `xmlfile`), in memory bounded by the
one file; `build_direct_debits` returns the same as bytes. `reference_direct_debits` builds the same
document with sepaxml (a whole tree in memory, several times slower); it is kept as the reference the
streaming writer is tested and benchmarked against.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from lxml import etree
from sepaxml import SepaDD

from sepa import _pain
from sepa.calendar import is_business_day
from sepa.charset import to_epc
from sepa.creditor_id import creditor_id_problem, normalise_creditor_id
from sepa.iban import normalise_iban
from sepa.ids import with_suffix
from sepa.parties import Party
from sepa.xml_out import Target, Template, document, element, sub_element, to_bytes

VERSIONS = ("pain.008.001.02", "pain.008.001.08")
SEQUENCE_TYPES = ("FRST", "RCUR", "OOFF", "FNAL")  # also the order of the PmtInf blocks in a file

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

# The prepared columns of one transaction, in the order of the row tuples the templates are filled from.
_ROW = ("end_to_end_id", "_amount", "mandate_id", "_signed_on", "_bic", "_name", "_iban", "_remittance", "_cents")
_E2E, _AMOUNT, _MANDATE, _SIGNED_ON, _BIC, _NAME, _IBAN, _REMITTANCE, _CENTS = range(len(_ROW))


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
    return to_bytes(
        write_direct_debits, creditor=creditor, debits=debits, msg_id=msg_id, payment_info_id=payment_info_id,
        collection_date=collection_date, version=version, created_at=created_at,
    )  # fmt: skip


def write_direct_debits(
    target: Target,
    creditor: Party,
    debits: pl.DataFrame,
    *,
    msg_id: str,
    payment_info_id: str,
    collection_date: date,
    version: str,
    created_at: datetime,
) -> None:
    """`build_direct_debits`, streamed to a file name or binary stream `target`.

    Every check on the input runs before the first byte is written. A file name gets the document only once
    it is complete; a stream may hold part of one when this raises."""
    creditor_bic = _check_arguments(
        creditor, msg_id=msg_id, payment_info_id=payment_info_id, collection_date=collection_date, version=version
    )
    _pain.check_frame(debits, DEBIT_COLUMNS, nullable={"bic"})
    _check_mandates(debits, collection_date)
    plan = _plan(debits)
    blocks = plan.group_by("sequence_type", maintain_order=True).agg(count=pl.len(), cents=pl.col("_cents").sum())
    asked = (plan.height, int(plan["_cents"].sum()))
    bic_tag = "BIC" if version == "pain.008.001.02" else "BICFI"
    creditor_name = to_epc(creditor.name, 70)
    creditor_id = normalise_creditor_id(creditor.creditor_id or "")

    header = element("GrpHdr", element("MsgId", text=msg_id), element("CreDtTm", text=_pain.creation_time(created_at)))
    sub_element(header, "NbOfTxs", str(asked[0]))
    sub_element(header, "CtrlSum", _pain.amount_total_text(asked[1]))
    initiator = sub_element(header, "InitgPty")
    sub_element(initiator, "Nm", creditor_name)
    sub_element(sub_element(sub_element(sub_element(initiator, "Id"), "OrgId"), "Othr"), "Id", creditor_id)
    # The block's own elements after its totals, the same in every block but for the sequence type.
    shared = [
        _pain.party("Cdtr", creditor_name),
        _pain.account("CdtrAcct", normalise_iban(creditor.iban)),
        _pain.agent("CdtrAgt", creditor_bic, bic_tag),
        element("ChrgBr", text="SLEV"),
        _scheme_id(creditor_id),
    ]
    templates = {bic: _transaction(bic_tag if bic else None) for bic in (True, False)}

    written_total = (0, 0)
    with document(target, version, "CstmrDrctDbtInitn", namespaces=_pain.NAMESPACES, final_newline=True) as out:
        out.put(header, 2)
        offset = 0
        for sequence_type, count, cents in blocks.iter_rows():
            pmt_inf_id = pmt_inf_id_for(payment_info_id, sequence_type)
            with out.open("PmtInf", 2):
                block_header = [
                    element("PmtInfId", text=pmt_inf_id),
                    element("PmtMtd", text="DD"),
                    element("BtchBookg", text="true"),  # one PmtInf per sequence type and collection date
                    element("NbOfTxs", text=str(count)),
                    element("CtrlSum", text=_pain.amount_total_text(cents)),
                    _payment_type(sequence_type),
                    element("ReqdColltnDt", text=collection_date.isoformat()),
                ]
                _pain.put_all(out, block_header + shared, 3)
                rows = plan.slice(offset, count).select(_ROW)  # the plan is in block order
                written = _pain.write_transactions(
                    out, rows, with_bic=templates[True], without_bic=templates[False], bic=_BIC, cents=_CENTS
                )
                _pain.check_block(pmt_inf_id, (count, cents), written)
            offset += count
            written_total = (written_total[0] + written[0], written_total[1] + written[1])
        _pain.check_file(asked, written_total)


def _check_arguments(
    creditor: Party, *, msg_id: str, payment_info_id: str, collection_date: date, version: str
) -> str | None:
    """Raise ValueError for unusable arguments; returns the creditor's BIC, normalised, or None."""
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
    return creditor_bic


def _check_mandates(debits: pl.DataFrame, collection_date: date) -> None:
    """Raise ValueError for unknown sequence types, unsafe mandate ids and mandates signed after collection."""
    checked = debits.select(
        "end_to_end_id",
        "mandate_id",
        "mandate_signed_on",
        "sequence_type",
        _bad_sequence=~pl.col("sequence_type").is_in(SEQUENCE_TYPES),
        # A mandate reference must match the signed mandate exactly: refused, never transliterated.
        _bad_mandate=~_pain.safe_id("mandate_id"),
        _late=pl.col("mandate_signed_on") > collection_date,
    )
    flags = pl.sum_horizontal(pl.col("_bad_sequence", "_bad_mandate", "_late").cast(pl.Int64))
    count = int(checked.select(flags.sum()).item())
    if not count:
        return
    problems: list[str] = []
    for e2e, mandate_id, signed_on, seq, bad_sequence, bad_mandate, late in (
        checked.filter(flags > 0).head(5).iter_rows()
    ):
        if bad_sequence:
            problems.append(f"{e2e}: sequence_type {seq!r} is not one of {', '.join(SEQUENCE_TYPES)}")
        if bad_mandate:
            problems.append(f"{e2e}: mandate_id {mandate_id!r} is not 1-35 characters of the SEPA identifier set")
        if late:
            problems.append(f"{e2e}: mandate signed on {signed_on}, after the collection date {collection_date}")
    raise ValueError(f"{count} invalid rows: " + "; ".join(problems[:5]))


def _plan(debits: pl.DataFrame) -> pl.DataFrame:
    """The checked rows in writing order (FRST, RCUR, OOFF, FNAL; row order kept within a sequence type) with
    their texts as written, in the columns of `_ROW` plus sequence_type. Raises ValueError for a name or
    remittance with nothing writable (the first such row in writing order, as sepaxml would)."""
    order = {seq: i for i, seq in enumerate(SEQUENCE_TYPES)}
    ordered = debits.sort(pl.col("sequence_type").replace_strict(order, return_dtype=pl.Int8), maintain_order=True)
    plan = ordered.with_columns(
        _signed_on=pl.col("mandate_signed_on").dt.to_string("%Y-%m-%d"),
        _bic=_pain.bic_texts(ordered["bic"]),
        _name=_pain.epc_texts(ordered["name"], 70),
        _iban=_pain.compact_upper(ordered["iban"]),
        _remittance=_pain.epc_texts(ordered["remittance"], 140),
        _cents=pl.col("amount_cents").cast(pl.Int64),
    ).with_columns(_amount=_pain.amount_text(pl.col("_cents")))
    _pain.check_texts(plan, {"_name": ("name", "name"), "_remittance": ("remittance", "remittance")})
    _pain.check_amount_texts(plan["_amount"], plan["_cents"])
    return plan.select(*_ROW, "sequence_type")


def _payment_type(sequence_type: str) -> etree._Element:
    return element(
        "PmtTpInf",
        element("SvcLvl", element("Cd", text="SEPA")),
        element("LclInstrm", element("Cd", text="CORE")),
        element("SeqTp", text=sequence_type),
    )


def _scheme_id(creditor_id: str) -> etree._Element:
    """CdtrSchmeId: the SEPA creditor identifier."""
    other = element("Othr", element("Id", text=creditor_id), element("SchmeNm", element("Prtry", text="SEPA")))
    return element("CdtrSchmeId", element("Id", element("PrvtId", other)))


def _transaction(bic_tag: str | None) -> Template:
    """The DrctDbtTxInf template: the debtor's agent by BIC if `bic_tag` is given, else NOTPROVIDED."""
    tx = element("DrctDbtTxInf")
    fills = [(sub_element(sub_element(tx, "PmtId"), "EndToEndId"), _E2E)]
    fills.append((sub_element(tx, "InstdAmt", Ccy="EUR"), _AMOUNT))
    mandate = sub_element(sub_element(tx, "DrctDbtTx"), "MndtRltdInf")
    fills.append((sub_element(mandate, "MndtId"), _MANDATE))
    fills.append((sub_element(mandate, "DtOfSgntr"), _SIGNED_ON))
    institution = sub_element(sub_element(tx, "DbtrAgt"), "FinInstnId")
    if bic_tag:
        fills.append((sub_element(institution, bic_tag), _BIC))
    else:
        sub_element(sub_element(institution, "Othr"), "Id", _pain.NOT_PROVIDED)
    fills.append((sub_element(sub_element(tx, "Dbtr"), "Nm"), _NAME))
    fills.append((sub_element(sub_element(sub_element(tx, "DbtrAcct"), "Id"), "IBAN"), _IBAN))
    fills.append((sub_element(sub_element(tx, "RmtInf"), "Ustrd"), _REMITTANCE))
    return _pain.template(tx, fills, 3)


def reference_direct_debits(
    creditor: Party,
    debits: pl.DataFrame,
    *,
    msg_id: str,
    payment_info_id: str,
    collection_date: date,
    version: str,
    created_at: datetime,
    validate: bool = False,
) -> bytes:
    """`build_direct_debits` done with sepaxml and finished by `_pain.finish`: the reference the streaming
    writer is compared with. `validate` has sepaxml validate its raw output with xmlschema (slow)."""
    creditor_bic = _check_arguments(
        creditor, msg_id=msg_id, payment_info_id=payment_info_id, collection_date=collection_date, version=version
    )
    _pain.check_frame(debits, DEBIT_COLUMNS, nullable={"bic"})
    _check_mandates(debits, collection_date)

    config = {
        "name": to_epc(creditor.name, 70),
        "IBAN": normalise_iban(creditor.iban),
        "creditor_id": normalise_creditor_id(creditor.creditor_id or ""),
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
    exported = writer.export(validate=validate)
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
