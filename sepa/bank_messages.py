"""The messages a bank sends back, written for the sandbox bank that closes the loop in demos and tests.

The sandbox bank reads the platform's released payment files with `read_payment_file` (our pain.001 credit
transfers and pain.008 direct debits), decides elsewhere which transactions fail, and answers with:

- `build_pain002`: a customer payment status report (pain.002.001.03 / .10): group status ACCP, PART or
  RJCT, one OrgnlPmtInfAndSts per payment information, one TxInfAndSts per rejected transaction;
- `build_camt054`: a debit/credit notification (camt.054.001.02 / .08); rows sharing a `batch` are booked
  as one entry (batch booking) with a TxDtls per transaction;
- `build_camt053`: a daily statement (camt.053.001.02 / .08) with opening and closing booked balances.

Amounts come in as integer cents and go out as decimal text with two decimals; no float is involved.
Identifiers and timestamps are the caller's, so the same input gives the same bytes.

Every document is streamed with the toolkit of `sepa.xml_out` (`lxml.etree.xmlfile` underneath):
`write_pain002`, `write_camt054` and `write_camt053` write to a file name or a binary stream in memory
bounded by the input frame (a million transactions are written without building a tree); the `build_*`
functions return the same document as bytes. Elements that repeat (TxDtls, Ntry, TxInfAndSts) are built
once per shape as an indented template whose texts are refilled for each row, in the document's namespace
without an `xmlns` repeated on every transaction (the tests validate every version against its XSD).
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import polars as pl
from lxml import etree

from sepa.iban import normalise_iban
from sepa.xml_out import Out, Target, Template, document, to_bytes
from sepa.xml_out import element as _element
from sepa.xml_out import sub_element as _add

PAIN002_VERSIONS = ("pain.002.001.03", "pain.002.001.10")
CAMT054_VERSIONS = ("camt.054.001.02", "camt.054.001.08")
CAMT053_VERSIONS = ("camt.053.001.02", "camt.053.001.08")
PAYMENT_FILE_TYPES = ("pain.001.001.03", "pain.001.001.09", "pain.008.001.02", "pain.008.001.08")  # tested ones

CURRENCY = "EUR"
NOT_PROVIDED = "NOTPROVIDED"  # the EPC's EndToEndId when the originator gave none

# One row per transaction of a payment file, as `read_payment_file` returns them.
PAYMENT_FILE_COLUMNS: dict[str, pl.DataType] = {
    "payment_info_id": pl.String(),
    "end_to_end_id": pl.String(),
    "amount_cents": pl.Int64(),
    "requested_date": pl.Date(),
    "counterparty_name": pl.String(),
    "counterparty_iban": pl.String(),
    "counterparty_bic": pl.String(),
    "mandate_id": pl.String(),
    "mandate_signed_on": pl.Date(),
    "sequence_type": pl.String(),
    "remittance": pl.String(),
}

# `rejected` of build_pain002: every column required except reason_info (StsRsnInf/AddtlInf, optional).
REJECTED_COLUMNS: dict[str, pl.DataType] = {
    "payment_info_id": pl.String(),
    "end_to_end_id": pl.String(),
    "amount_cents": pl.Int64(),
    "reason_code": pl.String(),
    "reason_info": pl.String(),
}
_REJECTED_REQUIRED = ("payment_info_id", "end_to_end_id", "amount_cents", "reason_code")
_ORIGINAL_COLUMNS: dict[str, pl.DataType] = {
    "payment_info_id": pl.String(),
    "end_to_end_id": pl.String(),
    "amount_cents": pl.Int64(),
}

# `entries` of build_camt054 and build_camt053: one row per transaction. The required columns are listed in
# _ENTRY_REQUIRED; the others may be null or left out (reversal then means False).
ENTRY_COLUMNS: dict[str, pl.DataType] = {
    "entry_ref": pl.String(),
    "booking_date": pl.Date(),
    "value_date": pl.Date(),
    "direction": pl.String(),  # CRDT or DBIT, seen from the account
    "amount_cents": pl.Int64(),  # positive: the amount booked
    "bank_tx_code": pl.String(),  # PMNT/ICDT/ESCT, PMNT/ICDT/RRTN, PMNT/IDDT/ESDD, PMNT/IDDT/UPDD ...
    "reversal": pl.Boolean(),
    "end_to_end_id": pl.String(),
    "payment_info_id": pl.String(),
    "msg_id": pl.String(),  # MsgId of the original payment file
    "mandate_id": pl.String(),
    "counterparty_name": pl.String(),
    "counterparty_iban": pl.String(),
    "return_reason": pl.String(),
    "return_info": pl.String(),
    "charges_cents": pl.Int64(),
    "original_amount_cents": pl.Int64(),
    "remittance": pl.String(),
    "batch": pl.String(),
}
_ENTRY_REQUIRED = ("entry_ref", "booking_date", "value_date", "direction", "amount_cents", "bank_tx_code")
# Rows booked as one entry must agree on these.
_ENTRY_SHARED = ("direction", "booking_date", "value_date", "bank_tx_code", "reversal")
# What a TxDtls holds besides its fixed parts: bit i of the plan's `_shape` is set when _SHAPE_BITS[i] is true
# (the counterparty is the debtor, or the column is not null). Rows of one shape share one template.
_SHAPE_BITS = (
    "counterparty_is_debtor", "msg_id", "payment_info_id", "mandate_id", "original_amount_cents", "charges_cents",
    "counterparty_name", "counterparty_iban", "remittance", "return_reason", "return_info",
)  # fmt: skip
# The plan's columns the writer reads.
_WRITER_COLUMNS = (
    "_first", "batch", "reversal", "_shape", "direction", "entry_ref", "_sum_amt", "_bookg", "_val", "_domn",
    "_fmly", "_sub", "_btch_msg_id", "_btch_pmt_inf_id", "_n", "msg_id", "payment_info_id", "_e2e", "mandate_id",
    "_amt", "_instd", "_chrg", "counterparty_name", "counterparty_iban", "remittance", "return_reason", "return_info",
)  # fmt: skip
# Sub-families of returns and reversals: the related parties are those of the original payment.
RETURN_SUB_FAMILIES = frozenset({"RRTN", "UPDD", "PRDD", "RPCR"})

_MAX_PROBLEMS_SHOWN = 5
_SAFE_PARSING = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
_SLICE_ROWS = 20_000
_CODE_RE = r"^[A-Z0-9]{1,4}$"
_BANK_TX_CODE_RE = r"^[A-Z0-9]{1,4}/[A-Z0-9]{1,4}/[A-Z0-9]{1,4}$"
_IBAN_RE = r"^[A-Z]{2}[0-9]{2}[A-Za-z0-9]{1,30}$"
_PAYMENT_TYPE_RE = re.compile(r"pain\.00[18]\.\d{3}\.\d{2}")
_NAMESPACE_TYPE_RE = re.compile(r"(pain\.00[18]\.\d{3}\.\d{2})")


# ---------------------------------------------------------------------------------------------------------
# Reading our own payment files
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFileContent:
    """One of our payment files as the bank sees it.

    `message_type` is e.g. `pain.001.001.03`; `account_iban` is our own account (the debtor's of a pain.001,
    the creditor's of a pain.008); `transactions` has one row per transaction with the columns of
    `PAYMENT_FILE_COLUMNS` (counterparty = creditor of a pain.001, debtor of a pain.008; mandate and
    sequence type only for pain.008).
    """

    message_type: str
    msg_id: str
    account_iban: str
    transactions: pl.DataFrame

    @property
    def kind(self) -> str:
        """`pain.001` (credit transfers) or `pain.008` (direct debits)."""
        return self.message_type[:8]


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


@lru_cache(maxsize=256)
def _qualified(path: str, namespace: str | None) -> str:
    """`Amt/InstdAmt` -> `{ns}Amt/{ns}InstdAmt` (unchanged without a namespace)."""
    return path if namespace is None else "/".join(f"{{{namespace}}}{part}" for part in path.split("/"))


@lru_cache(maxsize=16)
def _qualified_names(names: tuple[str, ...], namespace: str | None) -> tuple[str, ...]:
    return tuple(_qualified(name, namespace) for name in names)


class _Fields:
    """Stripped texts and attributes under one element by local-name path (`Amt/InstdAmt`), in the namespace
    of the document's root, whichever it is, or none."""

    __slots__ = ("element", "namespace")

    def __init__(self, element: etree._Element, namespace: str | None) -> None:
        self.element = element
        self.namespace = namespace

    def get(self, path: str) -> str | None:
        """The text at `path`, or None when there is no such element or it is empty."""
        text = self.element.findtext(_qualified(path, self.namespace))
        return (text.strip() or None) if text else None

    def has(self, path: str) -> bool:
        return self.element.find(_qualified(path, self.namespace)) is not None

    def attribute(self, path: str, name: str) -> str | None:
        found = self.element.find(_qualified(path, self.namespace))
        return None if found is None else found.get(name)


# The leaves of a transaction that `read_payment_file` reads.
_TRANSACTION_LEAVES = ("EndToEndId", "InstdAmt", "Nm", "IBAN", "BIC", "BICFI", "MndtId", "DtOfSgntr", "Ustrd")


class _Leaves(_Fields):
    """`_Fields` for a transaction, found in one pass over its subtree: the elements with the given local
    names (filtered by lxml), keyed by their path below the transaction (the first of each path)."""

    __slots__ = ("found",)

    def __init__(self, element: etree._Element, namespace: str | None, names: tuple[str, ...]) -> None:
        super().__init__(element, namespace)
        self.found: dict[str, etree._Element] = {}
        for leaf in element.iter(*_qualified_names(names, namespace)):
            path = _local(leaf.tag)
            up = leaf.getparent()
            while up is not None and up is not element:
                path = f"{_local(up.tag)}/{path}"
                up = up.getparent()
            self.found.setdefault(path, leaf)

    def get(self, path: str) -> str | None:
        leaf = self.found.get(path)
        text = None if leaf is None else leaf.text
        return (text.strip() or None) if text else None

    def has(self, path: str) -> bool:
        return path in self.found

    def attribute(self, path: str, name: str) -> str | None:
        leaf = self.found.get(path)
        return None if leaf is None else leaf.get(name)


def _read_cents(text: str | None, what: str) -> int:
    """`'1234.5'` -> 123450 exactly; ValueError for anything else (no floats, at most two decimals)."""
    try:
        cents = Decimal((text or "").strip()) * 100
    except InvalidOperation as exc:
        raise ValueError(f"{what}: amount {text!r} is not a number") from exc
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValueError(f"{what}: amount {text!r} is not a whole number of cents")
    return int(cents)


def _read_date(text: str | None, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not a date") from exc


@dataclass
class _Block:
    """The header of the PmtInf being read."""

    element: etree._Element
    payment_info_id: str
    requested_date: date | None
    sequence_type: str | None
    own_iban: str | None
    declared_count: int | None
    declared_cents: int | None
    dated_by_dt: bool
    count: int = 0
    cents: int = 0


def read_payment_file(data: bytes) -> PaymentFileContent:
    """Read one of our pain.001 (.03, .09) or pain.008 (.02, .08) files into its transactions.

    Elements are read in the namespace the root declares, whichever it is, or none (the version then comes
    from the structure: ReqdExctnDt/Dt means pain.001.001.09, BICFI means pain.008.001.08). The parser never loads a
    DTD, expands an entity or touches the network, and a DOCTYPE is refused. The file is streamed: each
    transaction is released once read. NbOfTxs and CtrlSum of the group header and of each PmtInf are
    checked against the transactions. Raises ValueError for anything that is not such a file.
    """
    namespace, kind = _sniff(data)
    content: dict[str, list[Any]] = {name: [] for name in PAYMENT_FILE_COLUMNS}
    header: dict[str, str | None] = {}
    own_ibans: set[str] = set()
    block: _Block | None = None
    total_count = total_cents = 0
    saw_dt_date = False

    # Only these elements reach Python (`{*}` matches any namespace or none; the filtering is lxml's).
    tags = ["{*}GrpHdr", "{*}PmtInf", "{*}CdtTrfTxInf", "{*}DrctDbtTxInf"]
    events = etree.iterparse(io.BytesIO(data), events=("end",), tag=tags, **_SAFE_PARSING)
    try:
        for _, element in events:
            local = _local(element.tag)
            if local == "GrpHdr":
                fields = _Fields(element, namespace)
                header = {name: fields.get(name) for name in ("MsgId", "NbOfTxs", "CtrlSum")}
            elif local in ("CdtTrfTxInf", "DrctDbtTxInf"):
                parent = element.getparent()
                if block is None or block.element is not parent:
                    block = _block_header(parent, namespace)
                    own_ibans.add(block.own_iban or "")
                    saw_dt_date = saw_dt_date or block.dated_by_dt
                leaves = _Leaves(element, namespace, _TRANSACTION_LEAVES)
                cents = _transaction_row(leaves, block, kind, content)
                block.count += 1
                block.cents += cents
                _release(element)
            elif local == "PmtInf":
                if block is None or block.element is not element:
                    raise ValueError(f"PmtInf at line {element.sourceline} has no transactions")
                _check_totals(f"PmtInf {block.payment_info_id}", block.declared_count, block.declared_cents, block)
                total_count += block.count
                total_cents += block.cents
                block = None
                _release(element)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from exc

    msg_id = header.get("MsgId")
    if msg_id is None:
        raise ValueError("not a pain.001 or pain.008 file: no GrpHdr/MsgId")
    if total_count == 0:
        raise ValueError("the file holds no transactions")
    count_text, sum_text = header.get("NbOfTxs") or "", header.get("CtrlSum")
    declared_count = int(count_text) if count_text.isdigit() else None
    declared_cents = _read_cents(sum_text, "GrpHdr/CtrlSum") if sum_text else None
    if declared_count is not None and declared_count != total_count:
        raise ValueError(f"GrpHdr/NbOfTxs says {declared_count}, the file holds {total_count} transactions")
    if declared_cents is not None and declared_cents != total_cents:
        raise ValueError(f"GrpHdr/CtrlSum says {declared_cents} cents, the transactions add up to {total_cents}")
    if len(own_ibans) != 1 or "" in own_ibans:
        raise ValueError(f"the payment blocks name {len(own_ibans)} own accounts; one IBAN expected")

    match = _NAMESPACE_TYPE_RE.search(namespace or "")
    if match and match.group(1).startswith(kind):
        message_type = match.group(1)
    elif kind == "pain.001":
        message_type = "pain.001.001.09" if saw_dt_date else "pain.001.001.03"
    else:
        message_type = "pain.008.001.08" if re.search(rb"<(?:\w+:)?BICFI>", data) else "pain.008.001.02"
    frame = pl.DataFrame(content, schema=PAYMENT_FILE_COLUMNS)
    return PaymentFileContent(message_type, msg_id, own_ibans.pop(), frame)


def _sniff(data: bytes) -> tuple[str | None, str]:
    """(namespace, `pain.001` or `pain.008`) from the root and message elements; refuses a DOCTYPE."""
    seen: list[etree._Element] = []
    try:
        for _, element in etree.iterparse(io.BytesIO(data), events=("start",), **_SAFE_PARSING):
            if not seen:
                info = element.getroottree().docinfo
                if info.doctype or info.internalDTD is not None:
                    raise ValueError("the document has a DOCTYPE; DTDs and entities are refused")
            seen.append(element)
            if len(seen) == 2:
                break
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from exc
    if len(seen) < 2:
        raise ValueError("not a pain.001 or pain.008 file: no message element")
    local = _local(seen[1].tag)
    kind = {"CstmrCdtTrfInitn": "pain.001", "CstmrDrctDbtInitn": "pain.008"}.get(local)
    if kind is None:
        raise ValueError(f"<{local}> is not a pain.001 or pain.008 message")
    return etree.QName(seen[0]).namespace, kind


def _block_header(pmt_inf: etree._Element | None, namespace: str | None) -> _Block:
    """The PmtInf's own fields, read at the end of its first transaction (the later ones are not parsed yet,
    so the walk covers the block's header and one transaction)."""
    if pmt_inf is None or _local(pmt_inf.tag) != "PmtInf":
        raise ValueError("a transaction outside a PmtInf block")
    fields = _Fields(pmt_inf, namespace)
    pmt_inf_id = fields.get("PmtInfId")
    if not pmt_inf_id:
        raise ValueError(f"PmtInf at line {pmt_inf.sourceline} has no PmtInfId")
    date_text = fields.get("ReqdExctnDt/Dt") or fields.get("ReqdExctnDt") or fields.get("ReqdColltnDt")
    iban = fields.get("DbtrAcct/Id/IBAN") or fields.get("CdtrAcct/Id/IBAN")
    count = fields.get("NbOfTxs") or ""
    control_sum = fields.get("CtrlSum")
    return _Block(
        element=pmt_inf,
        payment_info_id=pmt_inf_id,
        requested_date=_read_date(date_text, f"PmtInf {pmt_inf_id}"),
        sequence_type=fields.get("PmtTpInf/SeqTp") or None,
        own_iban=normalise_iban(iban) if iban else None,
        declared_count=int(count) if count.isdigit() else None,
        declared_cents=_read_cents(control_sum, f"PmtInf {pmt_inf_id}/CtrlSum") if control_sum else None,
        dated_by_dt=fields.has("ReqdExctnDt/Dt"),
    )


def _transaction_row(tx: _Fields, block: _Block, kind: str, content: dict[str, list[Any]]) -> int:
    """Append one CdtTrfTxInf / DrctDbtTxInf to `content`; returns its amount in cents."""
    e2e = tx.get("PmtId/EndToEndId") or None
    where = f"PmtInf {block.payment_info_id} transaction {e2e or block.count + 1}"
    amount_path = "Amt/InstdAmt" if kind == "pain.001" else "InstdAmt"
    amount = tx.get(amount_path)
    if amount is None:
        raise ValueError(f"{where}: no {amount_path}")
    currency = tx.attribute(amount_path, "Ccy")
    if currency != CURRENCY:
        raise ValueError(f"{where}: currency {currency!r} is not {CURRENCY}")
    cents = _read_cents(amount, where)
    role = "Cdtr" if kind == "pain.001" else "Dbtr"
    iban = tx.get(f"{role}Acct/Id/IBAN")
    bic = tx.get(f"{role}Agt/FinInstnId/BICFI") or tx.get(f"{role}Agt/FinInstnId/BIC")
    ustrd = tx.get("RmtInf/Ustrd")
    content["payment_info_id"].append(block.payment_info_id)
    content["end_to_end_id"].append(e2e)
    content["amount_cents"].append(cents)
    content["requested_date"].append(block.requested_date)
    content["counterparty_name"].append(tx.get(f"{role}/Nm"))
    content["counterparty_iban"].append(normalise_iban(iban) if iban else None)
    content["counterparty_bic"].append(bic)
    content["mandate_id"].append(tx.get("DrctDbtTx/MndtRltdInf/MndtId"))
    content["mandate_signed_on"].append(_read_date(tx.get("DrctDbtTx/MndtRltdInf/DtOfSgntr"), where))
    content["sequence_type"].append(block.sequence_type if kind == "pain.008" else None)
    content["remittance"].append(ustrd)
    return cents


def _check_totals(what: str, count: int | None, cents: int | None, block: _Block) -> None:
    if count is not None and count != block.count:
        raise ValueError(f"{what}: NbOfTxs says {count}, the block holds {block.count} transactions")
    if cents is not None and cents != block.cents:
        raise ValueError(f"{what}: CtrlSum says {cents} cents, its transactions add up to {block.cents}")


def _release(element: etree._Element) -> None:
    """Free a read element and the siblings before it (the iterparse idiom that keeps memory bounded)."""
    element.clear(keep_tail=True)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


# ---------------------------------------------------------------------------------------------------------
# Checking the input frames
# ---------------------------------------------------------------------------------------------------------


def _conform(frame: pl.DataFrame, columns: dict[str, pl.DataType], required: Iterable[str], what: str) -> pl.DataFrame:
    """`frame` with exactly `columns`, cast to their types; optional columns that are missing become nulls.
    Raises ValueError for missing required columns, wrong types and nulls in required columns."""
    required = tuple(required)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns: {', '.join(missing)}")
    wrong = []
    for name, kind in columns.items():
        if name not in frame.columns:
            continue
        actual = frame.schema[name]
        ok = actual == kind or actual == pl.Null or (kind == pl.Int64 and actual.is_integer())
        if not ok:
            wrong.append(f"{name} is {actual}, expected {kind}")
    if wrong:
        raise ValueError(f"{what}: wrong column types: {', '.join(wrong)}")
    nulls = [c for c in required if frame[c].null_count()]
    if nulls:
        raise ValueError(f"{what}: null values in: {', '.join(nulls)}")
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(kind).alias(name)
            for name, kind in columns.items()
        ]
    )


def _problems(frame: pl.DataFrame, label: str, checks: list[tuple[pl.Expr, str]], what: str) -> None:
    """Raise ValueError listing the rows (by `label`) for which a check expression is true."""
    found: list[str] = []
    for failing, message in checks:
        bad = frame.filter(failing.fill_null(False))
        if bad.height:
            examples = ", ".join(str(v) for v in bad[label].head(_MAX_PROBLEMS_SHOWN).to_list())
            found.append(f"{message} ({bad.height} rows, e.g. {examples})")
    if found:
        raise ValueError(f"{what}: " + "; ".join(found))


def _bad_length(column: str, max_len: int) -> pl.Expr:
    length = pl.col(column).str.len_chars()
    return (length < 1) | (length > max_len)


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 35:
        raise ValueError(f"{what} {value!r} must be 1 to 35 characters")


def _normalise_account(iban: str) -> str:
    compact = normalise_iban(iban)
    if not re.fullmatch(_IBAN_RE, compact):
        raise ValueError(f"account IBAN {iban!r} is not an IBAN")
    return compact


# ---------------------------------------------------------------------------------------------------------
# Amounts and timestamps as written (the streaming itself is sepa.xml_out's)
# ---------------------------------------------------------------------------------------------------------


def _amount(cents: int) -> str:
    """123450 -> `'1234.50'` (non-negative cents)."""
    if cents < 0:
        raise ValueError(f"negative amount {cents}")
    return f"{cents // 100}.{cents % 100:02d}"


def _amount_expr(column: str) -> pl.Expr:
    """The same as `_amount`, for a column of non-negative cents (null stays null)."""
    cents = pl.col(column)
    return pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def _timestamp(created_at: datetime) -> str:
    """CreDtTm: whole seconds, with the UTC offset when `created_at` has one."""
    return created_at.replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------------------------------
# pain.002
# ---------------------------------------------------------------------------------------------------------


def build_pain002(
    *,
    msg_id: str,
    created_at: datetime,
    original_msg_id: str,
    original_message_type: str,
    rejected: pl.DataFrame,
    version: str = "pain.002.001.03",
    original: pl.DataFrame | None = None,
) -> bytes:
    """A customer payment status report answering the payment file `original_msg_id`, as bytes.

    `rejected` has one row per rejected transaction: payment_info_id, end_to_end_id, amount_cents,
    reason_code (ISO external status reason, e.g. AC01, AM04, MD07) and optionally reason_info (free text,
    at most 105 characters). Each becomes a TxInfAndSts with TxSts RJCT, StsRsnInf/Rsn/Cd and
    OrgnlTxRef/Amt/InstdAmt, under the OrgnlPmtInfAndSts of its payment information.

    `original`, the transactions of the answered file (`read_payment_file(...).transactions` will do;
    payment_info_id, end_to_end_id and amount_cents are used), lets the report be complete: OrgnlNbOfTxs,
    OrgnlCtrlSum, NbOfTxsPerSts and a status for every payment information, and the group status RJCT
    when every transaction is rejected. Without it the report lists only the payment informations with
    rejections and says PART whenever anything is rejected. The group status is ACCP when nothing is.

    Versions: pain.002.001.03 and pain.002.001.10. Raises ValueError on unusable input.
    """
    return to_bytes(
        write_pain002,
        msg_id=msg_id,
        created_at=created_at,
        original_msg_id=original_msg_id,
        original_message_type=original_message_type,
        rejected=rejected,
        version=version,
        original=original,
    )


def write_pain002(
    target: Target,
    *,
    msg_id: str,
    created_at: datetime,
    original_msg_id: str,
    original_message_type: str,
    rejected: pl.DataFrame,
    version: str = "pain.002.001.03",
    original: pl.DataFrame | None = None,
) -> None:
    """`build_pain002`, streamed to a file name or binary stream `target` in bounded memory."""
    if version not in PAIN002_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(PAIN002_VERSIONS)}, got {version!r}")
    if not _PAYMENT_TYPE_RE.fullmatch(original_message_type):
        raise ValueError(f"original_message_type {original_message_type!r} is not a pain.001 or pain.008 type")
    _check_id(msg_id, "msg_id")
    _check_id(original_msg_id, "original_msg_id")
    rej = _conform(rejected, REJECTED_COLUMNS, _REJECTED_REQUIRED, "rejected")
    _problems(
        rej,
        "end_to_end_id",
        [
            (_bad_length("end_to_end_id", 35), "end_to_end_id is not 1-35 characters"),
            (_bad_length("payment_info_id", 35), "payment_info_id is not 1-35 characters"),
            (pl.col("amount_cents") <= 0, "amount_cents is not positive"),
            (~pl.col("reason_code").str.contains(_CODE_RE), "reason_code is not 1-4 letters or digits"),
            (_bad_length("reason_info", 105), "reason_info is not 1-105 characters"),
            (pl.struct("payment_info_id", "end_to_end_id").is_duplicated(), "rejected twice"),
        ],
        "rejected",
    )
    blocks = _status_blocks(rej, original)
    rej = (
        rej.with_row_index("_row")
        .join(blocks.select("payment_info_id", "_block"), on="payment_info_id", how="left")
        .sort("_block", "_row")
        .with_columns(_amt=_amount_expr("amount_cents"))
    )
    known = original is not None
    n_rejected, rejected_cents = rej.height, int(rej["amount_cents"].sum())
    n_total = int(blocks["n"].sum()) if known else None
    total_cents = int(blocks["cents"].sum()) if known else None
    group_status = _status(n_rejected, n_total)

    templates: dict[bool, Template] = {}
    with document(target, version, "CstmrPmtStsRpt") as out:
        out.put(_element("GrpHdr", _element("MsgId", text=msg_id), _element("CreDtTm", text=_timestamp(created_at))), 2)
        group = _element("OrgnlGrpInfAndSts", _element("OrgnlMsgId", text=original_msg_id))
        _add(group, "OrgnlMsgNmId", original_message_type)
        if n_total is not None and total_cents is not None:
            _add(group, "OrgnlNbOfTxs", str(n_total))
            _add(group, "OrgnlCtrlSum", _amount(total_cents))
        _add(group, "GrpSts", group_status)
        if n_total is not None and total_cents is not None:
            _per_status(group, n_total - n_rejected, total_cents - rejected_cents, "ACCP")
            _per_status(group, n_rejected, rejected_cents, "RJCT")
        out.put(group, 2)

        rows = _iter_rows(rej)
        groups = itertools.groupby(rows, key=lambda row: row["_block"])
        current = next(groups, None)
        for block in blocks.iter_rows(named=True):
            with out.open("OrgnlPmtInfAndSts", 2):
                out.put(_element("OrgnlPmtInfId", text=block["payment_info_id"]), 3)
                if known:
                    out.put(_element("OrgnlNbOfTxs", text=str(block["n"])), 3)
                    out.put(_element("OrgnlCtrlSum", text=_amount(block["cents"])), 3)
                    out.put(_element("PmtInfSts", text=_status(block["rejected"], block["n"])), 3)
                if current is not None and current[0] == block["_block"]:
                    for row in current[1]:
                        has_info = row["reason_info"] is not None
                        template = templates.get(has_info) or templates.setdefault(has_info, _tx_status(has_info))
                        out.put(template.fill(row), 3, indented=True)
                    current = next(groups, None)


def _status(rejected: int, total: int | None) -> str:
    """ACCP when nothing is rejected, RJCT when everything is (if the total is known), else PART."""
    if rejected == 0:
        return "ACCP"
    return "RJCT" if total is not None and rejected == total else "PART"


def _per_status(parent: etree._Element, count: int, cents: int, status: str) -> None:
    if count:
        per = _add(parent, "NbOfTxsPerSts")
        _add(per, "DtldNbOfTxs", str(count))
        _add(per, "DtldSts", status)
        _add(per, "DtldCtrlSum", _amount(cents))


def _status_blocks(rej: pl.DataFrame, original: pl.DataFrame | None) -> pl.DataFrame:
    """One row per payment information to report, in file order: payment_info_id, _block (its position), n
    and cents (of the original, when known), rejected (count)."""
    rejected_per_block = rej.group_by("payment_info_id", maintain_order=True).agg(rejected=pl.len())
    if original is None:
        blocks = rejected_per_block.with_columns(n=pl.lit(None, pl.Int64), cents=pl.lit(None, pl.Int64))
        return blocks.with_row_index("_block")
    orig = _conform(original, _ORIGINAL_COLUMNS, tuple(_ORIGINAL_COLUMNS), "original")
    key = ["payment_info_id", "end_to_end_id"]
    duplicated = orig.filter(pl.struct(key).is_duplicated())
    if duplicated.height:
        raise ValueError(f"original: {duplicated.height} rows repeat a payment_info_id and end_to_end_id")
    matched = rej.join(orig, on=key, how="left", suffix="_original")
    unknown = matched.filter(pl.col("amount_cents_original").is_null())
    if unknown.height:
        examples = ", ".join(unknown["end_to_end_id"].head(_MAX_PROBLEMS_SHOWN).to_list())
        raise ValueError(f"rejected: {unknown.height} transactions are not in the original file, e.g. {examples}")
    different = matched.filter(pl.col("amount_cents") != pl.col("amount_cents_original"))
    if different.height:
        examples = ", ".join(different["end_to_end_id"].head(_MAX_PROBLEMS_SHOWN).to_list())
        raise ValueError(f"rejected: {different.height} amounts differ from the original file, e.g. {examples}")
    blocks = orig.group_by("payment_info_id", maintain_order=True).agg(n=pl.len(), cents=pl.col("amount_cents").sum())
    blocks = blocks.join(rejected_per_block, on="payment_info_id", how="left", maintain_order="left")
    return blocks.with_columns(pl.col("rejected").fill_null(0)).with_row_index("_block")


def _tx_status(has_info: bool) -> Template:
    """TxInfAndSts of a rejected transaction, indented for level 3."""
    root = etree.Element("TxInfAndSts")
    fills = [(_add(root, "OrgnlEndToEndId"), "end_to_end_id")]
    _add(root, "TxSts", "RJCT")
    reason = _add(root, "StsRsnInf")
    fills.append((_add(_add(reason, "Rsn"), "Cd"), "reason_code"))
    if has_info:
        fills.append((_add(reason, "AddtlInf"), "reason_info"))
    fills.append((_add(_add(_add(root, "OrgnlTxRef"), "Amt"), "InstdAmt", Ccy=CURRENCY), "_amt"))
    etree.indent(root, space="  ", level=3)
    return Template(root, fills)


# ---------------------------------------------------------------------------------------------------------
# camt.054 and camt.053
# ---------------------------------------------------------------------------------------------------------


def build_camt054(
    *,
    msg_id: str,
    created_at: datetime,
    account_iban: str,
    entries: pl.DataFrame,
    version: str = "camt.054.001.08",
) -> bytes:
    """A debit/credit notification for `account_iban` with one Ntfctn (its Id is `msg_id`), as bytes.

    `entries` has one row per transaction (see `ENTRY_COLUMNS`): entry_ref, booking_date, value_date,
    direction (CRDT/DBIT), amount_cents and bank_tx_code (`PMNT/ICDT/ESCT`) are required; reversal,
    end_to_end_id, payment_info_id, msg_id (of the original file), mandate_id, counterparty_name,
    counterparty_iban, return_reason, return_info, charges_cents, original_amount_cents, remittance and
    batch may be null or left out.

    Rows with the same `batch` are booked as one Ntry, in the position of their first row: its Amt is
    their sum, NtryRef and AcctSvcrRef are the first row's entry_ref, and NtryDtls/Btch gives NbOfTxs,
    TtlAmt and the MsgId and PmtInfId the rows share (where they share one). They must agree on direction,
    dates, bank transaction code and reversal. A row with a null batch is an entry of its own. Every row
    is one TxDtls: Refs (MsgId, AcctSvcrRef, PmtInfId, EndToEndId or NOTPROVIDED, MndtId), its own amount
    (Amt and CdtDbtInd in .08, AmtDtls/TxAmt; AmtDtls/InstdAmt = original_amount_cents), charges
    (Chrgs: TtlChrgsAndTaxAmt and Rcrd in .08, Amt in .02, debited), RltdPties, RmtInf/Ustrd and, for a
    return, RtrInf (Rsn/Cd = return_reason, AddtlInf = return_info, at most 105 characters).

    RltdPties are those of the payment: the counterparty is the debtor of a credit and the creditor of a
    debit, with its name and IBAN, and our account is on the other side (IBAN only). For a return or
    reversal (reversal true, a return_reason, or sub-family RRTN, UPDD, PRDD, RPCR) the parties are those
    of the original payment, as German and Dutch banks book them: a returned payout credited back still
    names the customer as creditor. Entries are booked (Sts BOOK) in EUR.

    Versions: camt.054.001.02 and camt.054.001.08. Raises ValueError on unusable input.
    """
    return to_bytes(
        write_camt054, msg_id=msg_id, created_at=created_at, account_iban=account_iban, entries=entries, version=version
    )


def write_camt054(
    target: Target,
    *,
    msg_id: str,
    created_at: datetime,
    account_iban: str,
    entries: pl.DataFrame,
    version: str = "camt.054.001.08",
) -> None:
    """`build_camt054`, streamed to a file name or binary stream `target` in bounded memory."""
    if version not in CAMT054_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(CAMT054_VERSIONS)}, got {version!r}")
    _check_id(msg_id, "msg_id")
    account = _normalise_account(account_iban)
    plan = _entry_plan(entries)
    with document(target, version, "BkToCstmrDbtCdtNtfctn") as out:
        out.put(_group_header(msg_id, created_at), 2)
        with out.open("Ntfctn", 2):
            out.put(_element("Id", text=msg_id), 3)
            out.put(_element("CreDtTm", text=_timestamp(created_at)), 3)
            out.put(_account(account), 3)
            _EntryWriter(out, version.endswith(".08"), account).write(plan)


def build_camt053(
    *,
    msg_id: str,
    created_at: datetime,
    statement_id: str,
    account_iban: str,
    opening_balance_cents: int,
    entries: pl.DataFrame,
    booking_date: date,
    version: str = "camt.053.001.08",
) -> bytes:
    """A daily statement of `account_iban` for `booking_date` with one Stmt, as bytes.

    Balances: OPBD = `opening_balance_cents` and CLBD = opening + credits - debits of the entries, both
    dated `booking_date`, with the amount unsigned and CdtDbtInd DBIT for a negative balance. TxsSummry
    gives the number and sum of entries, credits and debits and the net amount. `entries` are as for
    `build_camt054` (batches included) and must all be booked on `booking_date`; none is fine.

    Versions: camt.053.001.02 and camt.053.001.08. Raises ValueError on unusable input.
    """
    return to_bytes(
        write_camt053,
        msg_id=msg_id,
        created_at=created_at,
        statement_id=statement_id,
        account_iban=account_iban,
        opening_balance_cents=opening_balance_cents,
        entries=entries,
        booking_date=booking_date,
        version=version,
    )


def write_camt053(
    target: Target,
    *,
    msg_id: str,
    created_at: datetime,
    statement_id: str,
    account_iban: str,
    opening_balance_cents: int,
    entries: pl.DataFrame,
    booking_date: date,
    version: str = "camt.053.001.08",
) -> None:
    """`build_camt053`, streamed to a file name or binary stream `target` in bounded memory."""
    if version not in CAMT053_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(CAMT053_VERSIONS)}, got {version!r}")
    _check_id(msg_id, "msg_id")
    _check_id(statement_id, "statement_id")
    if isinstance(opening_balance_cents, bool) or not isinstance(opening_balance_cents, int):
        raise ValueError(f"opening_balance_cents must be an integer number of cents, got {opening_balance_cents!r}")
    account = _normalise_account(account_iban)
    plan = _entry_plan(entries)
    elsewhere = plan.filter(pl.col("_bookg") != booking_date.isoformat())
    if elsewhere.height:
        raise ValueError(
            f"entries: {elsewhere.height} rows are not booked on {booking_date}, e.g. {elsewhere['entry_ref'][0]}"
        )
    per_entry = plan.group_by("_first").agg(pl.col("direction").first(), pl.col("amount_cents").sum())
    credits = per_entry.filter(pl.col("direction") == "CRDT")
    debits = per_entry.filter(pl.col("direction") == "DBIT")
    credit_cents, debit_cents = int(credits["amount_cents"].sum()), int(debits["amount_cents"].sum())
    closing = opening_balance_cents + credit_cents - debit_cents
    v08 = version.endswith(".08")
    day = booking_date.isoformat()

    with document(target, version, "BkToCstmrStmt") as out:
        out.put(_group_header(msg_id, created_at), 2)
        with out.open("Stmt", 2):
            out.put(_element("Id", text=statement_id), 3)
            out.put(_element("CreDtTm", text=_timestamp(created_at)), 3)
            period = _element("FrToDt", _element("FrDtTm", text=f"{day}T00:00:00"))
            _add(period, "ToDtTm", f"{day}T23:59:59")
            out.put(period, 3)
            out.put(_account(account), 3)
            out.put(_balance("OPBD", opening_balance_cents, day), 3)
            out.put(_balance("CLBD", closing, day), 3)
            summary = etree.Element("TxsSummry")
            total = _add(summary, "TtlNtries")
            _add(total, "NbOfNtries", str(per_entry.height))
            _add(total, "Sum", _amount(credit_cents + debit_cents))
            net = credit_cents - debit_cents
            net_direction = "CRDT" if net >= 0 else "DBIT"
            if v08:
                net_element = _add(total, "TtlNetNtry")
                _add(net_element, "Amt", _amount(abs(net)))
                _add(net_element, "CdtDbtInd", net_direction)
            else:
                _add(total, "TtlNetNtryAmt", _amount(abs(net)))
                _add(total, "CdtDbtInd", net_direction)
            for tag, part, cents in (("TtlCdtNtries", credits, credit_cents), ("TtlDbtNtries", debits, debit_cents)):
                counted = _add(summary, tag)
                _add(counted, "NbOfNtries", str(part.height))
                _add(counted, "Sum", _amount(cents))
            out.put(summary, 3)
            _EntryWriter(out, v08, account).write(plan)


def _group_header(msg_id: str, created_at: datetime) -> etree._Element:
    header = _element("GrpHdr", _element("MsgId", text=msg_id), _element("CreDtTm", text=_timestamp(created_at)))
    pages = _add(header, "MsgPgntn")
    _add(pages, "PgNb", "1")
    _add(pages, "LastPgInd", "true")
    return header


def _account(iban: str) -> etree._Element:
    account = etree.Element("Acct")
    _add(_add(account, "Id"), "IBAN", iban)
    _add(account, "Ccy", CURRENCY)
    return account


def _balance(code: str, cents: int, day: str) -> etree._Element:
    balance = etree.Element("Bal")
    _add(_add(_add(balance, "Tp"), "CdOrPrtry"), "Cd", code)
    _add(balance, "Amt", _amount(abs(cents)), Ccy=CURRENCY)
    _add(balance, "CdtDbtInd", "CRDT" if cents >= 0 else "DBIT")
    _add(_add(balance, "Dt"), "Dt", day)
    return balance


def _entry_plan(entries: pl.DataFrame) -> pl.DataFrame:
    """The checked rows in writing order, with what the writer needs precomputed column-wise: the entry each
    row belongs to (`_first`, the row number of the entry's first row), the entry's count and sum, the
    batch's shared MsgId/PmtInfId, formatted amounts and dates, the code's parts and the counterparty side."""
    frame = _conform(entries, ENTRY_COLUMNS, _ENTRY_REQUIRED, "entries").with_columns(
        pl.col("reversal").fill_null(False),
        pl.col("counterparty_iban").str.replace_all(r"\s+", "").str.to_uppercase(),
    )
    label = pl.coalesce("end_to_end_id", "entry_ref").alias("_label")
    frame = frame.with_columns(label)
    _problems(
        frame,
        "_label",
        [
            (~pl.col("direction").is_in(["CRDT", "DBIT"]), "direction is not CRDT or DBIT"),
            (pl.col("amount_cents") <= 0, "amount_cents is not positive"),
            (pl.col("charges_cents") < 0, "charges_cents is negative"),
            (pl.col("original_amount_cents") <= 0, "original_amount_cents is not positive"),
            (~pl.col("bank_tx_code").str.contains(_BANK_TX_CODE_RE), "bank_tx_code is not DOMN/FMLY/SUBF"),
            (~pl.col("return_reason").str.contains(_CODE_RE), "return_reason is not 1-4 letters or digits"),
            (~pl.col("counterparty_iban").str.contains(_IBAN_RE), "counterparty_iban is not an IBAN"),
            *[
                (_bad_length(column, 35), f"{column} is not 1-35 characters")
                for column in ("entry_ref", "end_to_end_id", "payment_info_id", "msg_id", "mandate_id")
            ],
            (_bad_length("counterparty_name", 140), "counterparty_name is not 1-140 characters"),
            (_bad_length("remittance", 140), "remittance is not 1-140 characters"),
            (_bad_length("return_info", 105), "return_info is not 1-105 characters"),
        ],
        "entries",
    )
    key = pl.coalesce(pl.lit("b:") + pl.col("batch"), pl.lit("r:") + pl.col("_row").cast(pl.String))
    frame = frame.with_row_index("_row").with_columns(_key=key)
    shared_by_entry = {
        f"_shared_{column}": pl.col(column).n_unique().over("_key") == 1
        for column in ("msg_id", "payment_info_id", *_ENTRY_SHARED)
    }
    frame = frame.with_columns(
        _first=pl.col("_row").min().over("_key"),
        _sum=pl.col("amount_cents").sum().over("_key"),
        _n=pl.len().over("_key"),
        **shared_by_entry,
    )
    _problems(
        frame,
        "batch",
        [(~pl.col(f"_shared_{c}"), f"rows of a batch differ in {c}") for c in _ENTRY_SHARED],
        "entries",
    )
    code = pl.col("bank_tx_code").str.split("/")
    returned = (
        pl.col("reversal") | pl.col("return_reason").is_not_null() | pl.col("_sub").is_in(list(RETURN_SUB_FAMILIES))
    )
    original_direction = (
        pl.when(returned)
        .then(pl.when(pl.col("direction") == "CRDT").then(pl.lit("DBIT")).otherwise(pl.lit("CRDT")))
        .otherwise(pl.col("direction"))
    )
    return (
        frame.sort("_first", "_row")
        .with_columns(
            _domn=code.list.get(0),
            _fmly=code.list.get(1),
            _sub=code.list.get(2),
            _btch_msg_id=pl.when(pl.col("_shared_msg_id")).then(pl.col("msg_id")),
            _btch_pmt_inf_id=pl.when(pl.col("_shared_payment_info_id")).then(pl.col("payment_info_id")),
            _e2e=pl.col("end_to_end_id").fill_null(NOT_PROVIDED),
            _amt=_amount_expr("amount_cents"),
            _sum_amt=_amount_expr("_sum"),
            _instd=_amount_expr("original_amount_cents"),
            _chrg=_amount_expr("charges_cents"),
            _bookg=pl.col("booking_date").dt.to_string("%Y-%m-%d"),
            _val=pl.col("value_date").dt.to_string("%Y-%m-%d"),
        )
        .with_columns(
            _shape=pl.sum_horizontal(
                [
                    (original_direction == "CRDT" if name == "counterparty_is_debtor" else pl.col(name).is_not_null())
                    .cast(pl.Int64)
                    .mul(1 << bit)
                    for bit, name in enumerate(_SHAPE_BITS)
                ]
            )
        )
        .drop("_key", *shared_by_entry)
    )


def _iter_rows(frame: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """The rows of `frame` as dicts, a slice at a time."""
    for part in frame.iter_slices(_SLICE_ROWS):
        yield from part.iter_rows(named=True)


# The columns that fill an Ntry's own elements, in the order `_EntryWriter._head` creates them.
_HEAD_FILLS = ("entry_ref", "_sum_amt", "direction", "_bookg", "_val", "entry_ref", "_domn", "_fmly", "_sub")


class _EntryWriter:
    """Writes the Ntry elements of a planned entries frame (level 3: Document/message/Stmt-or-Ntfctn/Ntry)."""

    def __init__(self, out: Out, v08: bool, own_iban: str) -> None:
        self.out = out
        self.v08 = v08
        self.own_iban = own_iban
        self.templates: dict[tuple[Any, ...], Template] = {}

    def write(self, plan: pl.DataFrame) -> None:
        for _, group in itertools.groupby(_iter_rows(plan.select(_WRITER_COLUMNS)), key=lambda row: row["_first"]):
            rows = iter(group)  # the entry's rows: the first decides the shape, a batch streams the rest
            first = next(rows)
            if first["batch"] is None:
                key = ("single", first["reversal"], first["_shape"])
                template = self.templates.get(key) or self.templates.setdefault(key, self._single(key))
                self.out.put(template.fill(first), 3, indented=True)
            else:
                self._batch(first, rows)

    def _batch(self, first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> None:
        key = ("head", first["reversal"])
        head = self.templates.get(key) or self.templates.setdefault(key, self._head_template(first["reversal"]))
        head.fill(first)
        with self.out.open("Ntry", 3):
            for child in head.root:
                self.out.put(child, 4, indented=True)
            with self.out.open("NtryDtls", 4):
                batch = etree.Element("Btch")
                if first["_btch_msg_id"] is not None:
                    _add(batch, "MsgId", first["_btch_msg_id"])
                if first["_btch_pmt_inf_id"] is not None:
                    _add(batch, "PmtInfId", first["_btch_pmt_inf_id"])
                _add(batch, "NbOfTxs", str(first["_n"]))
                _add(batch, "TtlAmt", first["_sum_amt"], Ccy=CURRENCY)
                _add(batch, "CdtDbtInd", first["direction"])
                self.out.put(batch, 5)
                for row in itertools.chain((first,), rest):
                    key = ("tx", row["_shape"])
                    template = self.templates.get(key) or self.templates.setdefault(key, self._tx_template(key[1]))
                    self.out.put(template.fill(row), 5, indented=True)

    def _head(self, ntry: etree._Element, reversal: bool) -> list[tuple[etree._Element, str]]:
        """The entry's own elements, up to BkTxCd, appended to `ntry`; returns their fills."""
        slots = [_add(ntry, "NtryRef"), _add(ntry, "Amt", Ccy=CURRENCY), _add(ntry, "CdtDbtInd")]
        if reversal:
            _add(ntry, "RvslInd", "true")
        if self.v08:
            _add(_add(ntry, "Sts"), "Cd", "BOOK")
        else:
            _add(ntry, "Sts", "BOOK")
        slots.append(_add(_add(ntry, "BookgDt"), "Dt"))
        slots.append(_add(_add(ntry, "ValDt"), "Dt"))
        slots.append(_add(ntry, "AcctSvcrRef"))
        domain = _add(_add(ntry, "BkTxCd"), "Domn")
        slots.append(_add(domain, "Cd"))
        family = _add(domain, "Fmly")
        slots.extend((_add(family, "Cd"), _add(family, "SubFmlyCd")))
        return list(zip(slots, _HEAD_FILLS, strict=True))

    def _head_template(self, reversal: bool) -> Template:
        ntry = etree.Element("Ntry")
        fills = self._head(ntry, reversal)
        etree.indent(ntry, space="  ", level=3)
        return Template(ntry, fills)

    def _single(self, key: tuple[Any, ...]) -> Template:
        _, reversal, shape = key
        ntry = etree.Element("Ntry")
        fills = self._head(ntry, reversal)
        fills.extend(self._tx_details(_add(ntry, "NtryDtls"), shape))
        etree.indent(ntry, space="  ", level=3)
        return Template(ntry, fills)

    def _tx_template(self, shape: int) -> Template:
        holder = etree.Element("NtryDtls")
        fills = self._tx_details(holder, shape)
        tx = holder[0]
        etree.indent(tx, space="  ", level=5)
        return Template(tx, fills)

    def _tx_details(self, parent: etree._Element, shape: int) -> list[tuple[etree._Element, str]]:
        """One TxDtls of the given shape appended to `parent`; returns its fills."""
        has = {name: bool(shape >> bit & 1) for bit, name in enumerate(_SHAPE_BITS)}
        side = "Dbtr" if has["counterparty_is_debtor"] else "Cdtr"
        fills: list[tuple[etree._Element, str]] = []
        tx = _add(parent, "TxDtls")
        refs = _add(tx, "Refs")
        if has["msg_id"]:
            fills.append((_add(refs, "MsgId"), "msg_id"))
        fills.append((_add(refs, "AcctSvcrRef"), "entry_ref"))
        if has["payment_info_id"]:
            fills.append((_add(refs, "PmtInfId"), "payment_info_id"))
        fills.append((_add(refs, "EndToEndId"), "_e2e"))
        if has["mandate_id"]:
            fills.append((_add(refs, "MndtId"), "mandate_id"))
        if self.v08:
            fills.append((_add(tx, "Amt", Ccy=CURRENCY), "_amt"))
            fills.append((_add(tx, "CdtDbtInd"), "direction"))
        amounts = _add(tx, "AmtDtls")
        if has["original_amount_cents"]:
            fills.append((_add(_add(amounts, "InstdAmt"), "Amt", Ccy=CURRENCY), "_instd"))
        fills.append((_add(_add(amounts, "TxAmt"), "Amt", Ccy=CURRENCY), "_amt"))
        if has["charges_cents"]:
            chrgs = _add(tx, "Chrgs")
            fills.append((_add(chrgs, "TtlChrgsAndTaxAmt", Ccy=CURRENCY), "_chrg"))
            record = _add(chrgs, "Rcrd") if self.v08 else chrgs
            fills.append((_add(record, "Amt", Ccy=CURRENCY), "_chrg"))
            _add(record, "CdtDbtInd", "DBIT")
        parties = _add(tx, "RltdPties")
        for role in ("Dbtr", "Cdtr"):
            if role == side:
                if has["counterparty_name"]:
                    party = _add(parties, role)
                    fills.append((_add(_add(party, "Pty") if self.v08 else party, "Nm"), "counterparty_name"))
                if has["counterparty_iban"]:
                    fills.append((_add(_add(_add(parties, f"{role}Acct"), "Id"), "IBAN"), "counterparty_iban"))
            else:
                _add(_add(_add(parties, f"{role}Acct"), "Id"), "IBAN", self.own_iban)
        if has["remittance"]:
            fills.append((_add(_add(tx, "RmtInf"), "Ustrd"), "remittance"))
        if has["return_reason"] or has["return_info"]:
            returned = _add(tx, "RtrInf")
            if has["return_reason"]:
                fills.append((_add(_add(returned, "Rsn"), "Cd"), "return_reason"))
            if has["return_info"]:
                fills.append((_add(returned, "AddtlInf"), "return_info"))
        return fills
