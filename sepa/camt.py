"""Streaming reader for camt.052 (account report), camt.053 (statement) and camt.054 (notification).

Versions .001.02 to .001.10 differ in where things are (`TxDtls/Amt` vs `TxDtls/AmtDtls/TxAmt/Amt`,
`Dbtr/Pty/Nm` vs `Dbtr/Nm`, `Chrgs/Rcrd` vs `Chrgs/Amt`, `<Sts><Cd>BOOK</Cd></Sts>` vs `<Sts>BOOK</Sts>`);
every variant is looked for, by local name. Entries are read one at a time as the parser reaches their
end and then freed together with everything before them, so memory does not grow with the number of
entries; a statement's header (id, account, balances) is read when its first entry, or its end, arrives.

Speed (a million entries is a file of 1.6 GB): an entry whose structure was met before is read through a
`ShapeCache` (one serialisation and one regular expression match instead of a walk in Python, answering
exactly as `View`), and a large file is read by two processes, half each (`sepa.camt_split`), with every
doubt settled by reading it again in one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from lxml import etree

from sepa.bank_lines import COLUMNS, RowBuffer, empty_row, read_amount, to_date
from sepa.camt_columns import RETURN_SUBFAMILIES, EntryColumns, Plan, plan_for
from sepa.camt_skim import Skimmed, Skimmer, parse_again
from sepa.iban import iban_problem, normalise_iban
from sepa.safe_xml import (
    FlatView,
    Shape,
    ShapeCache,
    Source,
    View,
    flat_views,
    local_name,
    release,
    source_name,
    stream,
)

ViewLike = View | FlatView

STATEMENT_TAGS = frozenset({"Stmt", "Rpt", "Ntfctn"})
NOT_PROVIDED = "NOTPROVIDED"
# Sub-families that book a return or reversal: their AddtlNtryInf may be the only reason given.
_OPENING = ("OPBD", "PRCD")  # opening booked, else the previous closing booked
_CLOSING = ("CLBD",)
MAX_NOTES = 200
SKIM_ENTRIES = True  # plain entries of known structures are read from their text (`sepa.camt_skim`)
KEPT_ENTRIES = 4_096  # entries read column-wise together: their elements are kept until then
_PLACEHOLDER = "\x00"  # the reference base of the other process's entries of the split statement (no XML text)


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


Match = tuple[Shape, tuple[str, ...]]


class _Readers:
    """The structures of one file's entries and transactions met so far (see `ShapeCache`), and the plans
    of those read column-wise (`sepa.camt_columns`)."""

    def __init__(self) -> None:
        self.entries = ShapeCache(_ENTRY_STOP, _DETAILS)
        self.details = ShapeCache(frozenset(), "")
        self._plans: dict[Shape, Plan | None] = {}

    def match(self, entry: etree._Element) -> Match | None:
        """The entry's structure and texts; None for a batch (read a transaction at a time) or when `View`
        must read it."""
        return None if _is_batch(entry) else self.entries.match(entry)

    def plan(self, shape: Shape) -> Plan | None:
        """How entries of this structure are read column-wise, or None when `_entry_rows` reads them."""
        if shape not in self._plans:
            self._plans[shape] = plan_for(shape)
        return self._plans[shape]

    def views(
        self, entry: etree._Element, found: Match | None
    ) -> tuple[ViewLike, list[tuple[etree._Element, ViewLike]]]:
        """The entry's view and, for each of its NtryDtls/TxDtls, the element and its view; `found` is the
        entry's `match`."""
        if found is not None:
            ev, details = flat_views(entry, *found)
            return ev, [(_at(entry, position), view) for position, view in details]
        ev = View(entry, _ENTRY_STOP)
        views: list[tuple[etree._Element, ViewLike]] = []
        for detail in ev.all(_DETAILS):
            flat = self.details.views(detail)
            views.append((detail, flat[0] if flat is not None else View(detail)))
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
    found: Match | None = None,
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
        ev, details = readers.views(entry, found)
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
    return code is not None and code[code.rfind("/") + 1 :] in RETURN_SUBFAMILIES


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
        self.kept = EntryColumns()  # entries of the current statement waiting to be read column-wise
        self.skimmer: Skimmer | None = None

    def skim(self, handle: Any) -> Skimmer | Any:
        """The file as the parser should read it: plain entries of known structures read from their text
        (unless `SKIM_ENTRIES` is off: then the file as it is)."""
        if not SKIM_ENTRIES:
            return handle
        readers = self.readers
        self.skimmer = Skimmer(handle, readers.entries, readers.plan)
        return self.skimmer

    def _begin(self, node: etree._Element | None) -> _State:
        state = _State.begin(node, self.statements_before + len(self.statements) + 1)
        if self.strict and state.problems:
            raise _Unsure
        return state

    def read(self, local: str, element: etree._Element) -> bool:
        """One element ended: an entry, a statement or the group header (anything else is not asked for).
        Returns whether the element may be released now (an entry kept to be read column-wise may not)."""
        if local == "Ntry":
            parent = element.getparent()
            state = self.state
            if state is None or state.node is not parent:
                self.read_kept()
                if state is not None:  # entries of an enclosing element that was not a statement
                    self.statements.append(state.finish())
                state = self.state = self._begin(parent)
            run = self.skimmer.take(element) if self.skimmer is not None else None
            if run is not None:
                released = False
                for skimmed in run:
                    state.entries += 1
                    self.kept.add_taken(skimmed.plan, skimmed.values, skimmed, state.entries)
                    released = len(self.kept) >= KEPT_ENTRIES
                    if released:
                        self.read_kept()
                return released  # as parsed entries would be: kept until read, with their statement's header
            state.entries += 1
            found = self.readers.match(element)
            plan = self.readers.plan(found[0]) if found is not None else None
            if plan is not None:
                self.kept.add(plan, found[1], element, state.entries)  # type: ignore[index]
                if len(self.kept) < KEPT_ENTRIES:
                    return False
                self.read_kept()
                return True
            self.read_kept()  # rows stay in the file's order
            self._add(_entry_rows(element, state, self.message_type, self.message_id, self.notes, self.readers, found))
            return True
        self.read_kept()
        if local in STATEMENT_TAGS:
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
        return True

    def _add(self, rows: list[dict[str, Any]], buffer: RowBuffer | None = None) -> None:
        if self.strict and (self.notes or any(row["row_problem"] is not None for row in rows)):
            raise _Unsure
        (buffer or self.buffer).extend(rows)

    def read_kept(self) -> None:
        """Read the entries kept: column-wise, except those whose texts are not plain (`_entry_rows`)."""
        kept, state = self.kept, self.state
        if not len(kept) or state is None:
            return
        self.kept = EntryColumns()
        statement = {"message_type": self.message_type, "message_id": self.message_id,
                     "account_iban": state.account_iban, "ref_base": state.ref_base}  # fmt: skip
        frames, unread = kept.rows(statement)
        if unread:
            slow, at, counted = RowBuffer(), [], state.entries
            skimmed = [kept.entries[p][0] for p in unread if isinstance(kept.entries[p][0], Skimmed)]
            parsed = iter(parse_again(skimmed) if skimmed else ())
            if skimmed and self.skimmer is not None:
                self.skimmer.parsed_again(len(skimmed))
            try:
                for position in unread:
                    element, state.entries = kept.entries[position]  # the number it had when it was met
                    if isinstance(element, Skimmed):
                        element = next(parsed)
                    rows = _entry_rows(element, state, self.message_type, self.message_id, self.notes)
                    self._add(rows, slow)
                    at.extend([position] * len(rows))
            finally:
                state.entries = counted
            frames.extend(
                chunk.with_columns(pl.Series("at", at[start : start + chunk.height], dtype=pl.Int64)).select(
                    "at", *COLUMNS
                )
                for start, chunk in _offsets(slow.frames())
            )
        self.buffer.append_frames([pl.concat(frames).sort("at").drop("at")])

    def finish(self) -> None:
        self.read_kept()
        if self.state is not None:
            self.statements.append(self.state.finish())
            self.state = None


def _offsets(chunks: list[pl.DataFrame]) -> Iterable[tuple[int, pl.DataFrame]]:
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += chunk.height


def read_camt(
    source: Source, message_type: str, buffer: RowBuffer, notes: list[str]
) -> tuple[str | None, list[Statement]]:
    """Stream a camt.052/053/054 into `buffer`; returns (GrpHdr/MsgId, statements). Notes go to `notes`.

    A large file is read by two processes, each about half of it (see `sepa.camt_split`); when anything
    about the split is not as expected, the file is read here from the start, as a smaller one is.
    """
    from sepa import camt_split  # it reads with this module's classes; imported here, not in a cycle

    if camt_split.may_split(source):
        done = camt_split.read_split(os.fspath(source), source_name(source), message_type, buffer, notes)  # type: ignore[arg-type]
        if done is not None:
            return done
    reading = _Reading(message_type, buffer, notes)
    # End events only (half the events of start+end): a statement is recognised by its first entry's parent.
    events = stream(source, _TAGS, events=("end",), wrap=reading.skim)
    try:
        for _event, element in events:
            tag = element.tag
            if reading.read(tag[tag.find("}") + 1 :], element):
                release(element)
    finally:
        events.close()
    reading.finish()
    return reading.message_id, reading.statements
