"""A sandbox bank that closes the loop for demos and tests.

It reads the payment files released to the bank (`outbox/released/`) and answers each the way a bank
would: a pain.002 status report (rejecting some transactions), a camt.054 notification booking the rest
as batches, returns of a configurable share a few days later with realistic reason codes, and a camt.053
statement per answer with correct opening and closing balances. Everything goes into `inbox/bank/`.
The bank keeps its own state (which files it answered, its balance) in `$PAYOUTS_HOME/sandbox_bank/`.
"""

from __future__ import annotations

import json
import os
import random
from datetime import date, datetime, time
from pathlib import Path

import polars as pl

from assets.home import Home
from sepa.bank_messages import ENTRY_COLUMNS, build_camt053, build_camt054, build_pain002, read_payment_file
from sepa.calendar import add_business_days, next_business_day

# Why customers' banks send refunds back, and merchants' banks direct debits, roughly as often as they do.
# Payout returns are those a customer can mend with new bank details (MD07, MS03 and the other codes that
# need a person are exercised by the tests, not by the demo's bank).
PAYOUT_RETURNS = [("AC04", 35), ("AC01", 35), ("AC06", 10), ("AG01", 10), ("BE01", 10)]
COLLECTION_RETURNS = [("AM04", 45), ("MD06", 20), ("MS03", 15), ("MD01", 10), ("AC04", 10)]
REJECT_SHARE = 0.3  # of the returned share, this part is refused at once (pain.002) instead of returned later


def _state_path(home: Home) -> Path:
    return home.root / "sandbox_bank" / "state.json"


def _load(home: Home) -> dict:
    path = _state_path(home)
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"answered": [], "balance_cents": 0, "seq": 0}


def _save(home: Home, state: dict) -> None:
    path = _state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(partial, path)


def answer_released_files(home: Home, *, return_rate: float = 0.05, seed: int = 7) -> list[Path]:
    """Answer every released payment file not answered yet; return the bank files written to inbox/bank."""
    state = _load(home)
    written: list[Path] = []
    released = sorted((home.outbox / "released").glob("*.xml"))
    for path in released:
        if path.name in state["answered"]:
            continue
        content = read_payment_file(path.read_bytes())
        rng = random.Random(f"{seed}:{content.msg_id}")
        written.extend(_answer(home, state, content, rng, return_rate))
        state["answered"].append(path.name)
        _save(home, state)
    return written


def _answer(home: Home, state: dict, content, rng: random.Random, return_rate: float) -> list[Path]:
    tx = content.transactions
    payout = content.kind == "pain.001"
    fate = [
        "rejected" if u < return_rate * REJECT_SHARE else "returned" if u < return_rate else "booked"
        for u in (rng.random() for _ in range(tx.height))
    ]
    reasons = [_pick(rng, PAYOUT_RETURNS if payout else COLLECTION_RETURNS) for _ in range(tx.height)]
    tx = tx.with_columns(pl.Series("fate", fate), pl.Series("reason_code", reasons))
    day = next_business_day(tx["requested_date"].min())
    created = datetime.combine(day, time(7, 0))
    out: list[Path] = []
    rejected = tx.filter(pl.col("fate") == "rejected")
    out.append(_write(home, f"SBX-{content.msg_id}-pain002.xml", build_pain002(
        msg_id=_next_id(state, "STS"), created_at=created, original_msg_id=content.msg_id,
        original_message_type=content.message_type,
        rejected=rejected.select("payment_info_id", "end_to_end_id", "amount_cents", "reason_code"),
        original=tx.select("payment_info_id", "end_to_end_id", "amount_cents"),
    )))  # fmt: skip
    executed = tx.filter(pl.col("fate") != "rejected")
    if executed.is_empty():
        return out
    code = "PMNT/ICDT/ESCT" if payout else "PMNT/IDDT/ESDD"
    bookings = _entries(executed, content.msg_id, day, "DBIT" if payout else "CRDT", code, batch=True, state=state)
    returned = executed.filter(pl.col("fate") == "returned")
    back_day = add_business_days(day, 2)
    returns = _entries(
        returned, content.msg_id, back_day, "CRDT" if payout else "DBIT",
        "PMNT/ICDT/RRTN" if payout else "PMNT/IDDT/UPDD", batch=False, state=state, returns=True,
    )  # fmt: skip
    for when, entries, label in ((day, bookings, "booked"), (back_day, returns, "returns")):
        if entries.is_empty():
            continue
        out.append(_write(home, f"SBX-{content.msg_id}-{label}-camt054.xml", build_camt054(
            msg_id=_next_id(state, "NTF"), created_at=datetime.combine(when, time(18, 0)),
            account_iban=content.account_iban, entries=entries,
        )))  # fmt: skip
        opening = state["balance_cents"]
        signed = entries.select(
            pl.when(pl.col("direction") == "CRDT").then(pl.col("amount_cents")).otherwise(-pl.col("amount_cents")).sum()
        ).item()
        state["balance_cents"] = opening + int(signed)
        out.append(_write(home, f"SBX-{content.msg_id}-{label}-camt053.xml", build_camt053(
            msg_id=_next_id(state, "STM"), created_at=datetime.combine(when, time(23, 0)),
            statement_id=_next_id(state, "S"), account_iban=content.account_iban,
            opening_balance_cents=opening, entries=entries, booking_date=when,
        )))  # fmt: skip
    return out


def _entries(
    rows: pl.DataFrame, msg_id: str, day: date, direction: str, code: str, *, batch: bool, state: dict,
    returns: bool = False,
) -> pl.DataFrame:  # fmt: skip
    """Bookings as the bank's entry rows: one batch entry per payment block, or one entry per return."""
    if rows.is_empty():
        return pl.DataFrame(schema=ENTRY_COLUMNS)
    refs = [_next_id(state, "E") for _ in range(rows.height)]
    frame = rows.select(
        pl.Series("entry_ref", refs),
        pl.lit(day).alias("booking_date"),
        pl.lit(day).alias("value_date"),
        pl.lit(direction).alias("direction"),
        "amount_cents",
        pl.lit(code).alias("bank_tx_code"),
        pl.lit(False).alias("reversal"),
        "end_to_end_id",
        "payment_info_id",
        pl.lit(msg_id).alias("msg_id"),
        "mandate_id",
        "counterparty_name",
        "counterparty_iban",
        (pl.col("reason_code") if returns else pl.lit(None, pl.String)).alias("return_reason"),
        pl.lit(None, pl.String).alias("return_info"),
        (pl.when(pl.col("reason_code") == "AM04").then(pl.lit(300, pl.Int64)).otherwise(pl.lit(None, pl.Int64))
         if returns else pl.lit(None, pl.Int64)).alias("charges_cents"),
        (pl.col("amount_cents") if returns else pl.lit(None, pl.Int64)).alias("original_amount_cents"),
        "remittance",
        (pl.col("payment_info_id") if batch else pl.lit(None, pl.String)).alias("batch"),
    )  # fmt: skip
    if batch:
        # A batch is one entry: its rows share the entry reference of the block.
        frame = frame.with_columns(pl.col("entry_ref").first().over("batch").alias("entry_ref"))
    return frame


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    codes, weights = zip(*weighted, strict=True)
    return rng.choices(codes, weights=weights)[0]


def _next_id(state: dict, prefix: str) -> str:
    state["seq"] += 1
    return f"SBX{prefix}{state['seq']:08d}"


def _write(home: Home, name: str, data: bytes) -> Path:
    home.bank_inbox.mkdir(parents=True, exist_ok=True)
    target = home.bank_inbox / name
    partial = home.bank_inbox / f".{name}.part"
    partial.write_bytes(data)
    os.replace(partial, target)
    return target
