"""A bank line's identity: the same for the same transaction from any file, and the same in every version of
the books (ids already stored must be found again)."""

from __future__ import annotations

import hashlib
from datetime import date

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.reconciliation import line_identity

TEXTS = st.none() | st.text(max_size=12)
LINES = st.lists(
    st.fixed_dictionaries(
        {
            "message_type": st.none() | st.sampled_from(["camt.053.001.02", "camt.054.001.08", "pain.002.001.10"]),
            "account_iban": TEXTS,
            "entry_ref": TEXTS,
            "end_to_end_id": TEXTS,
            "payment_info_id": TEXTS,
            "direction": st.none() | st.sampled_from(["CRDT", "DBIT"]),
            "amount_cents": st.none() | st.integers(-(10**12), 10**12),
            "booking_date": st.none() | st.dates(date(1, 1, 1), date(9999, 12, 31)),
            "reversal": st.none() | st.booleans(),
            "status": TEXTS,
            "return_reason": TEXTS,
        }
    ),
    min_size=1,
    max_size=30,
)
IDENTITY = ("account_iban", "entry_ref", "end_to_end_id", "payment_info_id", "direction", "amount_cents",
            "booking_date", "reversal", "status", "return_reason")  # fmt: skip
SCHEMA = {"amount_cents": pl.Int64, "booking_date": pl.Date, "reversal": pl.Boolean}


def expected_id(line: dict) -> str:
    """The identity as documented: `family|account_iban|...|return_reason`, hashed, its first 32 hex digits."""
    family = "status" if (line["message_type"] or "").startswith("pain.002") else "booking"
    parts = [family]
    for name in IDENTITY:
        value = line[name]
        parts.append("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@settings(max_examples=60, deadline=None)
@given(LINES)
def test_line_ids_are_the_documented_hash(lines: list[dict]) -> None:
    frame = pl.DataFrame(lines, schema={name: SCHEMA.get(name, pl.String) for name in lines[0]})
    with duckdb.connect() as con:
        assert line_identity(con, frame).to_list() == [expected_id(line) for line in lines]


def test_a_line_id_stays_what_the_books_hold() -> None:
    line = {"message_type": "camt.054.001.08", "account_iban": "DE75512108001245126199", "entry_ref": "NTRY-1",
            "end_to_end_id": "E2E-1", "payment_info_id": None, "direction": "DBIT", "amount_cents": 2500,
            "booking_date": date(2024, 5, 22), "reversal": False, "status": "BOOK", "return_reason": None}  # fmt: skip
    frame = pl.DataFrame([line], schema={name: SCHEMA.get(name, pl.String) for name in line})
    with duckdb.connect() as con:
        (line_id,) = line_identity(con, frame).to_list()
    assert line_id == expected_id(line)
    text = "booking|DE75512108001245126199|NTRY-1|E2E-1||DBIT|2500|2024-05-22|false|BOOK|"
    assert line_id == hashlib.sha256(text.encode()).hexdigest()[:32]
