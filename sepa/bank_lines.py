"""The rows read from bank files (`BankLines`), exact decimal amounts, and a columnar row buffer.

One row per transaction, whatever the file (camt.052/053/054 entry or TxDtls, pain.002 transaction or
rejected group/payment information). Money is integer cents, read from the decimal text without floats;
a value that cannot be read exactly is never guessed: the row keeps `amount_cents` null and says why in
`row_problem`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from operator import itemgetter
from typing import Any

import pandera.polars as pa
import polars as pl
from lxml import etree

INT64_MAX = 2**63 - 1
_AMOUNT_RE = re.compile(r"^\+?([0-9]*)(?:\.([0-9]*))?$")  # ASCII digits only: int() reads other scripts' too
_PLAIN_RE = re.compile(r"([0-9]{1,16})(?:\.([0-9]{1,2}))?").fullmatch
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
# ISO 4217 currency codes (list of 2026). A code of the right shape that is not one of them is a problem, never
# booked: an amount is only as good as its currency. XXX ("no currency") and XTS ("for testing") are codes of the
# standard that name no money.
_ISO_4217 = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP "
    "GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT "
    "LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR "
    "NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN "
    "SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAD "
    "XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG"
)
CURRENCIES = frozenset(_ISO_4217.split())
_NOT_MONEY = {"XXX": "no currency", "XTS": "testing"}
_DATE_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})")

# Column -> Polars type, in the order of the frame.
COLUMNS: dict[str, type[pl.DataType]] = {
    "message_type": pl.String,
    "message_id": pl.String,
    "account_iban": pl.String,
    "entry_ref": pl.String,
    "booking_date": pl.Date,
    "value_date": pl.Date,
    "status": pl.String,
    "direction": pl.String,
    "amount_cents": pl.Int64,
    "currency": pl.String,
    "reversal": pl.Boolean,
    "bank_tx_code": pl.String,
    "end_to_end_id": pl.String,
    "payment_info_id": pl.String,
    "instruction_id": pl.String,
    "mandate_id": pl.String,
    "return_reason": pl.String,
    "return_info": pl.String,
    "original_amount_cents": pl.Int64,
    "charges_cents": pl.Int64,
    "counterparty_name": pl.String,
    "counterparty_iban": pl.String,
    "remittance": pl.String,
    "row_problem": pl.String,
}
SCHEMA = pl.Schema(COLUMNS)


class BankLines(pa.DataFrameModel):
    """One transaction reported by a bank (camt.052/053/054) or a payment status report (pain.002).

    Money columns are integer cents; a row whose amount, currency or direction could not be read has a
    `row_problem` and no `amount_cents` (camt), never a zero or a guess.
    """

    message_type: pl.String = pa.Field(str_matches=r"^(camt|pain)\.\d{3}")
    message_id: pl.String = pa.Field(nullable=True)
    account_iban: pl.String = pa.Field(nullable=True)
    entry_ref: pl.String = pa.Field(str_length={"min_value": 1})
    booking_date: pl.Date = pa.Field(nullable=True)
    value_date: pl.Date = pa.Field(nullable=True)
    status: pl.String = pa.Field(nullable=True)
    direction: pl.String = pa.Field(nullable=True, isin=["CRDT", "DBIT"])
    amount_cents: pl.Int64 = pa.Field(nullable=True, ge=0)
    currency: pl.String = pa.Field(nullable=True, str_matches=r"^[A-Z]{3}$")
    reversal: pl.Boolean
    bank_tx_code: pl.String = pa.Field(nullable=True)
    end_to_end_id: pl.String = pa.Field(nullable=True)
    payment_info_id: pl.String = pa.Field(nullable=True)
    instruction_id: pl.String = pa.Field(nullable=True)
    mandate_id: pl.String = pa.Field(nullable=True)
    return_reason: pl.String = pa.Field(nullable=True)
    return_info: pl.String = pa.Field(nullable=True)
    original_amount_cents: pl.Int64 = pa.Field(nullable=True, ge=0)
    charges_cents: pl.Int64 = pa.Field(nullable=True)
    counterparty_name: pl.String = pa.Field(nullable=True)
    counterparty_iban: pl.String = pa.Field(nullable=True)
    remittance: pl.String = pa.Field(nullable=True)
    row_problem: pl.String = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True

    @pa.dataframe_check(error="a row with a row_problem must not carry an amount")
    @classmethod
    def no_amount_with_problem(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("amount_cents").is_null() | pl.col("row_problem").is_null())

    @pa.dataframe_check(error="a camt row without an amount must say why in row_problem")
    @classmethod
    def camt_amount_or_problem(cls, data: pa.PolarsData) -> pl.LazyFrame:
        camt = pl.col("message_type").str.starts_with("camt")
        return data.lazyframe.select(~camt | pl.col("amount_cents").is_not_null() | pl.col("row_problem").is_not_null())


def to_cents(text: str | None) -> tuple[int | None, str | None]:
    """Decimal text to integer cents, exactly: `'12.5'` -> 1250, `'0.01'` -> 1; else (None, why).

    Trailing zeros beyond the cents are exact and accepted (`'1.230'` -> 123); a third non-zero decimal,
    a sign, an exponent or anything not a plain decimal is a problem, never rounded.
    """
    if text is None:
        return None, "is empty"
    fast = _PLAIN_RE(text)  # the common case, e.g. "1234.50", in one C call
    if fast is not None:
        units, fraction = fast.groups()
        return int(units) * 100 + (int(fraction.ljust(2, "0")) if fraction else 0), None
    raw = text.strip()
    if not raw:
        return None, "is empty"
    if raw.startswith("-"):
        return None, f"{raw[:40]!r} is negative"
    match = _AMOUNT_RE.match(raw)
    if not match or not (match.group(1) or match.group(2)):
        return None, f"{raw[:40]!r} is not a number"
    units, fraction = match.group(1) or "0", match.group(2) or ""
    if fraction[2:].strip("0"):
        return None, f"{raw[:40]!r} has more than 2 decimals"
    if len(units.lstrip("0")) > 16:
        return None, f"{raw[:40]!r} is too large"
    cents = int(units) * 100 + int((fraction[:2] or "0").ljust(2, "0"))
    if cents > INT64_MAX:
        return None, f"{raw[:40]!r} is too large"
    return cents, None


def read_amount(element: etree._Element | None, what: str) -> tuple[int | None, str | None, list[str]]:
    """(cents, currency, problems) of an `Amt Ccy="EUR"` style element; problems name what and the line."""
    if element is None:
        return None, None, [f"{what} missing"]
    cents, why = to_cents(element.text)
    currency = element.get("Ccy")
    if why is None and currency in CURRENCIES:
        return cents, currency, []
    where = f"line {element.sourceline}: {what}"
    problems = [f"{where} {why}"] if why else []
    currency = (currency or "").strip() or None
    if currency is None:
        problems.append(f"{where} has no currency (Ccy)")
    elif not _CURRENCY_RE.match(currency):
        problems.append(f"{where} currency {currency[:10]!r} is not an ISO currency code")
        currency = None
    elif currency in _NOT_MONEY:
        problems.append(f"{where} currency {currency!r} is ISO 4217's code for {_NOT_MONEY[currency]}, not money")
        currency = None
    elif currency not in CURRENCIES:
        problems.append(f"{where} currency {currency!r} is not an ISO 4217 currency code")
        currency = None
    return cents, currency, problems


def to_date(text: str | None) -> date | None:
    """`2024-05-03` or `2024-05-03T10:00:00+02:00` -> date; None if empty; ValueError if not a date."""
    if not text:
        return None
    day = text.strip()[:10]
    found = _DATES.get(day)
    if found is not None:
        return found
    match = _DATE_RE.match(day)
    try:
        if not match:
            raise ValueError
        found = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a date") from None
    if len(_DATES) < 100_000:  # a statement has few distinct days; the cache saves parsing each time
        _DATES[day] = found
    return found


_DATES: dict[str, date] = {}


_EMPTY_ROW: dict[str, Any] = {**dict.fromkeys(COLUMNS), "reversal": False}


def empty_row(message_type: str) -> dict[str, Any]:
    """A row with every column null except the message type and `reversal` (False)."""
    row = _EMPTY_ROW.copy()
    row["message_type"] = message_type
    return row


class RowBuffer:
    """Rows collected as tuples and turned into Polars chunks as they come, so a million-entry statement
    never holds a million Python dicts (or a million Python strings per column) at once."""

    def __init__(self, chunk_rows: int = 20_000) -> None:
        self._chunk_rows = chunk_rows
        self._rows: list[tuple[Any, ...]] = []
        self._chunks: list[pl.DataFrame] = []
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        """Append one row (a dict with every column of `COLUMNS`)."""
        self.extend((row,))

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows (dicts with every column of `COLUMNS`)."""
        before = len(self._rows)
        self._rows.extend(map(_as_tuple, rows))
        self.count += len(self._rows) - before
        if len(self._rows) >= self._chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            columns = [
                _series(name, values) for name, values in zip(COLUMNS, zip(*self._rows, strict=True), strict=True)
            ]
            self._chunks.append(pl.DataFrame(columns))
            self._rows = []

    @property
    def chunks(self) -> int:
        """How many chunks are made and not yet taken (by `frames` or `frame`)."""
        return len(self._chunks)

    def frames(self) -> list[pl.DataFrame]:
        """The rows so far as chunks (not validated), taken out of the buffer."""
        self._flush()
        chunks, self._chunks = self._chunks, []
        return chunks

    def append_frames(self, frames: Iterable[pl.DataFrame]) -> None:
        """Append rows already made into chunks (by `frames` of another buffer), after those added so far."""
        self._flush()
        for chunk in frames:
            self._chunks.append(chunk)
            self.count += chunk.height

    def frame(self) -> pl.DataFrame:
        """All rows as one frame validated by `BankLines`, each column in one piece.

        A frame of many chunks is copied whole by the first `select` or join that meets it (320 MB for a
        million lines, while booking them). Joined here a column at a time, the rows never exist twice."""
        self._flush()
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return BankLines.validate(pl.DataFrame(schema=SCHEMA))
        columns = []
        for name in chunks[0].columns:
            columns.append(pl.concat([chunk.get_column(name) for chunk in chunks], rechunk=True))
            chunks = [chunk.drop(name) for chunk in chunks]  # and the column's chunks are let go of
        return BankLines.validate(pl.DataFrame(columns))


_as_tuple = itemgetter(*COLUMNS)
_EPOCH = date(1970, 1, 1).toordinal()


def _series(name: str, values: tuple[Any, ...]) -> pl.Series:
    """One column of a chunk. Polars' conversion of Python objects costs several times the data in memory
    it keeps for later (measured: 85 MB for a 21 MB frame); a column of one repeated value (often all
    null) is made with `repeat`, and dates go through their day numbers, which keeps it near the data."""
    dtype = COLUMNS[name]
    first = values[0]
    if values.count(first) == len(values):  # compares as `v is first or v == first`, in C
        return pl.repeat(first, len(values), dtype=dtype, eager=True).alias(name)
    if dtype is pl.Date:
        days = [None if v is None else v.toordinal() - _EPOCH for v in values]
        return pl.Series(name, days, dtype=pl.Int32).cast(pl.Date)
    return pl.Series(name, values, dtype=dtype)
