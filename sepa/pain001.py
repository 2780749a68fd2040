"""pain.001 writer: SEPA credit transfers that pay refunds out to customers.

`write_credit_transfers` streams the file with `sepa.xml_out` (lxml's `xmlfile`): about a second per
100,000 transfers, in memory bounded by the one file. `build_credit_transfers` returns the same as bytes.
`reference_credit_transfers` builds the same document with sepaxml (a whole tree in memory, several times
slower); it is kept as the reference the streaming writer is tested and benchmarked against.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from sepaxml import SepaTransfer

from sepa import _pain
from sepa.calendar import is_business_day
from sepa.charset import to_epc
from sepa.iban import normalise_iban
from sepa.parties import Party
from sepa.xml_out import Target, Template, document, element, sub_element, to_bytes

VERSIONS = ("pain.001.001.03", "pain.001.001.09")

TRANSFER_COLUMNS: dict[str, type[pl.DataType]] = {
    "end_to_end_id": pl.String,
    "amount_cents": pl.Int64,  # any integer type
    "name": pl.String,
    "iban": pl.String,
    "bic": pl.String,
    "remittance": pl.String,
}

# The prepared columns of one transaction, in the order of the row tuples the templates are filled from.
_ROW = ("end_to_end_id", "_amount", "_bic", "_name", "_iban", "_remittance", "_cents")
_E2E, _AMOUNT, _BIC, _NAME, _IBAN, _REMITTANCE, _CENTS = range(len(_ROW))


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
    return to_bytes(
        write_credit_transfers, debtor=debtor, transfers=transfers, msg_id=msg_id, payment_info_id=payment_info_id,
        execution_date=execution_date, version=version, created_at=created_at,
    )  # fmt: skip


def write_credit_transfers(
    target: Target,
    debtor: Party,
    transfers: pl.DataFrame,
    *,
    msg_id: str,
    payment_info_id: str,
    execution_date: date,
    version: str,
    created_at: datetime,
) -> None:
    """`build_credit_transfers`, streamed to a file name or binary stream `target`.

    Every check on the input runs before the first byte is written. A file name gets the document only once
    it is complete; a stream may hold part of one when this raises."""
    _check_arguments(
        debtor, msg_id=msg_id, payment_info_id=payment_info_id, execution_date=execution_date, version=version
    )
    _pain.check_frame(transfers, TRANSFER_COLUMNS, nullable={"bic"})
    plan = _plan(transfers)
    asked = (plan.height, int(plan["_cents"].sum()))  # NbOfTxs and CtrlSum of the file and of its one block
    v03 = version == "pain.001.001.03"
    bic_tag = "BIC" if v03 else "BICFI"
    debtor_name = to_epc(debtor.name, 70)

    header = element("GrpHdr", element("MsgId", text=msg_id), element("CreDtTm", text=_pain.creation_time(created_at)))
    sub_element(header, "NbOfTxs", str(asked[0]))
    sub_element(header, "CtrlSum", _pain.amount_total_text(asked[1]))
    header.append(_pain.party("InitgPty", debtor_name))
    day = execution_date.isoformat()
    requested = element("ReqdExctnDt", text=day) if v03 else element("ReqdExctnDt", element("Dt", text=day))
    block_header = [
        element("PmtInfId", text=payment_info_id),
        element("PmtMtd", text="TRF"),
        element("BtchBookg", text="true"),  # one PmtInf per execution date, i.e. one per file
        element("NbOfTxs", text=str(asked[0])),
        element("CtrlSum", text=_pain.amount_total_text(asked[1])),
        element("PmtTpInf", element("SvcLvl", element("Cd", text="SEPA"))),
        requested,
        _pain.party("Dbtr", debtor_name),
        _pain.account("DbtrAcct", normalise_iban(debtor.iban)),
        _pain.agent("DbtrAgt", _pain.normalise_bic(debtor.bic), bic_tag),
        element("ChrgBr", text="SLEV"),
    ]
    templates = {bic: _transaction(bic_tag if bic else None) for bic in (True, False)}

    with document(target, version, "CstmrCdtTrfInitn", namespaces=_pain.NAMESPACES, final_newline=True) as out:
        out.put(header, 2)
        with out.open("PmtInf", 2):
            _pain.put_all(out, block_header, 3)
            written = _pain.write_transactions(
                out, plan, with_bic=templates[True], without_bic=templates[False], bic=_BIC, cents=_CENTS
            )
            _pain.check_block(payment_info_id, asked, written)
        _pain.check_file(asked, written)


def _check_arguments(debtor: Party, *, msg_id: str, payment_info_id: str, execution_date: date, version: str) -> None:
    """Raise ValueError for an unknown version, a non-business day, unsafe ids or an unusable debtor."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}, got {version!r}")
    if not is_business_day(execution_date):
        raise ValueError(f"execution date {execution_date} is not a TARGET2 business day")
    _pain.check_ids(msg_id=msg_id, payment_info_id=payment_info_id)
    _pain.check_party(debtor, "debtor")


def _plan(transfers: pl.DataFrame) -> pl.DataFrame:
    """The checked rows with their texts as written, in the columns of `_ROW`. Raises ValueError for a name or
    remittance with nothing writable (the first such row, as the reference writer would)."""
    plan = transfers.with_columns(
        _bic=_pain.bic_texts(transfers["bic"]),
        _name=_pain.epc_texts(transfers["name"], 70),
        _iban=_pain.compact_upper(transfers["iban"]),
        _remittance=_pain.epc_texts(transfers["remittance"], 140),
        _cents=pl.col("amount_cents").cast(pl.Int64),
    ).with_columns(_amount=_pain.amount_text(pl.col("_cents")))
    _pain.check_texts(plan, {"_name": ("name", "name"), "_remittance": ("remittance", "remittance")})
    _pain.check_amount_texts(plan["_amount"], plan["_cents"])
    return plan.select(_ROW)


def _transaction(bic_tag: str | None) -> Template:
    """The CdtTrfTxInf template, with a CdtrAgt if `bic_tag` is given (sepaxml leaves out an unknown one)."""
    tx = element("CdtTrfTxInf")
    fills = [(sub_element(sub_element(tx, "PmtId"), "EndToEndId"), _E2E)]
    fills.append((sub_element(sub_element(tx, "Amt"), "InstdAmt", Ccy="EUR"), _AMOUNT))
    if bic_tag:
        fills.append((sub_element(sub_element(sub_element(tx, "CdtrAgt"), "FinInstnId"), bic_tag), _BIC))
    fills.append((sub_element(sub_element(tx, "Cdtr"), "Nm"), _NAME))
    fills.append((sub_element(sub_element(sub_element(tx, "CdtrAcct"), "Id"), "IBAN"), _IBAN))
    fills.append((sub_element(sub_element(tx, "RmtInf"), "Ustrd"), _REMITTANCE))
    return _pain.template(tx, fills, 3)


def reference_credit_transfers(
    debtor: Party,
    transfers: pl.DataFrame,
    *,
    msg_id: str,
    payment_info_id: str,
    execution_date: date,
    version: str,
    created_at: datetime,
    validate: bool = False,
) -> bytes:
    """`build_credit_transfers` done with sepaxml and finished by `_pain.finish`: the reference the streaming
    writer is compared with. `validate` has sepaxml validate its raw output with xmlschema (slow)."""
    _check_arguments(
        debtor, msg_id=msg_id, payment_info_id=payment_info_id, execution_date=execution_date, version=version
    )
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
    exported = writer.export(validate=validate)
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
