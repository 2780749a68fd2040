"""Streaming reader for pain.002 payment status reports (.001.03, .001.10, Swiss .001.03.ch.02).

A row per TxInfAndSts, read as the parser reaches its end and then freed. References are the ORIGINAL
ones (OrgnlMsgId, OrgnlPmtInfId, OrgnlEndToEndId), the ones our pain.001/pain.008 carried. A status given
for a whole group or payment information without transaction details (a file rejected as a whole, a
batch rejected) gives one row for that level, with its status and reason. A transaction without its own
TxSts takes the batch's or the group's status when that applies to all (not PART).

Direction and counterparty follow the original message: for a credit transfer (pain.001) we are the
debtor, the money goes out (DBIT) and the counterparty is the creditor; for a direct debit (pain.008) we
are the creditor (CRDT) and the counterparty is the debtor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from sepa.bank_lines import RowBuffer, empty_row, read_amount
from sepa.camt import reference, remittance
from sepa.iban import normalise_iban
from sepa.safe_xml import Source, View, local_name, release, stream

_PARTIAL = "PART"  # a status that does not apply to every transaction below it


@dataclass
class _Level:
    """Group or payment information: its id, status and reason."""

    id: str | None = None
    name: str | None = None  # OrgnlMsgNmId, for the group
    status: str | None = None
    reason: str | None = None
    info: str | None = None
    transactions: int = 0
    header_read: bool = False


def _status_reason(view: View, prefix: str = "") -> tuple[str | None, str | None]:
    """(first reason code, all AddtlInf joined) of the StsRsnInf blocks at `prefix`."""
    code = view.text(f"{prefix}StsRsnInf/Rsn/Cd", f"{prefix}StsRsnInf/Rsn/Prtry")
    info = " ".join(" ".join(view.texts(f"{prefix}StsRsnInf/AddtlInf")).split()) or None
    return code, info


def _read_level(element: etree._Element, status_tag: str, id_tag: str, level: _Level) -> None:
    view = View(element, stop=frozenset({"TxInfAndSts", "NbOfTxsPerSts"}))
    level.header_read = True
    level.id = view.text(id_tag)
    level.name = view.text("OrgnlMsgNmId")
    level.status = view.text(status_tag)
    level.reason, level.info = _status_reason(view)


def _scheme(group: _Level, tx: View) -> str | None:
    """SCT or SDD: from OrgnlMsgNmId, else from what the original transaction carries."""
    name = (group.name or "").lower()
    if name.startswith("pain.001"):
        return "SCT"
    if name.startswith("pain.008"):
        return "SDD"
    if tx.all("OrgnlTxRef/MndtRltdInf") or tx.all("OrgnlTxRef/ReqdColltnDt"):
        return "SDD"
    if tx.all("OrgnlTxRef/ReqdExctnDt"):
        return "SCT"
    return None


def _party(view: View, role: str) -> tuple[str | None, str | None]:
    name = view.text(f"OrgnlTxRef/{role}/Nm", f"OrgnlTxRef/{role}/Pty/Nm")
    iban = view.text(f"OrgnlTxRef/{role}Acct/Id/IBAN")
    return name, (normalise_iban(iban) if iban else None)


def _inherited(*levels: _Level | None) -> _Level | None:
    """The nearest level whose status applies to all of its transactions."""
    for level in levels:
        if level is not None and level.status:
            return None if level.status == _PARTIAL else level
    return None


class _Report:
    """State of one pain.002 being read."""

    def __init__(self, message_type: str, buffer: RowBuffer) -> None:
        self.message_type = message_type
        self.buffer = buffer
        self.message_id: str | None = None
        self.group = _Level()
        self.rows = 0

    def _row(self) -> dict[str, Any]:
        self.rows += 1
        row = empty_row(self.message_type)
        row["message_id"] = self.group.id
        row["entry_ref"] = f"{self.message_id or 'pain.002'}#{self.rows}"
        return row

    def level_row(self, level: _Level, payment_info_id: str | None) -> None:
        """One row for a group or payment information whose status has no transaction details."""
        row = self._row()
        row.update(status=level.status, payment_info_id=payment_info_id, return_reason=level.reason,
                   return_info=level.info)  # fmt: skip
        self.buffer.add(row)

    def transaction_row(self, element: etree._Element, payment: _Level | None) -> None:
        """One row for a TxInfAndSts."""
        tv = View(element)
        row = self._row()
        row["entry_ref"] = tv.text("StsId") or tv.text("AcctSvcrRef") or row["entry_ref"]
        row["message_id"] = tv.text("OrgnlGrpInf/OrgnlMsgId") or self.group.id
        status = tv.text("TxSts")
        reason, info = _status_reason(tv)
        if status is None:
            source = _inherited(payment, self.group)
            if source is not None:
                status = source.status
                reason, info = reason or source.reason, info or source.info
        problems: list[str] = []
        cents, currency = None, None
        instructed = tv.first("OrgnlTxRef/Amt/InstdAmt")
        if instructed is not None:
            cents, currency, problems = read_amount(instructed, "OrgnlTxRef/Amt/InstdAmt")
        scheme = _scheme(self.group, tv)
        debtor, creditor = _party(tv, "Dbtr"), _party(tv, "Cdtr")
        if scheme == "SCT":
            direction, own, other = "DBIT", debtor, creditor
        elif scheme == "SDD":
            direction, own, other = "CRDT", creditor, debtor
        else:
            direction, own, other = None, (None, None), (None, None)
        counterparty_iban = other[1] if other[1] != own[1] else None
        row.update(
            status=status, direction=direction, currency=currency,
            original_amount_cents=None if problems else cents,
            end_to_end_id=reference(tv, "OrgnlEndToEndId"), instruction_id=reference(tv, "OrgnlInstrId"),
            payment_info_id=payment.id if payment is not None else None,
            mandate_id=tv.text("OrgnlTxRef/MndtRltdInf/MndtId"), return_reason=reason, return_info=info,
            account_iban=own[1], counterparty_name=other[0], counterparty_iban=counterparty_iban,
            remittance=remittance(tv, "OrgnlTxRef/"),
        )  # fmt: skip
        if problems:
            row["row_problem"] = "; ".join(problems)
        else:
            row["amount_cents"] = cents  # the amount the status is about: the one we instructed
        self.buffer.add(row)


def read_pain002(source: Source, message_type: str, buffer: RowBuffer) -> str | None:
    """Stream a pain.002 into `buffer`; returns its own GrpHdr/MsgId."""
    report = _Report(message_type, buffer)
    payment: _Level | None = None
    payments_seen = 0
    tags = ["GrpHdr", "OrgnlGrpInfAndSts", "OrgnlPmtInfAndSts", "TxInfAndSts"]
    for event, element in stream(source, tags):
        local = local_name(element.tag)
        if event == "start":
            if local == "OrgnlPmtInfAndSts":
                payment = _Level()
                payments_seen += 1
            continue
        if local == "TxInfAndSts":
            parent = element.getparent()
            if payment is not None and not payment.header_read and parent is not None:
                _read_level(parent, "PmtInfSts", "OrgnlPmtInfId", payment)
            if payment is not None:
                payment.transactions += 1
            report.group.transactions += 1
            report.transaction_row(element, payment)
        elif local == "OrgnlPmtInfAndSts":
            payment = payment or _Level()
            if not payment.header_read:
                _read_level(element, "PmtInfSts", "OrgnlPmtInfId", payment)
            if payment.transactions == 0 and payment.status:
                report.level_row(_with_inherited_reason(payment, report.group), payment.id)
            payment = None
        elif local == "OrgnlGrpInfAndSts":
            _read_level(element, "GrpSts", "OrgnlMsgId", report.group)
        elif local == "GrpHdr" and report.message_id is None:
            report.message_id = View(element, stop=frozenset({"InitgPty", "DbtrAgt", "CdtrAgt"})).text("MsgId")
        release(element)
    if payments_seen == 0 and report.group.transactions == 0 and report.group.status:
        report.level_row(report.group, None)  # the whole file: accepted or rejected as one
    return report.message_id


def _with_inherited_reason(payment: _Level, group: _Level) -> _Level:
    """A batch rejected without a reason of its own takes the group's reason for the same status."""
    if payment.reason is None and group.status == payment.status and group.reason:
        return _Level(payment.id, payment.name, payment.status, group.reason, payment.info or group.info)
    return payment
