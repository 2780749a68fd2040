"""Plain camt entries read a few thousand at a time, column-wise, as `sepa.camt._entry_rows` reads them.

A large camt repeats a handful of structures, and reading each entry's fields in Python (a dozen look-ups,
dates, amount, references, counterparty) costs about half of what the entry costs. An entry whose structure
(`ShapeCache`) holds only the elements of `_ENTRY_PATHS` and one TxDtls of `_DETAIL_PATHS` is kept as the
texts of its match; `EntryColumns.rows` then reads a batch of them with Polars expressions that give what
`_entry_rows` gives. A row whose texts are not plain (an amount not in the form `1234.50`, a currency or
direction not known, a date not `YYYY-MM-DD`, an account number that is not ASCII) is not read here: its
element, kept until then, is read by `_entry_rows`, so every problem is told exactly as there. Polars strips
and splits on the same whitespace as Python, except U+001C-U+001F, which XML 1.0 does not allow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import polars as pl

from sepa.bank_lines import COLUMNS, CURRENCIES
from sepa.safe_xml import Part, Shape

_BANK_TX_CODE = (
    "BkTxCd", "BkTxCd/Domn", "BkTxCd/Domn/Cd", "BkTxCd/Domn/Fmly", "BkTxCd/Domn/Fmly/Cd",
    "BkTxCd/Domn/Fmly/SubFmlyCd", "BkTxCd/Prtry", "BkTxCd/Prtry/Cd", "BkTxCd/Prtry/Issr",
)  # fmt: skip
_ENTRY_PATHS = frozenset(
    {
        "NtryRef", "Amt", "CdtDbtInd", "RvslInd", "Sts", "Sts/Cd", "Sts/Prtry", "BookgDt", "BookgDt/Dt",
        "BookgDt/DtTm", "ValDt", "ValDt/Dt", "ValDt/DtTm", "AcctSvcrRef", "AddtlNtryInf", "NtryDtls",
        "NtryDtls/TxDtls", *_BANK_TX_CODE,
    }
)  # fmt: skip
_PARTY = ("", "/Nm", "/Pty", "/Pty/Nm")
_ACCOUNT = ("", "/Id", "/Id/IBAN")
_DETAIL_PATHS = frozenset(
    {
        "Refs", "Refs/MsgId", "Refs/AcctSvcrRef", "Refs/PmtInfId", "Refs/InstrId", "Refs/EndToEndId", "Refs/UETR",
        "Refs/TxId", "Refs/MndtId", "Amt", "AmtDtls", "AmtDtls/TxAmt", "AmtDtls/TxAmt/Amt", "CdtDbtInd",
        "RltdPties", "RmtInf", "RmtInf/Ustrd", "RmtInf/Strd", "RmtInf/Strd/CdtrRefInf",
        "RmtInf/Strd/CdtrRefInf/Ref", "RtrInf", "RtrInf/Rsn", "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry",
        "RtrInf/AddtlInf", *_BANK_TX_CODE,
        *(f"RltdPties/{party}{end}" for party in ("Dbtr", "Cdtr") for end in _PARTY),
        *(f"RltdPties/{party}Acct{end}" for party in ("Dbtr", "Cdtr") for end in _ACCOUNT),
    }
)  # fmt: skip
# ISO bank transaction sub-families that are returns (reversals of a payment or a debit).
RETURN_SUBFAMILIES = frozenset({"RRTN", "UPDD", "PRDD", "RPCR"})
_PLAIN_AMOUNT = r"^[0-9]{1,16}(?:\.[0-9]{1,2})?$"  # as `sepa.bank_lines._PLAIN_RE`
_PLAIN_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_NOT_PROVIDED = "NOTPROVIDED"
_CURRENCIES = sorted(CURRENCIES)


@dataclass(frozen=True, eq=False)  # one per structure: compared by identity
class Plan:
    """How rows are read from the texts of one structure: the groups kept (`take`, whose indices are
    `groups`), the position of the amount element (its `Ccy` is read from the element) and the expressions
    that make the row, in stages (`row`: what several columns use is a column of the first)."""

    take: Callable[[tuple[str, ...]], tuple[str, ...]]
    groups: tuple[int, ...]
    width: int
    amount_at: tuple[int, ...]
    row: list[list[pl.Expr]]
    clean: pl.Expr


def plan_for(shape: Shape) -> Plan | None:
    """The plan of a structure, or None when its entries are read by `_entry_rows` (anything not listed,
    several transactions, an element listed twice where one is read, an empty amount)."""
    if len(shape.parts) != 2:
        return None
    (_root, entry), (_at, detail) = shape.parts
    if not (set(entry.positions) <= _ENTRY_PATHS and set(detail.positions) <= _DETAIL_PATHS):
        return None
    if len(entry.positions.get("NtryDtls/TxDtls", ())) != 1:
        return None
    amount = next(((part, path) for part, path in ((detail, "Amt"), (detail, "AmtDtls/TxAmt/Amt"), (entry, "Amt"))
                   if path in part.positions), None)  # fmt: skip
    if amount is None:
        return None
    part, path = amount
    if len(part.texts.get(path, ())) != len(part.positions[path]):
        return None  # an empty <Amt/>: a problem, told by `_entry_rows`
    columns = _Columns()
    row = _row_expressions(entry, detail, columns, amount_group=columns.of(part.texts[path][0]))
    take = itemgetter(*columns.groups) if len(columns.groups) > 1 else (lambda groups: (groups[columns.groups[0]],))
    return Plan(take, tuple(columns.groups), len(columns.groups), part.positions[path][0], row, _clean(columns))


class _Columns:
    """The match groups a plan reads, named `g0, g1...` in the order first asked for."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.plain: list[str] = []  # columns whose text must be plain for the row to be read here
        self.ascii: list[str] = []

    def of(self, group: int) -> str:
        if group not in self.groups:
            self.groups.append(group)
        return f"g{self.groups.index(group)}"


def _row_expressions(entry: Part, detail: Part, columns: _Columns, amount_group: str) -> list[list[pl.Expr]]:
    """The row's expressions in two stages, reading a frame of the kept groups plus `counter`, `ccy`, and the
    statement's `message_type`, `message_id`, `account_iban` and `ref_base` as literals' columns: first the
    columns that several others use (the direction, the transaction code, the parties), then one expression
    per column of `COLUMNS`."""

    def text(part: Part, *paths: str) -> pl.Expr:
        # As `FlatView.text`: the first of the paths' leaves whose stripped text is not empty.
        found = [pl.col(columns.of(g)).str.strip_chars() for path in paths for g in part.leaves.get(path, ())]
        found = [pl.when(e.str.len_bytes() > 0).then(e) for e in found]
        return pl.coalesce(found) if found else pl.lit(None, pl.String)

    def joined(part: Part, path: str) -> pl.Expr:
        # As `sepa.camt.joined(FlatView.texts(path))`: whitespace runs collapsed, None when empty.
        found = [pl.col(columns.of(g)) for g in part.texts.get(path, ())]
        if not found:
            return pl.lit(None, pl.String)
        text = pl.concat_str(found, separator=" ").str.replace_all(r"\s+", " ").str.strip_chars()
        return pl.when(text.str.len_bytes() > 0).then(text)

    def code(part: Part) -> pl.Expr:
        if "BkTxCd/Domn" not in part.positions:
            return pl.lit(None, pl.String)
        return pl.concat_str(  # null when any of the three is missing, as `bank_tx_code`
            [text(part, "BkTxCd/Domn/Cd"), text(part, "BkTxCd/Domn/Fmly/Cd"), text(part, "BkTxCd/Domn/Fmly/SubFmlyCd")],
            separator="/",
        )

    def is_return(code_: pl.Expr) -> pl.Expr:
        return code_.str.split("/").list.last().is_in(sorted(RETURN_SUBFAMILIES)).fill_null(False)

    def reference(path: str) -> pl.Expr:
        if path not in detail.positions:
            return pl.lit(None, pl.String)
        found = text(detail, path)
        return pl.when(found.str.to_uppercase() != _NOT_PROVIDED).then(found)

    def iban(path: str) -> pl.Expr:
        found = text(detail, path)
        columns.ascii.extend(columns.of(g) for g in detail.leaves.get(path, ()))
        return found.str.replace_all(r"\s", "").str.to_uppercase()  # as `normalise_iban`

    def day(path: str, *texts: str) -> pl.Expr:
        if path not in entry.positions:
            return pl.lit(None, pl.Date)
        found = text(entry, *texts).str.slice(0, 10)
        return pl.when(found.str.contains(_PLAIN_DAY)).then(found.str.to_date("%Y-%m-%d", strict=False))

    reversal = (
        text(entry, "RvslInd").str.to_lowercase().is_in(["true", "1"]).fill_null(False)
        if "RvslInd" in entry.positions
        else pl.lit(False)
    )
    shared: dict[str, pl.Expr] = {}  # computed once, in a first stage: each is used several times below

    def once(name: str, expression: pl.Expr) -> pl.Expr:
        shared[name] = expression
        return pl.col(name)

    entry_direction = text(entry, "CdtDbtInd")
    direction = once("_direction", pl.coalesce(text(detail, "CdtDbtInd"), entry_direction))
    entry_code = code(entry)
    own_code = code(detail)
    # As `_transaction_code`: the entry's code when it books a return and the transaction's names the original.
    tx_code = (
        pl.when(own_code.is_null() | (is_return(entry_code) & ~is_return(own_code)))
        .then(entry_code)
        .otherwise(own_code)
    )
    returned_code = once("_returned_code", is_return(tx_code))  # (a stage's columns cannot use each other)
    tx_code = once("_tx_code", tx_code)
    entry_info = joined(entry, "AddtlNtryInf") if "AddtlNtryInf" in entry.positions else pl.lit(None, pl.String)

    name = iban_ = pl.lit(None, pl.String)
    if "RltdPties" in detail.positions:
        own = pl.col("account_iban")
        returned = returned_code | reversal | pl.lit("RtrInf" in detail.positions)
        debtor = (
            once("_debtor_name", text(detail, "RltdPties/Dbtr/Nm", "RltdPties/Dbtr/Pty/Nm")),
            once("_debtor_iban", iban("RltdPties/DbtrAcct/Id/IBAN")),
        )
        creditor = (
            once("_creditor_name", text(detail, "RltdPties/Cdtr/Nm", "RltdPties/Cdtr/Pty/Nm")),
            once("_creditor_iban", iban("RltdPties/CdtrAcct/Id/IBAN")),
        )
        for chosen, other, way in ((debtor, creditor, "CRDT"), (creditor, debtor, "DBIT")):
            # As `_counterparty`: the other party when the chosen one is the own account or, on a return, absent.
            swap = (own.is_not_null() & (chosen[1] == own)).fill_null(False) | (
                returned & chosen[0].is_null() & chosen[1].is_null()
            )
            picked_name = pl.when(swap).then(other[0]).otherwise(chosen[0])
            picked_iban = pl.when(swap).then(other[1]).otherwise(chosen[1])
            picked_iban = (
                pl.when((own.is_not_null() & (picked_iban == own)).fill_null(False)).then(None).otherwise(picked_iban)
            )
            name = pl.when(direction == way).then(picked_name).otherwise(name)
            iban_ = pl.when(direction == way).then(picked_iban).otherwise(iban_)

    return_reason = return_info = pl.lit(None, pl.String)
    if "RtrInf" in detail.positions:
        return_reason = text(detail, "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry")
        return_info = joined(detail, "RtrInf/AddtlInf")
    else:
        return_info = pl.when(returned_code).then(entry_info)
    remittance = (
        pl.coalesce(joined(detail, "RmtInf/Ustrd"), joined(detail, "RmtInf/Strd/CdtrRefInf/Ref"))
        if "RmtInf" in detail.positions
        else pl.lit(None, pl.String)
    )
    amount = pl.col(amount_group)
    columns.plain.append(amount_group)
    cents = amount.str.extract(r"^([0-9]+)", 1).cast(pl.Int64) * 100 + amount.str.extract(
        r"\.([0-9]+)$", 1
    ).str.pad_end(2, "0").cast(pl.Int64).fill_null(0)
    entry_ref = pl.coalesce(
        text(entry, "NtryRef", "AcctSvcrRef"), pl.format("{}#{}", pl.col("ref_base"), pl.col("counter"))
    )
    found: dict[str, pl.Expr] = {
        "message_type": pl.col("message_type"),
        "message_id": pl.col("message_id"),
        "account_iban": pl.col("account_iban"),
        "entry_ref": entry_ref,
        "booking_date": day("BookgDt", "BookgDt/Dt", "BookgDt/DtTm"),
        "value_date": day("ValDt", "ValDt/Dt", "ValDt/DtTm"),
        "status": text(entry, "Sts", "Sts/Cd", "Sts/Prtry"),
        "direction": direction,
        "amount_cents": cents,
        "currency": pl.col("ccy"),
        "reversal": reversal,
        "bank_tx_code": tx_code,
        "end_to_end_id": reference("Refs/EndToEndId"),
        "payment_info_id": reference("Refs/PmtInfId"),
        "instruction_id": reference("Refs/InstrId"),
        "mandate_id": reference("Refs/MndtId"),
        "return_reason": return_reason,
        "return_info": return_info,
        "original_amount_cents": pl.lit(None, pl.Int64),
        "charges_cents": pl.lit(None, pl.Int64),
        "counterparty_name": name,
        "counterparty_iban": iban_,
        "remittance": remittance,
        "row_problem": pl.lit(None, pl.String),
    }
    # The raw dates, to tell a date that could not be read from one that is absent.
    found["_booking"] = text(entry, "BookgDt/Dt", "BookgDt/DtTm") if "BookgDt" in entry.positions else pl.lit(None)
    found["_value"] = text(entry, "ValDt/Dt", "ValDt/DtTm") if "ValDt" in entry.positions else pl.lit(None)
    row = [expression.cast(COLUMNS.get(column, pl.String)).alias(column) for column, expression in found.items()]
    return [[expression.alias(name) for name, expression in shared.items()], row]


def _clean(columns: _Columns) -> pl.Expr:
    """Whether the row read here is the one `_entry_rows` reads: nothing about it would be a problem."""
    condition = pl.col("ccy").is_in(_CURRENCIES).fill_null(False)
    condition &= pl.col("direction").is_in(["CRDT", "DBIT"]).fill_null(False)
    for column in columns.plain:
        condition &= pl.col(column).str.contains(_PLAIN_AMOUNT).fill_null(False)
    for column in columns.ascii:
        condition &= ~pl.col(column).str.contains(r"[^\x00-\x7f]").fill_null(False)
    for raw, read in (("_booking", "booking_date"), ("_value", "value_date")):
        condition &= pl.col(raw).is_null() | (pl.col(read).dt.year() >= 1).fill_null(False)  # Python has no year 0
    return condition


class EntryColumns:
    """Entries kept to be read together: `add` one, `rows` reads them all and forgets them."""

    def __init__(self) -> None:
        self._kept: dict[Plan, list[tuple[Any, ...]]] = {}
        self.entries: list[tuple[Any, int]] = []  # (element, counter) in the order added

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, plan: Plan, groups: tuple[str, ...], element: Any, counter: int) -> None:
        """Keep a parsed entry of `plan`'s structure, `counter` its number in its statement."""
        self.add_taken(plan, (_at(element, plan.amount_at).get("Ccy"), *plan.take(groups)), element, counter)

    def add_taken(self, plan: Plan, values: tuple[str, ...], element: Any, counter: int) -> None:
        """Keep an entry of `plan`'s structure whose values are already taken: its amount's currency, then
        the texts of `plan.groups`."""
        self._kept.setdefault(plan, []).append((len(self.entries), counter, *values))
        self.entries.append((element, counter))

    def rows(self, statement: dict[str, str | None]) -> tuple[list[pl.DataFrame], list[int]]:
        """The rows read here (frames in `COLUMNS` with a leading `at`, the entry's position) and the
        positions of the entries to be read by `_entry_rows`."""
        frames, unread = [], []
        for plan, kept in self._kept.items():
            names = ["at", "counter", "ccy", *(f"g{i}" for i in range(plan.width))]
            schema = dict.fromkeys(names, pl.String) | {"at": pl.Int64, "counter": pl.Int64}
            frame = (
                pl.DataFrame(dict(zip(names, zip(*kept, strict=True), strict=True)), schema=schema)  # by column: faster
                .with_columns(*(pl.lit(value, pl.String).alias(key) for key, value in statement.items()))
                .pipe(_in_stages, plan.row)
                .with_columns(plan.clean.alias("_clean"))
            )
            frames.append(frame.filter(pl.col("_clean")).select("at", *COLUMNS))
            unread.extend(frame.filter(~pl.col("_clean"))["at"].to_list())
        return frames, sorted(unread)


def _in_stages(frame: pl.DataFrame, stages: list[list[pl.Expr]]) -> pl.DataFrame:
    for stage in stages:
        frame = frame.with_columns(*stage)
    return frame


def _at(element: Any, position: tuple[int, ...]) -> Any:
    for index in position:
        element = element[index]
    return element
