"""Streaming reader for camt.052 (account report), camt.053 (statement) and camt.054 (notification).

Versions .001.02 to .001.10 differ in where things are (`TxDtls/Amt` vs `TxDtls/AmtDtls/TxAmt/Amt`,
`Dbtr/Pty/Nm` vs `Dbtr/Nm`, `Chrgs/Rcrd` vs `Chrgs/Amt`, `<Sts><Cd>BOOK</Cd></Sts>` vs `<Sts>BOOK</Sts>`);
every variant is looked for, by local name. Entries are read one at a time as the parser reaches their
end and then freed together with everything before them, so memory does not grow with the number of
entries; a statement's header (id, account, balances) is read when its first entry, or its end, arrives.

Speed (a million entries is a file of 1.6 GB): an entry whose structure was met before is read through a
`ShapeCache` (one serialisation and one regular expression match instead of a walk in Python, answering
exactly as `View`), and a file over `SPLIT_MIN_BYTES` is read by two processes, half each (`_read_split`),
with every doubt settled by reading it again in one.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import polars as pl
from lxml import etree

from sepa.bank_lines import RowBuffer, empty_row, read_amount, to_date
from sepa.iban import iban_problem, normalise_iban
from sepa.safe_xml import (
    BankFileError,
    FlatView,
    ShapeCache,
    Source,
    View,
    local_name,
    release,
    source_name,
    stream,
    stream_handle,
)

ViewLike = View | FlatView

STATEMENT_TAGS = frozenset({"Stmt", "Rpt", "Ntfctn"})
NOT_PROVIDED = "NOTPROVIDED"
# Sub-families that book a return or reversal: their AddtlNtryInf may be the only reason given.
_RETURN_SUBFAMILIES = frozenset({"RRTN", "UPDD", "PRDD", "RPCR"})
_OPENING = ("OPBD", "PRCD")  # opening booked, else the previous closing booked
_CLOSING = ("CLBD",)
MAX_NOTES = 200


@dataclass(frozen=True)
class Statement:
    """One Stmt (camt.053), Rpt (camt.052) or Ntfctn (camt.054): its header and how many entries it had.

    Balances are signed cents (DBIT negative). A balance without CdtDbtInd is read as positive and
    flagged with `balance_sign_missing`; a balance that cannot be read is None with a `problems` line.
    """

    element: str
    id: str | None
    account_iban: str | None
    currency: str | None
    opening_balance_cents: int | None
    closing_balance_cents: int | None
    balance_sign_missing: bool
    entries: int
    problems: tuple[str, ...] = ()


@dataclass
class _State:
    """A statement being read."""

    element: str
    index: int
    node: etree._Element | None = None
    id: str | None = None
    account_iban: str | None = None
    currency: str | None = None
    opening: int | None = None
    closing: int | None = None
    sign_missing: bool = False
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    placeholder: bool = False  # entries numbered from `_PLACEHOLDER` (read by the other process of a split)

    @classmethod
    def begin(cls, node: etree._Element | None, index: int) -> _State:
        """The state of the statement `node` (its header read now), or of entries outside any statement."""
        name = local_name(node.tag) if node is not None else ""
        state = cls(name if name in STATEMENT_TAGS else "Stmt", index, node)
        if node is not None and name in STATEMENT_TAGS:
            state.read_header(node)
        return state

    @property
    def ref_base(self) -> str:
        if self.placeholder:
            return _PLACEHOLDER
        return self.id or f"{self.element}{self.index}"

    def read_header(self, statement: etree._Element) -> None:
        """Id, account and balances: the children before the first entry."""
        view = View(statement, _HEADER_STOP)
        self.id = view.text("Id")
        self.account_iban = account_iban(view, "Acct")
        self.currency = view.text("Acct/Ccy")
        opening = closing = None
        for balance in view.all("Bal"):
            bal = View(balance)
            code = bal.text("Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry")
            if code in _OPENING and (opening is None or (opening[0] != _OPENING[0] and code == _OPENING[0])):
                opening = (code, bal)
            elif code in _CLOSING and closing is None:
                closing = (code, bal)
        self.opening = self._balance(opening)
        self.closing = self._balance(closing)

    def _balance(self, found: tuple[str, View] | None) -> int | None:
        if found is None:
            return None
        code, bal = found
        cents, _currency, problems = read_amount(bal.first("Amt"), f"{self.element}/Bal {code} Amt")
        sign = bal.text("CdtDbtInd")
        if sign is None:
            self.sign_missing = True  # read as positive, as the bank presumably meant
        elif sign not in ("CRDT", "DBIT"):
            indicator = bal.first("CdtDbtInd")
            where = f"line {indicator.sourceline}: " if indicator is not None else ""
            problems.append(f"{where}{self.element}/Bal {code} CdtDbtInd {sign[:10]!r} is neither CRDT nor DBIT")
        if problems:
            self.problems.extend(problems)
            return None
        assert cents is not None
        return -cents if sign == "DBIT" else cents

    def finish(self) -> Statement:
        return Statement(
            element=self.element, id=self.id, account_iban=self.account_iban, currency=self.currency,
            opening_balance_cents=self.opening, closing_balance_cents=self.closing,
            balance_sign_missing=self.sign_missing, entries=self.entries, problems=tuple(self.problems),
        )  # fmt: skip


def account_iban(view: ViewLike, prefix: str) -> str | None:
    """`<prefix>/Id/IBAN`, else `<prefix>/Id/Othr/Id` when that is a valid IBAN (some banks put it there)."""
    iban = view.text(f"{prefix}/Id/IBAN")
    if iban:
        return normalise_iban(iban)
    other = view.text(f"{prefix}/Id/Othr/Id")
    if other and 15 <= len(normalise_iban(other)) <= 34 and iban_problem(other) is None:
        return normalise_iban(other)
    return None


def _paths(prefix: str, *paths: str) -> tuple[str, ...]:
    """`paths` under `prefix`, made once per prefix (these are asked for once per transaction)."""
    if not prefix:
        return paths
    key = (prefix, paths)
    found = _PREFIXED.get(key)
    if found is None:
        found = _PREFIXED[key] = tuple(prefix + path for path in paths)
    return found


_PREFIXED: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}


def bank_tx_code(view: ViewLike, prefix: str = "") -> str | None:
    """ISO `Domain/Family/SubFamily` (e.g. `PMNT/ICDT/RRTN`); None when only a proprietary code is given."""
    domain_path, code_path, family_path, sub_path = _paths(
        prefix, "BkTxCd/Domn", "BkTxCd/Domn/Cd", "BkTxCd/Domn/Fmly/Cd", "BkTxCd/Domn/Fmly/SubFmlyCd"
    )
    if domain_path not in view.paths:
        return None
    text = view.text
    domain = text(code_path)
    family = text(family_path)
    sub = text(sub_path)
    if not (domain and family and sub):
        return None
    return f"{domain}/{family}/{sub}"


def joined(parts: Iterable[str]) -> str | None:
    """Texts joined by one space, whitespace runs collapsed; None if nothing is left."""
    text = " ".join(" ".join(parts).split())
    return text or None


def remittance(view: ViewLike, prefix: str = "") -> str | None:
    """Unstructured remittance lines joined, else the structured creditor references."""
    unstructured, structured = _paths(prefix, "RmtInf/Ustrd", "RmtInf/Strd/CdtrRefInf/Ref")
    return joined(view.texts(unstructured)) or joined(view.texts(structured))


def reference(view: ViewLike, path: str) -> str | None:
    """A reference, with the `NOTPROVIDED` placeholder read as missing."""
    text = view.text(path)
    return None if text is None or text.upper() == NOT_PROVIDED else text


def _child(element: etree._Element, name: str) -> etree._Element | None:
    for child in element:
        if local_name(child.tag) == name:
            return child
    return None


def _charges(view: ViewLike) -> tuple[int | None, str | None, list[str]]:
    """(cents, currency, problems): TtlChrgsAndTaxAmt, else the sum of Chrgs/Rcrd/Amt (a CRDT record is a
    refund of charges and counts negative), else the sum of the v02 Chrgs/Amt; (None, None, []) if none."""
    if "Chrgs" not in view.paths:
        return None, None, []
    parts: list[tuple[etree._Element | None, int]] = [(e, 1) for e in view.all("Chrgs/TtlChrgsAndTaxAmt")]
    if not parts:
        for record in view.all("Chrgs/Rcrd"):
            indicator = _child(record, "CdtDbtInd")
            sign = -1 if indicator is not None and (indicator.text or "").strip() == "CRDT" else 1
            parts.append((_child(record, "Amt"), sign))
    if not parts:
        parts = [(e, 1) for e in view.all("Chrgs/Amt")]
    if not parts:
        return None, None, []
    total, currencies, problems = 0, set(), []
    for element, sign in parts:
        cents, currency, found = read_amount(element, "charges amount")
        problems.extend(found)
        if cents is not None:
            total += sign * cents
        if currency:
            currencies.add(currency)
    if len(currencies) > 1:
        problems.append(f"charges in several currencies {sorted(currencies)} cannot be added up")
    if problems:
        return None, None, problems
    return total, (currencies.pop() if currencies else None), []


# Name (either place) and IBAN of the party first looked at, then of the other one.
_PARTIES_OF_CREDIT = ("Dbtr/Nm", "Dbtr/Pty/Nm", "DbtrAcct/Id/IBAN", "Cdtr/Nm", "Cdtr/Pty/Nm", "CdtrAcct/Id/IBAN")
_PARTIES_OF_DEBIT = ("Cdtr/Nm", "Cdtr/Pty/Nm", "CdtrAcct/Id/IBAN", "Dbtr/Nm", "Dbtr/Pty/Nm", "DbtrAcct/Id/IBAN")


def _counterparty(
    view: ViewLike, direction: str | None, own_iban: str | None, prefix: str, is_return: bool
) -> tuple[str | None, str | None]:
    """(name, IBAN) of the other party: the debtor of a credit, the creditor of a debit.

    Some banks keep the original parties on a return or reversal (the account holder as debtor of a
    returned credit transfer; only the original debtor on a reversed direct debit): when the chosen party
    is the statement's own account, or is absent on a return, the other party is taken. The own account
    is never given as counterparty.
    """
    if direction not in ("CRDT", "DBIT"):
        return None, None
    paths = _paths(prefix, *(_PARTIES_OF_CREDIT if direction == "CRDT" else _PARTIES_OF_DEBIT))
    text = view.text
    name = text(paths[0], paths[1])
    iban = text(paths[2])
    if iban:
        iban = normalise_iban(iban)
    if (own_iban and iban == own_iban) or (is_return and name is None and iban is None):
        name = text(paths[3], paths[4])
        iban = text(paths[5])
        if iban:
            iban = normalise_iban(iban)
    if own_iban and iban == own_iban:
        iban = None
    return name, iban


_ENTRY_STOP = frozenset({"TxDtls"})
_DATES = (("booking_date", "BookgDt", "BookgDt/Dt", "BookgDt/DtTm"), ("value_date", "ValDt", "ValDt/Dt", "ValDt/DtTm"))
_DETAILS = "NtryDtls/TxDtls"
_HEADER_STOP = frozenset({"Ntry", "Bal"})
_GRPHDR_STOP = frozenset({"MsgPgntn", "OrgnlBizQry", "MsgRcpt"})


class _Readers:
    """The structures of one file's entries and transactions met so far (see `ShapeCache`)."""

    def __init__(self) -> None:
        self.entries = ShapeCache(_ENTRY_STOP, _DETAILS)
        self.details = ShapeCache(frozenset(), "")

    def views(self, entry: etree._Element) -> tuple[ViewLike, list[tuple[etree._Element, ViewLike]]]:
        """The entry's view and, for each of its NtryDtls/TxDtls, the element and its view."""
        if not _is_batch(entry):
            found = self.entries.views(entry)
            if found is not None:
                ev, details = found
                return ev, [(_at(entry, position), view) for position, view in details]
        ev = View(entry, _ENTRY_STOP)
        views: list[tuple[etree._Element, ViewLike]] = []
        for detail in ev.all(_DETAILS):
            found = self.details.views(detail)
            views.append((detail, found[0] if found is not None else View(detail)))
        return ev, views


def _is_batch(entry: etree._Element) -> bool:
    """Whether the entry looks like a batch (its last child, NtryDtls as a rule, holds more than a TxDtls):
    a batch is read a transaction at a time. Only a matter of speed: both ways read the same."""
    return len(entry) > 0 and len(entry[-1]) > 2


def _at(element: etree._Element, position: tuple[int, ...]) -> etree._Element:
    for index in position:
        element = element[index]
    return element


def _entry_rows(
    entry: etree._Element,
    state: _State,
    message_type: str,
    message_id: str | None,
    notes: list[str],
    readers: _Readers | None = None,
) -> list[dict[str, Any]]:
    """The rows of one Ntry: one per TxDtls, or one for the entry when it has none.

    This runs once per entry of a possibly huge file: optional blocks (RltdPties, RtrInf, Chrgs...) are
    looked into only when the walk saw them.
    """
    line = entry.sourceline
    if readers is None:
        ev: ViewLike = View(entry, _ENTRY_STOP)
        details: list[tuple[etree._Element, ViewLike]] = [(d, View(d)) for d in ev.all(_DETAILS)]
    else:
        ev, details = readers.views(entry)
    has = ev.paths
    text = ev.text
    base = empty_row(message_type)
    base["message_id"] = message_id
    base["account_iban"] = state.account_iban
    base["entry_ref"] = text("NtryRef") or text("AcctSvcrRef") or f"{state.ref_base}#{state.entries}"
    base["status"] = text("Sts", "Sts/Cd", "Sts/Prtry")
    if "RvslInd" in has:
        base["reversal"] = (text("RvslInd") or "").lower() in ("true", "1")
    entry_problems: list[str] = []
    for column, path, day, moment in _DATES:
        if path in has:
            try:
                base[column] = to_date(text(day, moment))
            except ValueError as exc:
                entry_problems.append(f"line {line}: Ntry/{path} {exc}")
    entry_direction = text("CdtDbtInd")
    entry_code = bank_tx_code(ev)
    entry_info = joined(ev.texts("AddtlNtryInf")) if "AddtlNtryInf" in has else None
    entry_amount = ev.first("Amt")
    if not details:
        row = base
        cents, currency, problems = read_amount(entry_amount, "Ntry/Amt")
        if entry_amount is None:
            problems = [f"line {line}: Ntry has no Amt"]
        charges, _ccy, charge_problems = _charges(ev)
        direction, direction_problems = _direction(entry_direction, None, line)
        row.update(direction=direction, currency=currency, bank_tx_code=entry_code, charges_cents=charges)
        if _is_return(entry_code):
            row["return_info"] = entry_info
        _settle(row, cents, [*entry_problems, *problems, *direction_problems, *charge_problems])
        return [row]

    rows = []
    amounts: list[tuple[int | None, str | None, str | None]] = []
    single = len(details) == 1
    for number, (detail, tv) in enumerate(details, start=1):
        rows.append(
            _detail_row(tv, detail, number, len(details), ev, dict(base) if not single else base,
                        entry_problems, entry_direction, entry_code, entry_info, state.account_iban, line)
        )  # fmt: skip
        amounts.append((rows[-1]["amount_cents"], rows[-1]["currency"], rows[-1]["direction"]))
    if not single:
        _check_batch_sum(ev, amounts, entry_direction, line, notes)
    return rows


def _detail_row(
    tv: ViewLike,
    detail: etree._Element,
    number: int,
    count: int,
    ev: ViewLike,
    row: dict[str, Any],
    entry_problems: list[str],
    entry_direction: str | None,
    entry_code: str | None,
    entry_info: str | None,
    own_iban: str | None,
    line: int | None,
) -> dict[str, Any]:
    """The row of one TxDtls of an entry (`ev`), `count` TxDtls in all."""
    has = tv.paths
    text = tv.text
    problems = list(entry_problems)
    amount_element = tv.first("Amt")  # v04 and later
    if amount_element is None:
        amount_element = tv.first("AmtDtls/TxAmt/Amt")  # v02
    if amount_element is None and count == 1:
        amount_element = ev.first("Amt")  # a single transaction is the whole entry
    if amount_element is None:
        cents, currency = None, None
        if count == 1:
            problems.append(f"line {line}: Ntry has no Amt")
        else:
            problems.append(
                f"line {detail.sourceline}: TxDtls {number} of {count} has no amount "
                "(Amt or AmtDtls/TxAmt/Amt); the entry's amount is not split"
            )
    else:
        cents, currency, found = read_amount(amount_element, "Amt")
        problems.extend(found)
    direction, direction_problems = _direction(text("CdtDbtInd"), entry_direction, line)
    problems.extend(direction_problems)
    charges, charge_currency, charge_problems = _charges(tv)
    if charges is None and not charge_problems and count == 1:
        charges, charge_currency, charge_problems = _charges(ev)
    problems.extend(charge_problems)
    if charges and charge_currency and currency and charge_currency != currency:
        problems.append(f"line {detail.sourceline}: charges in {charge_currency}, amount in {currency}")
    if "AmtDtls/InstdAmt/Amt" in has:
        original, original_currency, original_problems = read_amount(tv.first("AmtDtls/InstdAmt/Amt"), "InstdAmt")
        problems.extend(original_problems)
        if original_currency == currency:  # an instructed amount in another currency is not comparable
            row["original_amount_cents"] = original
    code = _transaction_code(bank_tx_code(tv), entry_code)
    is_return = _is_return(code)
    if "RltdPties" in has:
        returned = is_return or row["reversal"] or "RtrInf" in has
        row["counterparty_name"], row["counterparty_iban"] = _counterparty(
            tv, direction, own_iban, "RltdPties/", returned
        )
    if "RtrInf" in has:
        row["return_reason"] = text("RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry")
        row["return_info"] = joined(tv.texts("RtrInf/AddtlInf"))
    elif is_return:
        row["return_info"] = entry_info  # the bank gave the reason only as text on the entry
    if "Refs" in has:
        row["end_to_end_id"] = reference(tv, "Refs/EndToEndId")
        row["payment_info_id"] = reference(tv, "Refs/PmtInfId")
        row["instruction_id"] = reference(tv, "Refs/InstrId")
        row["mandate_id"] = reference(tv, "Refs/MndtId")
    if row["payment_info_id"] is None and "NtryDtls/Btch" in ev.paths:
        parent = detail.getparent()
        batch = _child(parent, "Btch") if parent is not None else None
        row["payment_info_id"] = reference(View(batch), "PmtInfId") if batch is not None else None
    if "RmtInf" in has:
        row["remittance"] = remittance(tv)
    row["direction"] = direction
    row["currency"] = currency
    row["bank_tx_code"] = code
    row["charges_cents"] = charges
    _settle(row, cents, problems)
    return row


def _is_return(code: str | None) -> bool:
    return code is not None and code[code.rfind("/") + 1 :] in _RETURN_SUBFAMILIES


def _transaction_code(own: str | None, entry: str | None) -> str | None:
    """The transaction's own code, except when the entry books a return or reversal and the transaction's
    code names the original payment (PostFinance reports RDDT/PMDD inside an IDDT/PRDD reversal)."""
    if own is None:
        return entry
    if _is_return(entry) and not _is_return(own):
        return entry
    return own


def _direction(own: str | None, inherited: str | None, line: int | None) -> tuple[str | None, list[str]]:
    value = own or inherited
    if value is None:
        return None, [f"line {line}: Ntry has no CdtDbtInd (credit or debit unknown)"]
    if value not in ("CRDT", "DBIT"):
        return None, [f"line {line}: CdtDbtInd {value[:10]!r} is neither CRDT nor DBIT"]
    return value, []


def _settle(row: dict[str, Any], cents: int | None, problems: list[str]) -> None:
    """Amount only when nothing about the money is in doubt; otherwise null and the reasons."""
    if problems:
        row["amount_cents"] = None
        row["row_problem"] = "; ".join(dict.fromkeys(problems))  # same reason twice is said once
    else:
        row["amount_cents"] = cents


def _check_batch_sum(
    ev: ViewLike,
    amounts: list[tuple[int | None, str | None, str | None]],
    direction: str | None,
    line: int | None,
    notes: list[str],
) -> None:
    """A note when a batch's transactions (net, in the entry's direction) add up to neither Btch/TtlAmt nor
    the entry amount, or when such a total cannot be read. Not a row problem: each transaction's own amount
    was read exactly."""
    if len(notes) >= MAX_NOTES or direction is None or len({ccy for _, ccy, _ in amounts}) != 1:
        return
    if any(cents is None for cents, _, _ in amounts):
        return
    total = sum((c if d == direction else -c) for c, _, d in amounts if c is not None)
    expected = []
    for path in ("NtryDtls/Btch/TtlAmt", "Amt"):
        element = ev.first(path)
        if element is not None:
            cents, _ccy, problems = read_amount(element, path)
            if not problems:
                expected.append(cents)
            elif len(notes) < MAX_NOTES:  # each transaction's amount was read; the total they must make was not
                notes.append(
                    f"line {line}: the entry's {path} cannot be read ({'; '.join(problems)}); its "
                    f"{len(amounts)} transactions were read one by one"
                )
    if expected and total not in expected:
        notes.append(
            f"line {line}: the entry's {len(amounts)} transactions add up to {total} cents, "
            f"not {' or '.join(str(e) for e in expected)}"
        )


_TAGS = ["GrpHdr", "Stmt", "Rpt", "Ntfctn", "Ntry"]


class _Unsure(Exception):
    """Raised by the other process of a split when it meets anything whose message would name a line."""


class _Reading:
    """One camt being read, from its end events: the message id, the statement being read and those done."""

    def __init__(
        self, message_type: str, buffer: RowBuffer, notes: list[str], statements_before: int = 0, strict: bool = False
    ) -> None:
        self.message_type = message_type
        self.buffer = buffer
        self.notes = notes
        self.message_id: str | None = None
        self.statements: list[Statement] = []
        self.statements_before = statements_before  # statements in the part of the file not read here
        self.strict = strict  # give up on a problem (its line would be counted from the wrong place)
        self.state: _State | None = None
        self.readers = _Readers()

    def _begin(self, node: etree._Element | None) -> _State:
        state = _State.begin(node, self.statements_before + len(self.statements) + 1)
        if self.strict and state.problems:
            raise _Unsure
        return state

    def read(self, local: str, element: etree._Element) -> None:
        """One element ended: an entry, a statement or the group header (anything else is not asked for)."""
        if local == "Ntry":
            parent = element.getparent()
            state = self.state
            if state is None or state.node is not parent:
                if state is not None:  # entries of an enclosing element that was not a statement
                    self.statements.append(state.finish())
                state = self.state = self._begin(parent)
            state.entries += 1
            rows = _entry_rows(element, state, self.message_type, self.message_id, self.notes, self.readers)
            if self.strict and (self.notes or any(row["row_problem"] is not None for row in rows)):
                raise _Unsure
            self.buffer.extend(rows)
        elif local in STATEMENT_TAGS:
            state = self.state
            if state is not None and state.node is not element:
                self.statements.append(state.finish())
                state = None
            if state is None:  # a statement without entries
                state = self._begin(element)
            self.statements.append(state.finish())
            self.state = None
        elif local == "GrpHdr" and self.message_id is None:
            self.message_id = View(element, _GRPHDR_STOP).text("MsgId")

    def finish(self) -> None:
        if self.state is not None:
            self.statements.append(self.state.finish())
            self.state = None


def read_camt(
    source: Source, message_type: str, buffer: RowBuffer, notes: list[str]
) -> tuple[str | None, list[Statement]]:
    """Stream a camt.052/053/054 into `buffer`; returns (GrpHdr/MsgId, statements). Notes go to `notes`.

    A large file is read by two processes, each about half of it (see `_read_split`); when anything
    about the split is not as expected, the file is read here from the start, as a smaller one is.
    """
    if _may_split(source):
        done = _read_split(os.fspath(source), source_name(source), message_type, buffer, notes)  # type: ignore[arg-type]
        if done is not None:
            return done
    reading = _Reading(message_type, buffer, notes)
    # End events only (half the events of start+end): a statement is recognised by its first entry's parent.
    events = stream(source, _TAGS, events=("end",))
    try:
        for _event, element in events:
            tag = element.tag
            reading.read(tag[tag.find("}") + 1 :], element)
            release(element)
    finally:
        events.close()
    reading.finish()
    return reading.message_id, reading.statements


# ---------------------------------------------------------------------------------------------------------
# Reading a large file with two processes
# ---------------------------------------------------------------------------------------------------------
#
# libxml2 parses with the GIL held, and the Python reading each entry needs it too: a second core helps only
# as another process. After the first entry, the file is split at an entry start tag found by its bytes
# (`<Ntry>` first on its line, about the middle):
#   - this process parses the file up to that offset followed by the end tags of the elements open around
#     the first entry (its statement and the statement's ancestors);
#   - another Python process parses the start tags of those elements (same names, same namespaces in
#     scope) followed by the file from that offset, with the statement's header and the message id handed
#     over, and sends back its rows and statements.
# The two parts are taken together only if both parsed without any error, and this process's part ended
# with that same statement closed by the end tags added and nothing after them: then the elements open at
# the offset were exactly those (a comment, CDATA section or processing instruction hiding the bytes found
# would have swallowed the end tags added), and the other process read what this one would have. The
# other process gives up at any row problem, note or header problem (it counts lines from the offset, and
# messages name lines): such a file, a file with any error, or anything unexpected is read again from the
# start by one process, so every message is the one a single parse gives. Entries whose reference is their
# number in the statement are numbered by the other process from a placeholder and renumbered here. The
# other process parses with the same safe settings; nothing it reads is evaluated.

SPLIT_MIN_BYTES = 64 * 1024**2  # smaller files are read faster than a process starts (~1 s)
_SPLIT_AT = 0.49  # where to look for an entry, as a share of the file: this process also makes the frame
_SPLIT_WINDOW = 4 * 1024**2  # bytes searched for an entry start tag first on its line
_PLACEHOLDER = "\x00"  # the reference base of the other process's entries of the split statement (no XML text)
_WORKER = "from sepa.camt import _split_worker; _split_worker()"
_DECLARATION = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])1\.0\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?i:utf-8)\2)?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*([\"'])(?:yes|no)\3)?[ \t\r\n]*\?>"
)


def _may_split(source: Source) -> bool:
    if isinstance(source, bytes | bytearray | memoryview) or not sys.executable:
        return False
    try:
        return os.stat(source).st_size >= SPLIT_MIN_BYTES
    except OSError:
        return False


def _utf8(fd: int) -> bool:
    """Whether the file is an XML 1.0 document declared (or taken) as UTF-8, as the other process's part is:
    declared in another encoding, the second part could read differently."""
    head = os.pread(fd, 512, 0)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if head.startswith(b"<?xml"):
        return _DECLARATION.match(head) is not None
    return head[:1] == b"<" and head[1:2] not in (b"", b"\x00")


def _read_split(
    path: str, name: str, message_type: str, buffer: RowBuffer, notes: list[str]
) -> tuple[str | None, list[Statement]] | None:
    """Read the file with a second process when it can be split; None when it must be read again from the
    start by one process. Rows and notes go to `buffer` and `notes` only when the reading succeeded."""
    own_notes = list(notes)
    reading = _Reading(message_type, RowBuffer(), own_notes)
    split: _Split | None = None
    tried = closed = False
    try:
        with open(path, "rb") as raw:
            if not _utf8(raw.fileno()):
                return None
            handle = _Limited(raw)
            events = stream_handle(name, handle, _TAGS, ("end",))  # type: ignore[arg-type]
            try:
                for _event, element in events:
                    tag = element.tag
                    local = tag[tag.find("}") + 1 :]
                    if split is not None and element is split.parent:
                        # The split statement ends: by the end tags added, if nothing follows and nothing changed.
                        closed = reading.state is split.state
                        for _more in events:
                            closed = False
                        break
                    reading.read(local, element)
                    if not tried and local == "Ntry":
                        tried = True
                        split = _Split.start(raw.fileno(), element, reading, handle)
                    release(element)
            finally:
                events.close()
        if split is None:
            reading.finish()  # read by this process alone, from start to end: as `read_camt` does
            buffer.append_frames(reading.buffer.frames())
            notes[:] = own_notes
            return reading.message_id, reading.statements
        result = split.result() if closed else None
    except BankFileError:
        if split is None:
            raise  # the whole file was parsed as it is: the error is the file's
        return None  # perhaps an error of the part only: a single parse says which
    finally:
        if split is not None:
            split.stop()
    if result is None:
        return None
    statements: list[Statement] = result["statements"]
    state = split.state
    buffer.append_frames(reading.buffer.frames())
    buffer.append_frames(_renumbered(chunk, state.ref_base, state.entries) for chunk in result["chunks"])
    notes[:] = own_notes
    state.entries += statements[0].entries
    reading.statements.append(state.finish())
    reading.statements.extend(statements[1:])
    return reading.message_id, reading.statements


class _Limited:
    """A binary file read up to `limit` and then `tail`, once `limit` is set (before it has been read)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._at = 0
        self._limit: int | None = None
        self._tail = b""

    def limit(self, offset: int, tail: bytes) -> bool:
        if self._at > offset:
            return False
        self._limit, self._tail = offset, tail
        return True

    def read(self, size: int = -1) -> bytes:
        if self._limit is None:
            data = self._raw.read(size)
        elif self._at < self._limit:
            data = self._raw.read(
                self._limit - self._at if size is None or size < 0 else min(size, self._limit - self._at)
            )
        else:
            data, self._tail = (self._tail, b"") if size is None or size < 0 else (self._tail[:size], self._tail[size:])
            return data
        self._at += len(data)
        return data


class _Positional:
    """A file descriptor read from `offset` on without moving its (shared) position."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._at = offset

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self._fd, size if size is not None and size >= 0 else 1 << 30, self._at)
        self._at += len(data)
        return data


class _Joined:
    """A binary stream: `head`, then the rest of `handle`."""

    def __init__(self, head: bytes, handle: IO[bytes] | _Positional) -> None:
        self._head = head
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._handle.read(), b""
            else:
                data, self._head = self._head[:size], self._head[size:]
            return data
        return self._handle.read(size)


def _xml_attribute(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    )  # fmt: skip


def _qualified(element: etree._Element) -> str:
    name = local_name(element.tag)
    return f"{element.prefix}:{name}" if element.prefix else name


def _tags_around(parent: etree._Element) -> tuple[str, str]:
    """Start tags of `parent` and its ancestors (outermost first, each declaring the namespaces in scope), and
    their end tags (innermost first)."""
    starts, ends = [], []
    element: etree._Element | None = parent
    while element is not None:
        qualified = _qualified(element)
        declarations = [
            f' xmlns{":" + prefix if prefix else ""}="{_xml_attribute(uri)}"' for prefix, uri in element.nsmap.items()
        ]
        if None not in element.nsmap:
            declarations.append(' xmlns=""')
        starts.append(f"<{qualified}{''.join(declarations)}>")
        ends.append(f"</{qualified}>")
        element = element.getparent()
    return "".join(starts[::-1]), "".join(ends)


def _find_split(fd: int, qualified: str) -> int | None:
    """The offset of an entry start tag first on its line, past `_SPLIT_AT` of the file, or None."""
    pattern = re.compile(rb"\n[ \t\r]*(<" + re.escape(qualified.encode()) + rb")[ \t\r\n/>]")
    start = int(os.fstat(fd).st_size * _SPLIT_AT)
    window = os.pread(fd, _SPLIT_WINDOW, start)
    found = pattern.search(window)
    return start + found.start(1) if found else None


class _Split:
    """The other process, reading the file from an offset; `parent` and `state`: the statement split in two."""

    def __init__(self, process: subprocess.Popen[bytes], parent: etree._Element, state: _State) -> None:
        self.process = process
        self.parent = parent
        self.state = state
        self.received: dict[str, Any] | None = None
        self.receiver = threading.Thread(target=self._receive, name="camt-split-receiver", daemon=True)

    @classmethod
    def start(cls, fd: int, entry: etree._Element, reading: _Reading, handle: _Limited) -> _Split | None:
        """After the first entry: start the other process and limit this one's part; None if not possible."""
        state, parent = reading.state, entry.getparent()
        if state is None or parent is None or state.node is not parent or reading.message_id is None:
            return None
        if local_name(parent.tag) not in STATEMENT_TAGS:
            return None
        try:
            offset = _find_split(fd, _qualified(entry))
        except OSError:
            return None
        if offset is None:
            return None
        starts, ends = _tags_around(parent)
        task = {
            "fd": fd, "offset": offset, "message_type": reading.message_type, "message_id": reading.message_id,
            "state": {name: getattr(state, name) for name in _HANDED_OVER}, "statements_before": state.index - 1,
            "prologue": ('<?xml version="1.0" encoding="UTF-8"?>' + starts).encode(),
            "depth": len(list(parent.iterancestors())) + 1,
        }  # fmt: skip
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-c", _WORKER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, pass_fds=(fd,),
            )  # fmt: skip
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        split = cls(process, parent, state)
        try:
            assert process.stdin is not None
            pickle.dump(task, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            process.stdin.close()
        except (OSError, ValueError):
            split.stop()
            return None
        if not handle.limit(offset, ends.encode()):
            split.stop()
            return None
        split.receiver.start()
        return split

    def _receive(self) -> None:
        """In a thread from the start: the other process's rows as it sends them (so it does not hold them),
        then its statements; anything else, or an early end, leaves `self.received` None."""
        chunks: list[pl.DataFrame] = []
        try:
            assert self.process.stdout is not None
            while True:
                kind, value = pickle.load(self.process.stdout)
                if kind == "rows" and isinstance(value, pl.DataFrame):
                    chunks.append(value)
                elif kind == "done" and isinstance(value, list) and value:
                    self.received = {"chunks": chunks, "statements": value}
                    return
                else:
                    return
        except Exception:  # EOF, a broken pipe, a kill: the file is read again by one process
            return

    def result(self) -> dict[str, Any] | None:
        """What the other process read, or None if it could not read its part."""
        self.receiver.join()
        if self.process.wait() != 0:
            return None
        return self.received

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.receiver.is_alive():
            self.receiver.join()  # the pipe is at its end once the process is gone
        if self.process.stdout is not None:
            self.process.stdout.close()


_HANDED_OVER = ("element", "index", "id", "account_iban", "currency", "opening", "closing", "sign_missing")


def _renumbered(chunk: pl.DataFrame, ref_base: str, before: int) -> pl.DataFrame:
    """Entry references numbered from the placeholder by the other process, numbered in the statement."""
    ref = pl.col("entry_ref")
    number = ref.str.slice(len(_PLACEHOLDER) + 1).cast(pl.Int64, strict=False) + before
    renumbered = pl.format("{}#{}", pl.lit(ref_base), number)
    return chunk.with_columns(
        pl.when(ref.str.starts_with(_PLACEHOLDER + "#")).then(renumbered).otherwise(ref).alias("entry_ref")
    )


def _send(kind: str, *values: object) -> None:
    """To the reading process, one pickle per value (each unpickled and let go of on its own)."""
    for value in values:
        pickle.dump((kind, value), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)


def _split_worker() -> None:
    """The other process: a task from stdin, the file read from its offset, the result pickled to stdout."""
    try:
        task = pickle.load(sys.stdin.buffer)
        buffer = RowBuffer()
        reading = _Reading(task["message_type"], buffer, [], task["statements_before"], strict=True)
        reading.message_id = task["message_id"]
        state = _State(**task["state"], placeholder=True)
        # The reading process's own open file (the same file whatever happens to its name), read at offsets.
        joined = _Joined(task["prologue"], _Positional(task["fd"], task["offset"]))
        for _event, element in stream_handle("<part>", joined, _TAGS, ("end",)):  # type: ignore[arg-type]
            tag = element.tag
            local = tag[tag.find("}") + 1 :]
            if state.node is None:  # the first to end is the entry at the offset, in the statement
                parent = element.getparent()
                if local != "Ntry" or parent is None or len(list(parent.iterancestors())) + 1 != task["depth"]:
                    raise _Unsure
                state.node = parent
                reading.state = state
            reading.read(local, element)
            release(element)
            if buffer.chunks:
                _send("rows", *buffer.frames())
        reading.finish()
        if not reading.statements or state.node is None:
            raise _Unsure
        _send("rows", *buffer.frames())
        _send("done", reading.statements)
        sys.stdout.buffer.flush()
    except BaseException:  # any trouble: the file is read again by one process
        os._exit(1)
