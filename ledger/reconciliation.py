"""Reconciliation: what the banks say happened, matched against what the books say was sent.

A bank file arrives as lines (one per transaction, already read and annotated with each return reason's
action by the caller). Each line is matched, in this order: by EndToEndId to our payouts and collections;
batch bookings by PmtInfId or MsgId against the file registry; pain.002 by original message, batch and
EndToEndId; then by amount, date and name as a proposal a person confirms. Whatever is left goes to the
exceptions queue with the reason. Every money movement is a transfer with an idempotent id, and every
line has an identity derived from the bank's own data, so the same file twice, or two overlapping
statements, book nothing twice.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass

import duckdb
import polars as pl

from ledger import accounts
from ledger.audit import OperationRefused
from ledger.collections import present_again
from ledger.db import run_with_frames, transaction
from ledger.frames import running_total
from ledger.lifecycle import change_status
from ledger.notifications import queue_notifications
from ledger.postings import post_frames, two_legged_frames
from ledger.schemas import BankLinesIn

LINE_COLUMNS = [
    "message_type", "message_id", "account_iban", "entry_ref", "booking_date", "value_date", "status",
    "direction", "amount_cents", "currency", "reversal", "bank_tx_code", "end_to_end_id", "payment_info_id",
    "return_reason", "return_info", "charges_cents", "counterparty_name", "counterparty_iban",
]  # fmt: skip
ACCEPTED = {"ACCP", "ACSC", "ACSP", "ACTC", "ACWC", "ACCC", "RCVD", "PDNG", "PART"}
BANK_CHARGES = accounts.BANK_CHARGES
DUPLICATE_NOTE = "the same transaction appears again in this file: booked once"
CURRENCY = "EUR"  # SEPA: every payment file of ours is in euros


@dataclass(frozen=True)
class ReturnPolicy:
    """What the platform does with banks' charges on returns: bear them, or pass them to the merchant."""

    charges_to: str = "platform"  # platform | merchant
    represent_once: bool = True  # a collection returned for insufficient funds (AM04) is presented again once

    def __post_init__(self) -> None:
        if self.charges_to not in {"platform", "merchant"}:
            raise ValueError(f"charges_to must be platform or merchant, not {self.charges_to!r}")


@dataclass(frozen=True)
class Reconciled:
    """What one bank file did to the books."""

    file_name: str
    already_imported: bool
    lines: int
    new_lines: int
    matched: int
    proposed: int
    exceptions: int
    ignored: int


def conform_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """The lines in the shape reconciliation expects (missing optional columns null), validated."""
    schema = BankLinesIn.to_schema()
    frame = lines.select(
        [
            (pl.col(name) if name in lines.columns else pl.lit(None)).cast(column.dtype.type).alias(name)
            for name, column in schema.columns.items()
        ]
    )
    return BankLinesIn.validate(frame)


# What a line's identity is made of, after the family of its message (status report or booking).
_IDENTITY = ("account_iban", "entry_ref", "end_to_end_id", "payment_info_id", "direction", "amount_cents",
             "booking_date", "reversal", "status", "return_reason")  # fmt: skip
_LINE_IDS = (
    "SELECT substr(sha256(concat_ws('|', "
    "CASE WHEN starts_with(message_type, 'pain.002') THEN 'status' ELSE 'booking' END, "
    + ", ".join(f"coalesce(CAST({column} AS VARCHAR), '')" for column in _IDENTITY)
    + ")), 1, 32) AS line_id FROM l"
)


def line_identity(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> pl.Series:
    """Each line's id from what the bank says about the transaction (not from the file), so a camt.054 and the
    camt.053 that repeats its booking, or two overlapping statements, give the same id: the first 32 hex
    digits of the SHA-256 of `family|account_iban|entry_ref|...|return_reason`, absent values empty, dates
    ISO, booleans `true`/`false`. Joined and hashed by DuckDB in bulk."""
    return run_with_frames(con, _LINE_IDS, string_views=True, l=frame.select("message_type", *_IDENTITY))["line_id"]


def reconcile_bank_file(
    con: duckdb.DuckDBPyConnection,
    *,
    file_name: str,
    sha256: str,
    lines: pl.DataFrame,
    balance_gaps: list[str] | None = None,
    policy: ReturnPolicy = ReturnPolicy(),
) -> Reconciled:
    """Match and book one bank file; all of it in one transaction, none of it twice.

    `lines` has the bank-line columns plus `row_problem` (why a line's money could not be read, or null),
    `reason_action` (ask_new_iban | retry | escalate | manual | cautious, null for unknown or no reason) and
    `reason_text`. `balance_gaps` are statement-level problems (opening + entries != closing).
    """
    if con.execute("SELECT 1 FROM bank_files WHERE sha256 = ?", [sha256]).fetchone():
        return Reconciled(file_name, True, lines.height, 0, 0, 0, 0, 0)
    lines = conform_lines(lines)
    lines = lines.with_columns(line_identity(con, lines).alias("line_id"))
    # The same transaction twice in one file (a duplicate EndToEndId): the first counts, the others wait.
    lines = running_total(lines, pl.lit(1, pl.Int64), "line_id", "_copy").with_columns(pl.col("_copy") - 1)
    # ... and each copy is kept under an identity of its own, so it reaches the queue instead of vanishing.
    # (Only when there is one: rewriting a million ids that stay as they are held 100 MB more.)
    if lines["_copy"].max():
        lines = lines.with_columns(
            pl.when(pl.col("_copy") > 0)
            .then(pl.format("{}-copy-{}", pl.col("line_id"), pl.col("_copy")))
            .otherwise(pl.col("line_id"))
            .alias("line_id")
        )
    with transaction(con):
        # line_id has no index: this look-up, in the transaction that books, under the ledger lock, is what
        # keeps a line from being booked twice (`repeated_lines` checks the whole table).
        fresh = _not_yet_recorded(con, lines)
        decided = _decide(con, fresh)
        _apply(con, decided, file_name, policy)
        _store(con, decided, file_name, sha256, balance_gaps or [])
    counts = decided.group_by("outcome").len()
    count = dict(counts.iter_rows())
    result = Reconciled(
        file_name, False, lines.height, fresh.height, count.get("matched", 0), count.get("proposed", 0),
        count.get("exception", 0) + len(balance_gaps or []), count.get("ignored", 0),
    )  # fmt: skip
    con.execute(
        "INSERT INTO bank_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
        [sha256, file_name, _first(lines, "message_type"), _first(lines, "message_id"), _first(lines, "account_iban"),
         result.lines, result.new_lines, result.matched, result.proposed, result.exceptions, result.ignored],
    )  # fmt: skip
    return result


def _not_yet_recorded(con: duckdb.DuckDBPyConnection, lines: pl.DataFrame) -> pl.DataFrame:
    """The lines whose id is not in `bank_lines`, in their order. DuckDB answers with their positions: a
    statement repeating a million booked lines costs no million ids sent back."""
    # An anti join never filters the side it keeps: the lines' ids can go as views.
    positions = run_with_frames(
        con,
        "SELECT n FROM l ANTI JOIN bank_lines USING (line_id) ORDER BY n",
        string_views=True,
        l=lines.select("line_id").with_row_index("n"),
    )["n"]
    if positions.len() == lines.height:
        return lines
    return lines[positions]


def _first(frame: pl.DataFrame, column: str) -> str | None:
    values = frame[column].drop_nulls() if column in frame.columns else pl.Series([])
    return str(values[0]) if len(values) else None


def _decide(con: duckdb.DuckDBPyConnection, lines: pl.DataFrame) -> pl.DataFrame:
    """Each line's outcome, what it matched and what it means (event), as columns."""
    # Only the items the lines can be about (by EndToEndId, payment block or file): the cost follows the file.
    keys = (
        pl.concat([lines.select(pl.col(c).alias("key")) for c in ("end_to_end_id", "payment_info_id", "message_id")])
        .drop_nulls()
        .unique()
    )
    # A direct-debit payment block is named after its sequence type (`<PmtInfId>-FRST`): a line naming the
    # block without it is about each of them. Spelled out as keys, so that no item is rewritten to compare.
    named = lines.select(pl.col("payment_info_id").alias("key")).drop_nulls().unique()
    blocks = pl.concat(
        [keys, *(named.select(pl.col("key") + suffix) for suffix in ("-FRST", "-RCUR", "-OOFF", "-FNAL"))]
    )
    items = run_with_frames(
        con,
        "SELECT i.end_to_end_id, i.payment_info_id AS item_pmt_id, i.refund_id, i.collection_id, i.file_id, "
        "i.amount_cents AS item_cents, f.kind, i.outcome AS item_outcome, c.status AS collection_status "
        "FROM payment_file_items i JOIN payment_files f USING (file_id) "
        "LEFT JOIN collections c ON c.collection_id = i.collection_id "
        "WHERE f.status IN ('written', 'released', 'acknowledged') AND (i.end_to_end_id IN (SELECT key FROM k) "
        "OR i.file_id IN (SELECT key FROM k) OR i.payment_info_id IN (SELECT key FROM b))",
        k=keys,
        b=blocks,
    )
    frame = _with_events(lines.join(items, on="end_to_end_id", how="left"))
    # A booking of ours is taken at face value only in euros, for the amount we sent, and once: anything
    # else is money the books cannot explain, and a person must look.
    booking = pl.col("kind").is_not_null() & ~pl.col("is_status") & pl.col("event").is_not_null()
    foreign = booking & (pl.col("currency").fill_null(CURRENCY) != CURRENCY)
    other_amount = (
        booking
        & (pl.col("amount_cents") != pl.col("item_cents"))
        & (pl.col("amount_cents") + pl.col("charges_cents").fill_null(0) != pl.col("item_cents"))
    )
    not_booked = ~pl.col("is_status") & (pl.col("status") != "BOOK")
    # What an earlier bank file already did to the item: the same again is the bank doing it twice (or a file
    # repeating it under another reference); either way a person looks. A return after the execution, or a
    # statement's booking after a return, is not a repeat.
    payout, collection, event = pl.col("kind") == "payout", pl.col("kind") == "collection", pl.col("event")
    done_before = booking & (
        (payout & (event == "executed") & (pl.col("item_outcome") == "executed"))
        | (payout & (event == "returned") & pl.col("item_outcome").is_in(["returned", "rejected"]))
        | (collection & (event == "booked") & (pl.col("collection_status") == "booked"))
        | (collection & (event == "returned") & pl.col("collection_status").is_in(["returned", "represented"]))
    ).fill_null(False)
    sound = booking & pl.col("row_problem").is_null() & (pl.col("_copy") == 0) & ~not_booked & ~foreign & ~other_amount
    # The second sound booking of the same item and event in one file: the bank may have booked it twice.
    frame = running_total(frame, sound.cast(pl.Int32), ["kind", "refund_id", "collection_id", "file_id", "event"],
                          "_sound_so_far")  # fmt: skip
    again = sound & (pl.col("_sound_so_far") > 1)
    outcome = (
        pl.when(pl.col("row_problem").is_not_null()).then(pl.lit("exception"))
        .when(pl.col("_copy") > 0).then(pl.lit("exception"))
        .when(not_booked).then(pl.lit("ignored"))
        .when(foreign | other_amount | again | done_before).then(pl.lit("exception"))
        .when(pl.col("event").is_not_null()).then(pl.lit("matched"))
    )  # fmt: skip
    note = (
        pl.when(pl.col("row_problem").is_not_null()).then(pl.col("row_problem"))
        .when(pl.col("_copy") > 0).then(pl.lit(DUPLICATE_NOTE))
        .when(not_booked)
        .then(pl.format("not booked by the bank ({}): nothing to reconcile yet", pl.col("status")))
        .when(foreign).then(pl.format("{} {} of our {} is in {}, ours are in {}: not booked", pl.col("direction"),
                                      pl.col("end_to_end_id"), pl.col("kind"), pl.col("currency"), pl.lit(CURRENCY)))
        .when(other_amount).then(pl.format("{} {} of our {} is {} cents, we sent {} cents: not booked",
                                           pl.col("direction"), pl.col("end_to_end_id"), pl.col("kind"),
                                           pl.col("amount_cents"), pl.col("item_cents")))
        .when(done_before).then(pl.format("{} {} of our {} was already {} from an earlier bank file: not booked "
                                          "again; if the bank did it twice, ask it; if this file repeats that "
                                          "booking under another reference ({}), dismiss", pl.col("direction"),
                                          pl.col("end_to_end_id"), pl.col("kind"), pl.col("event"),
                                          pl.col("entry_ref").fill_null("no ref")))
        .when(again).then(pl.format("{} {} of our {} again, in another entry of this file ({}): booked once; "
                                    "ask the bank whether it booked it twice", pl.col("direction"),
                                    pl.col("end_to_end_id"), pl.col("kind"), pl.col("entry_ref").fill_null("no ref")))
        .when(pl.col("event") == "accepted").then(pl.format("bank accepted the payment ({})", pl.col("status")))
        .when(pl.col("kind").is_not_null() & pl.col("event").is_null())
        .then(pl.format("{} {} of our {} is not what the books expect", pl.col("direction"),
                        pl.col("bank_tx_code").fill_null("(no code)"), pl.col("kind")))
    )  # fmt: skip
    frame = frame.with_columns(outcome.alias("outcome"), note.alias("note")).drop("_sound_so_far")
    frame = frame.with_columns(
        pl.when(pl.col("outcome").is_null() & pl.col("kind").is_not_null()).then(pl.lit("exception"))
        .otherwise(pl.col("outcome")).alias("outcome")
    )  # fmt: skip
    return _match_batches_and_propose(con, frame, items)


def _with_events(frame: pl.DataFrame) -> pl.DataFrame:
    """What each line means for the payout or collection it is matched to (`kind`): executed, returned,
    booked, rejected or accepted; null when the line is not what the books expect of it."""
    is_status = pl.col("message_type").str.starts_with("pain.002")
    is_return = (
        pl.col("reversal").fill_null(False)
        | pl.col("return_reason").is_not_null()
        | pl.col("bank_tx_code").fill_null("").str.contains(r"/(RRTN|UPDD|RPCR|PRDD)$")
    )
    frame = frame.with_columns(is_return.alias("is_return"), is_status.alias("is_status"))
    payout, collection = pl.col("kind") == "payout", pl.col("kind") == "collection"
    credit, debit = pl.col("direction") == "CRDT", pl.col("direction") == "DBIT"
    rjct = pl.col("status") == "RJCT"
    event = (
        pl.when(pl.col("is_status") & rjct & pl.col("kind").is_not_null()).then(pl.lit("rejected"))
        .when(pl.col("is_status") & pl.col("status").is_in(list(ACCEPTED)) & pl.col("kind").is_not_null())
        .then(pl.lit("accepted"))
        .when(pl.col("is_status")).then(pl.lit(None, pl.String))
        .when(payout & debit & ~pl.col("is_return")).then(pl.lit("executed"))
        .when(payout & credit & pl.col("is_return")).then(pl.lit("returned"))
        .when(collection & credit & ~pl.col("is_return")).then(pl.lit("booked"))
        .when(collection & debit & pl.col("is_return")).then(pl.lit("returned"))
    )  # fmt: skip
    return frame.with_columns(event.alias("event"))


def match_line(
    con: duckdb.DuckDBPyConnection,
    line_id: str,
    *,
    kind: str,
    ref: str,
    note: str,
    policy: ReturnPolicy = ReturnPolicy(),
    reason_action: str | None = None,
    reason_text: str | None = None,
) -> str:
    """Book a bank line as a person matched it: to the payout of refund `ref` (kind payout) or to collection
    `ref` (kind collection). The same bookings automatic matching makes, in the caller's transaction.
    Refused when the line is already matched, the payout or collection was never released, the line's
    direction does not fit, or the amounts differ. Returns the event booked (executed, returned, booked...)."""
    line = con.execute("SELECT * FROM bank_lines WHERE line_id = ?", [line_id]).pl()
    if line.is_empty():
        raise OperationRefused(f"no bank line {line_id}")
    if line["outcome"][0] == "matched":
        raise OperationRefused(f"bank line {line_id} is already matched to {line['matched_ref'][0]}")
    if kind not in {"payout", "collection"}:
        raise OperationRefused(f"match to a payout (refund) or a collection, not {kind!r}")
    column = "refund_id" if kind == "payout" else "collection_id"
    # The open item first: a payout returned and paid again has one item per file.
    items = con.execute(
        f"SELECT i.refund_id, i.collection_id, i.file_id, i.amount_cents AS item_cents, f.kind "
        f"FROM payment_file_items i JOIN payment_files f USING (file_id) "
        f"WHERE i.{column} = ? AND f.kind = ? AND f.status IN ('released', 'acknowledged') "
        f"ORDER BY COALESCE(i.outcome, 'open') IN ('returned', 'rejected'), f.created_at DESC",
        [ref, kind],
    ).pl()
    if items.is_empty():
        what = f"refund {ref}" if kind == "payout" else f"collection {ref}"
        raise OperationRefused(f"{what} is in no payment file released to the bank: nothing to match the line to")
    frame = _with_events(line.drop("matched_kind", "matched_ref", "event").join(items.head(1), how="cross"))
    row = frame.row(0, named=True)
    if row["event"] is None or row["event"] == "accepted":
        raise OperationRefused(
            f"a {row['direction']} line ({row['bank_tx_code'] or 'no code'}) cannot be the execution, booking or "
            f"return of a {kind}"
        )
    if not row["is_status"] and row["amount_cents"] != row["item_cents"]:
        raise OperationRefused(
            f"the line is {row['amount_cents']} cents, the {kind} {row['item_cents']} cents: amounts must agree"
        )
    frame = frame.with_columns(
        pl.lit("matched").alias("outcome"),
        pl.lit(reason_action, pl.String).alias("reason_action"),
        pl.lit(reason_text, pl.String).alias("reason_text"),
    )
    _apply(con, frame, row["file_name"], policy)
    con.execute(
        "UPDATE bank_lines SET outcome = 'matched', matched_kind = ?, matched_ref = ?, event = ?, note = ? "
        "WHERE line_id = ?",
        [kind, ref, row["event"], note, line_id],
    )
    return row["event"]


def _match_batches_and_propose(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, items: pl.DataFrame
) -> pl.DataFrame:
    """Lines without an EndToEndId of ours: a batch booking or a group-level status settles a whole file
    or payment block when the amount agrees; otherwise propose a match by amount, date and name."""
    done = frame.filter(pl.col("outcome").is_not_null())
    open_lines = frame.filter(pl.col("outcome").is_null()).drop(
        "item_pmt_id",
        "refund_id",
        "collection_id",
        "file_id",
        "item_cents",
        "kind",
        "event",
        "item_outcome",
        "collection_status",
    )
    if open_lines.is_empty():
        return done
    by_block = items.with_columns(pl.col("item_pmt_id").str.replace(r"-(FRST|RCUR|OOFF|FNAL)$", "").alias("block"))
    expanded, leftover = [], []
    for line in open_lines.iter_rows(named=True):
        group = pl.DataFrame()
        if line["payment_info_id"]:
            group = by_block.filter((pl.col("item_pmt_id") == line["payment_info_id"])
                                    | (pl.col("block") == line["payment_info_id"]))  # fmt: skip
        if group.is_empty() and line["message_id"] and (line["is_status"] or not line["end_to_end_id"]):
            group = by_block.filter(pl.col("file_id") == line["message_id"])
        if not group.is_empty():
            kind = group["kind"][0]
            event = _batch_event(line, kind)
            total = int(group["item_cents"].sum())
            amount_ok = line["is_status"] or (
                line["amount_cents"] == total and (line["currency"] or CURRENCY) == CURRENCY
            )
            if event and amount_ok:
                rows = group.drop("block").rename({"end_to_end_id": "item_e2e"}).with_columns(
                    pl.lit(event).alias("event"), pl.lit("matched").alias("outcome"),
                    pl.lit(f"settles {group.height} transaction(s) of {group['file_id'][0]}").alias("note"),
                )  # fmt: skip
                expanded.append((line, rows))
                continue
            currency = line["currency"] or CURRENCY
            reason = (f"batch {line['payment_info_id'] or line['message_id']} of ours: {line['amount_cents']} "
                      f"cents in {currency}, the file says {total} cents in {CURRENCY}")  # fmt: skip
            leftover.append({**line, "outcome": "exception", "note": reason})
            continue
        leftover.append(line)
    parts = [done]
    for line, rows in expanded:
        # One row per transaction the batch settles; the first keeps the line's identity, the others are
        # derived from it so each is stored once.
        base = pl.DataFrame([line], infer_schema_length=None).drop(
            "end_to_end_id", *[c for c in rows.columns if c in line and c != "item_e2e"]
        )
        joined = base.join(rows, how="cross").with_columns(
            pl.col("item_e2e").alias("end_to_end_id"),
            pl.format("{}:{}", pl.col("line_id"), pl.col("item_e2e")).map_elements(
                lambda s: hashlib.sha256(s.encode()).hexdigest()[:32], return_dtype=pl.String
            ).alias("line_id"),
        ).drop("item_e2e")  # fmt: skip
        parts.append(joined.select([c for c in done.columns if c in joined.columns]))
    if leftover:
        parts.append(_propose(con, pl.DataFrame(leftover, infer_schema_length=None)))
    return pl.concat(parts, how="diagonal_relaxed")


def _batch_event(line: dict, kind: str) -> str | None:
    if line["is_status"]:
        return "rejected" if line["status"] == "RJCT" else ("accepted" if line["status"] in ACCEPTED else None)
    if line["status"] != "BOOK":
        return None
    if kind == "payout":
        return "executed" if line["direction"] == "DBIT" and not line["is_return"] else None
    return "booked" if line["direction"] == "CRDT" and not line["is_return"] else None


def _propose(con: duckdb.DuckDBPyConnection, lines: pl.DataFrame) -> pl.DataFrame:
    """Amount, date window and name similarity: a single convincing candidate is proposed, never booked."""
    open_items = con.execute(
        "SELECT 'payout' AS cand_kind, r.refund_id AS cand_ref, r.payout_cents AS cand_cents, "
        "r.customer_name AS cand_name, f.requested_on AS cand_date FROM refunds r "
        "JOIN payment_file_items i USING (refund_id) JOIN payment_files f USING (file_id) "
        "WHERE r.status = 'sent' AND f.status IN ('released', 'acknowledged') "
        "UNION ALL SELECT 'collection', c.collection_id, c.amount_cents, m.name, c.collection_date "
        "FROM collections c JOIN merchants m USING (merchant_id) WHERE c.status = 'released'"
    ).pl()
    outcomes, notes, kinds, refs, scores = [], [], [], [], []
    for line in lines.iter_rows(named=True):
        if line.get("outcome"):
            outcomes.append(line["outcome"])
            notes.append(line["note"])
            kinds.append(None)
            refs.append(None)
            scores.append(None)
            continue
        best = None
        if line["amount_cents"] is not None and line["status"] == "BOOK" and (line["currency"] or CURRENCY) == CURRENCY:
            same = open_items.filter(pl.col("cand_cents") == line["amount_cents"])
            scored = []
            for cand in same.iter_rows(named=True):
                score = difflib.SequenceMatcher(
                    None, (line["counterparty_name"] or "").lower(), (cand["cand_name"] or "").lower()
                ).ratio()
                near = line["booking_date"] is None or abs((line["booking_date"] - cand["cand_date"]).days) <= 10
                if near:
                    scored.append((score, cand))
            scored.sort(key=lambda s: -s[0])
            if scored and scored[0][0] >= 0.6 and (len(scored) == 1 or scored[1][0] < scored[0][0] - 0.1):
                best = scored[0]
        if best:
            outcomes.append("proposed")
            notes.append(
                f"proposed: {best[1]['cand_kind']} {best[1]['cand_ref']} (same amount, name {best[0]:.0%} alike)"
            )
            kinds.append(best[1]["cand_kind"])
            refs.append(best[1]["cand_ref"])
            scores.append(best[0])
        else:
            outcomes.append("ignored" if line["status"] not in (None, "BOOK", "RJCT") else "exception")
            notes.append("no payment or collection of ours matches this line (EndToEndId, batch, amount and name)")
            kinds.append(None)
            refs.append(None)
            scores.append(None)
    return lines.with_columns(
        pl.Series("outcome", outcomes, pl.String), pl.Series("note", notes, pl.String),
        pl.Series("proposed_kind", kinds, pl.String), pl.Series("proposed_ref", refs, pl.String),
        pl.Series("proposed_score", scores, pl.Float64),
    )  # fmt: skip


# What `_apply` reads of a matched line.
_BOOKED_COLUMNS = ["kind", "event", "refund_id", "collection_id", "file_id", "line_id", "return_reason",
                   "reason_action", "reason_text", "charges_cents"]  # fmt: skip


def _apply(con: duckdb.DuckDBPyConnection, decided: pl.DataFrame, file_name: str, policy: ReturnPolicy) -> None:
    """Book what the matched lines mean: transfers, statuses, notifications, exceptions."""
    # Only the columns the bookings read: a million matched lines in all their columns are 300 MB a copy.
    matched = decided.lazy().filter(pl.col("outcome") == "matched").select(_BOOKED_COLUMNS).collect()
    for event, kind, handler in (
        ("executed", "payout", _payouts_executed),
        ("returned", "payout", _payouts_returned),
        ("rejected", "payout", _payouts_returned),
        ("booked", "collection", _collections_booked),
        ("returned", "collection", _collections_returned),
        ("rejected", "collection", _collections_returned),
    ):
        rows = matched.filter((pl.col("event") == event) & (pl.col("kind") == kind))
        if not rows.is_empty():
            handler(
                con, rows.unique("refund_id" if kind == "payout" else "collection_id", keep="first"), file_name, policy
            )
    accepted = decided.select(pl.col("file_id").filter(pl.col("event") == "accepted")).drop_nulls().unique()
    if not accepted.is_empty():
        run_with_frames(
            con, "UPDATE payment_files SET status = 'acknowledged' WHERE status = 'released' "
            "AND file_id IN (SELECT file_id FROM a)", a=accepted,
        )  # fmt: skip


def _refund_rows(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> pl.DataFrame:
    """The matched rows with their refunds' reference, merchant, status, payout and customer. Only the ids go
    to DuckDB and back comes one row per refund, joined here: sending the lines' texts through DuckDB's join
    and back held 200-450 MB more for a million lines, in about the same time."""
    refunds = run_with_frames(
        con,
        "SELECT refund_id, refund_ref, merchant_id, status AS refund_status, payout_cents, customer_name "
        "FROM refunds WHERE refund_id IN (SELECT refund_id FROM x)",
        x=rows.select("refund_id"),
    )
    return refunds.join(
        rows.select("refund_id", "file_id", "line_id", "return_reason", "reason_action", "reason_text",
                    "charges_cents", "event"),
        on="refund_id",
    )  # fmt: skip


def _settle_payouts(con: duckdb.DuckDBPyConnection, refunds: pl.DataFrame) -> None:
    post_frames(con, *two_legged_frames(
        refunds.rename({"payout_cents": "amount"}),
        transfer_id=pl.format("settle:{}:{}", pl.col("file_id"), pl.col("refund_id")),
        kind="payout_executed",
        debit=pl.lit(accounts.PAYOUTS_IN_TRANSIT),
        credit=pl.lit(accounts.PLATFORM_BANK),
        amount_cents=pl.col("amount"),
        memo=pl.format("credit transfer of refund {} booked by the bank", pl.col("refund_ref")),
    ))  # fmt: skip


def _mark_items(con: duckdb.DuckDBPyConnection, refunds: pl.DataFrame, outcome: pl.Expr) -> None:
    """What the bank did with each payout, kept on the file item: a returned one may be paid again."""
    run_with_frames(
        con,
        "UPDATE payment_file_items SET outcome = m.outcome FROM m "
        "WHERE payment_file_items.file_id = m.file_id AND payment_file_items.refund_id = m.refund_id",
        m=refunds.select("file_id", "refund_id", outcome.alias("outcome")),
    )


def _payouts_executed(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, file_name: str, policy: ReturnPolicy) -> None:
    refunds = _refund_rows(con, rows)
    _settle_payouts(con, refunds)
    _mark_items(con, refunds, pl.lit("executed"))
    sent = refunds.filter(pl.col("refund_status") == "sent")
    booked = pl.lit(f"booked by the bank in {file_name}").alias("reason")
    change_status(con, sent.select("refund_id", pl.lit("completed").alias("to_status"), booked), actor="reconciliation")


def _payouts_returned(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, file_name: str, policy: ReturnPolicy) -> None:
    """A payout the bank returned (camt) or rejected (pain.002): the money is back, owed to the customer again.
    Account closed or IBAN wrong: the customer is asked for new bank details; anything else waits for finance ops."""
    refunds = _refund_rows(con, rows).filter(pl.col("refund_status").is_in(["sent", "completed"]))
    if refunds.is_empty():
        return
    returned = refunds.filter(pl.col("event") == "returned")
    _settle_payouts(con, returned)  # the debit may not have been seen; the return implies it
    back = (
        pl.when(pl.col("event") == "returned")
        .then(pl.lit(accounts.PLATFORM_BANK))
        .otherwise(pl.lit(accounts.PAYOUTS_IN_TRANSIT))
    )
    post_frames(con, *two_legged_frames(
        refunds,
        transfer_id=pl.format("payback:{}:{}", pl.col("refund_id"), pl.col("line_id")),
        kind="payout_returned",
        debit=back,
        credit=pl.lit(accounts.CUSTOMER_PAYABLE),
        amount_cents=pl.col("payout_cents"),
        memo=pl.format("refund {} {} by the bank ({})", pl.col("refund_ref"), pl.col("event"),
                       pl.col("return_reason").fill_null("no reason code")),
    ))  # fmt: skip
    _post_charges(con, refunds, policy)
    _mark_items(con, refunds, pl.col("event"))
    ask = (pl.col("reason_action") == "ask_new_iban").fill_null(False)
    code, text = pl.col("return_reason").fill_null("no reason code"), pl.col("reason_text").fill_null("")
    why = pl.format("{} by the bank in {}: {} {}", pl.col("event"), pl.lit(file_name), code, text)
    changes = refunds.select(
        "refund_id",
        pl.when(ask).then(pl.lit("awaiting_bank_details")).otherwise(pl.lit("returned")).alias("to_status"),
        why.str.strip_chars().alias("reason"),
    )
    run_with_frames(
        con, "UPDATE refunds SET iban_problem = c.reason FROM c WHERE refunds.refund_id = c.refund_id "
        "AND c.to_status = 'awaiting_bank_details'", c=changes,
    )  # fmt: skip
    change_status(con, changes, actor="reconciliation")
    queue_notifications(con, refunds.filter(ask).select(
        pl.format("refund_returned:{}", pl.col("line_id")).alias("notification_id"),
        pl.lit("refund_returned").alias("template"), "refund_id", "merchant_id",
        pl.struct("refund_ref", "customer_name", "payout_cents", "return_reason").struct.json_encode().alias("data"),
    ))  # fmt: skip
    manual = refunds.filter(~ask)
    _raise_exceptions(con, manual.select(
        "line_id", "refund_id", pl.lit(None, pl.String).alias("collection_id"),
        pl.format("refund {} {} with reason {}: {}", pl.col("refund_ref"), pl.col("event"),
                  pl.col("return_reason").fill_null("(none)"),
                  pl.col("reason_text").fill_null("unknown reason code: decide by hand")).alias("reason"),
    ), file_name)  # fmt: skip


def _post_charges(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, policy: ReturnPolicy) -> None:
    charged = rows.filter(pl.col("charges_cents").fill_null(0) > 0)
    if charged.is_empty():
        return
    bearer = (
        pl.format("merchant:{}:receivable", pl.col("merchant_id")) if policy.charges_to == "merchant"
        else pl.lit(BANK_CHARGES)
    )  # fmt: skip
    post_frames(con, *two_legged_frames(
        charged,
        transfer_id=pl.format("charges:{}", pl.col("line_id")),
        kind="bank_charges",
        debit=bearer,
        credit=pl.lit(accounts.PLATFORM_BANK),
        amount_cents=pl.col("charges_cents"),
        memo=pl.lit("bank charges on a return"),
    ))  # fmt: skip


def _collection_rows(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> pl.DataFrame:
    return run_with_frames(
        con,
        "SELECT c.collection_id, c.merchant_id, c.amount_cents, c.status AS collection_status, x.line_id, "
        "x.return_reason, x.reason_action, x.reason_text, x.charges_cents, x.event, NULL AS refund_id "
        "FROM x JOIN collections c USING (collection_id)",
        x=rows.select("collection_id", "line_id", "return_reason", "reason_action", "reason_text", "charges_cents",
                      "event"),
    )  # fmt: skip


def _collections_booked(
    con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, file_name: str, policy: ReturnPolicy
) -> None:
    collections = _collection_rows(con, rows).filter(pl.col("collection_status").is_in(["released", "in_file"]))
    if collections.is_empty():
        return
    post_frames(con, *two_legged_frames(
        collections,
        transfer_id=pl.format("collected:{}", pl.col("collection_id")),
        kind="collection_booked",
        debit=pl.lit(accounts.PLATFORM_BANK),
        credit=pl.lit(accounts.COLLECTIONS_IN_TRANSIT),
        amount_cents=pl.col("amount_cents"),
        memo=pl.format("direct debit of merchant {} booked by the bank", pl.col("merchant_id")),
    ))  # fmt: skip
    run_with_frames(
        con,
        "UPDATE collections SET status = 'booked' WHERE collection_id IN (SELECT collection_id FROM c)",
        c=collections.select("collection_id"),
    )


def _collections_returned(
    con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, file_name: str, policy: ReturnPolicy
) -> None:
    """A merchant's direct debit returned (insufficient funds, disputed, no mandate...): the receivable is
    reopened and finance ops are told, with the reason and whether it may be presented again."""
    collections = _collection_rows(con, rows).filter(pl.col("collection_status").is_in(["released", "booked"]))
    if collections.is_empty():
        return
    source = (
        pl.when(pl.col("collection_status") == "booked")
        .then(pl.lit(accounts.PLATFORM_BANK))
        .otherwise(pl.lit(accounts.COLLECTIONS_IN_TRANSIT))
    )
    post_frames(con, *two_legged_frames(
        collections,
        transfer_id=pl.format("uncollected:{}", pl.col("collection_id")),
        kind="collection_returned",
        debit=pl.format("merchant:{}:receivable", pl.col("merchant_id")),
        credit=source,
        amount_cents=pl.col("amount_cents"),
        memo=pl.format("direct debit {} by the merchant's bank ({})", pl.col("event"),
                       pl.col("return_reason").fill_null("no reason code")),
    ))  # fmt: skip
    _post_charges(con, collections, policy)
    run_with_frames(con, "UPDATE collections SET status = 'returned' WHERE collection_id IN "
                         "(SELECT collection_id FROM c)", c=collections.select("collection_id"))  # fmt: skip
    again = _represent(con, collections, policy)
    _raise_exceptions(con, collections.select(
        "line_id", pl.lit(None, pl.String).alias("refund_id"), "collection_id",
        pl.format("merchant {}: direct debit {} ({}: {}); receivable reopened{}", pl.col("merchant_id"),
                  pl.col("event"), pl.col("return_reason").fill_null("no reason code"),
                  pl.col("reason_text").fill_null("unknown reason code"),
                  pl.when(pl.col("collection_id").is_in(again)).then(pl.lit(", presented again in the next run"))
                  .otherwise(pl.lit(", escalate"))).alias("reason"),
    ), file_name)  # fmt: skip


def _represent(con: duckdb.DuckDBPyConnection, collections: pl.DataFrame, policy: ReturnPolicy) -> list[str]:
    """Collections returned with a retry reason (AM04) whose refunds were never presented again are freed
    for the next run's collection; returns their ids. Anything else stays escalated."""
    if not policy.represent_once:
        return []
    retry = collections.filter((pl.col("reason_action") == "retry").fill_null(False))
    if retry.is_empty():
        return []
    refunds = run_with_frames(
        con,
        "SELECT cr.refund_id, cr.collection_id FROM collection_refunds cr JOIN r USING (collection_id) "
        "WHERE NOT EXISTS (SELECT 1 FROM represented_refunds p WHERE p.refund_id = cr.refund_id)",
        r=retry.select("collection_id"),
    )
    # A collection is presented again only if none of its refunds has been already.
    fresh = retry.join(
        run_with_frames(con, "SELECT DISTINCT cr.collection_id FROM collection_refunds cr JOIN r USING (collection_id) "
                        "JOIN represented_refunds p ON p.refund_id = cr.refund_id", r=retry.select("collection_id")),
        on="collection_id", how="anti",
    ).select("collection_id")  # fmt: skip
    refunds = refunds.join(fresh, on="collection_id", how="semi")
    if refunds.is_empty():
        return []
    present_again(con, refunds)
    run_with_frames(
        con, "UPDATE collections SET status = 'represented' WHERE collection_id IN (SELECT collection_id FROM f)",
        f=fresh,
    )  # fmt: skip
    return fresh["collection_id"].to_list()


def _raise_exceptions(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, file_name: str) -> None:
    if rows.is_empty():
        return
    run_with_frames(
        con,
        "INSERT INTO exceptions (exception_id, line_id, file_name, refund_id, collection_id, reason, status, "
        "created_at) SELECT line_id, line_id, ?, refund_id, collection_id, reason, 'open', current_timestamp FROM e "
        "WHERE line_id NOT IN (SELECT exception_id FROM exceptions)",
        [file_name],
        e=rows.unique("line_id"),
    )


def _store(
    con: duckdb.DuckDBPyConnection, decided: pl.DataFrame, file_name: str, sha256: str, balance_gaps: list[str]
) -> None:
    stored = decided.with_columns(
        pl.lit(sha256).alias("file_sha256"),
        pl.lit(file_name).alias("file_name"),
        pl.coalesce(
            pl.when(pl.col("kind") == "payout").then(pl.col("refund_id")),
            pl.when(pl.col("kind") == "collection").then(pl.col("collection_id")),
            pl.col("proposed_ref") if "proposed_ref" in decided.columns else pl.lit(None, pl.String),
        ).alias("matched_ref"),
        pl.coalesce(pl.col("kind"), pl.col("proposed_kind") if "proposed_kind" in decided.columns
                    else pl.lit(None, pl.String)).alias("matched_kind"),
    )  # fmt: skip
    # Each line's id is unique by construction (copies and batch items get ids of their own); should one
    # still repeat, it is stored once. Checked by counting, as a copy of a million lines costs 300 MB.
    if stored["line_id"].n_unique() != stored.height:
        stored = stored.unique("line_id", keep="first", maintain_order=True)
    columns = ["line_id", "file_sha256", "file_name", *LINE_COLUMNS, "outcome", "matched_kind", "matched_ref",
               "event", "note"]  # fmt: skip
    stored = stored.with_columns([pl.lit(None).alias(c) for c in columns if c not in stored.columns])
    run_with_frames(
        con,
        f"INSERT INTO bank_lines ({', '.join(columns)}, recorded_at) "
        f"SELECT {', '.join(columns)}, current_timestamp FROM s",
        s=stored.select(columns),
    )
    for column in ("refund_id", "collection_id"):
        if column not in stored.columns:
            stored = stored.with_columns(pl.lit(None, pl.String).alias(column))
    exceptions = stored.filter(pl.col("outcome") == "exception")
    _raise_exceptions(
        con,
        exceptions.select(
            "line_id", "refund_id", "collection_id", pl.col("note").fill_null("not matched").alias("reason")
        ),
        file_name,
    )
    proposals = stored.filter(pl.col("outcome") == "proposed")
    if not proposals.is_empty():
        run_with_frames(
            con,
            "INSERT INTO proposed_matches SELECT line_id, matched_kind, matched_ref, proposed_score, 'proposed', "
            "current_timestamp FROM p",
            p=proposals.select("line_id", "matched_kind", "matched_ref", "proposed_score"),
        )
    if balance_gaps:
        ids = [hashlib.sha256(f"{sha256}:{g}".encode()).hexdigest()[:32] for g in balance_gaps]
        gaps = pl.DataFrame(
            {"line_id": ids, "refund_id": None, "collection_id": None, "reason": balance_gaps},
            schema={"line_id": pl.String, "refund_id": pl.String, "collection_id": pl.String, "reason": pl.String},
        )
        _raise_exceptions(con, gaps, file_name)


def list_exceptions(con: duckdb.DuckDBPyConnection, status: str | None = "open") -> pl.DataFrame:
    """The exceptions queue: each with the bank line it is about (EndToEndId, entry reference) and refund."""
    return con.execute(
        "SELECT e.exception_id, e.status, e.file_name, r.refund_ref, e.refund_id, e.collection_id, "
        "l.end_to_end_id, l.entry_ref, l.amount_cents, l.direction, l.return_reason, e.reason, e.created_at "
        "FROM exceptions e LEFT JOIN bank_lines l USING (line_id) LEFT JOIN refunds r ON r.refund_id = e.refund_id "
        "WHERE (? IS NULL OR e.status = ?) ORDER BY e.created_at, e.exception_id",
        [status, status],
    ).pl()


def repeated_lines(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Line ids recorded more than once, with how many times (should be none: a line already known is never
    booked again, and a line repeated within a file gets an id of its own)."""
    return con.execute(
        "SELECT line_id, COUNT(*) AS times FROM bank_lines GROUP BY line_id HAVING COUNT(*) > 1 ORDER BY line_id"
    ).pl()


def unaccounted_lines(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Lines read from bank files that are neither matched, proposed, in exceptions nor set aside as not
    booked (the asset check: none dropped)."""
    return con.execute(
        "SELECT l.line_id, l.file_name, l.outcome FROM bank_lines l WHERE NOT ("
        " l.outcome IN ('matched', 'proposed', 'ignored')"
        " OR (l.outcome = 'exception' AND EXISTS (SELECT 1 FROM exceptions e WHERE e.line_id = l.line_id)))"
    ).pl()
