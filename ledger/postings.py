"""Double-entry transfers: immutable records, posted append-only and idempotently by their ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import pandera.polars as pa
import polars as pl

from ledger.db import run_with_frames, transaction
from ledger.schemas import PostingFrame, TransferFrame

CURRENCY = "EUR"


class LedgerError(Exception):
    """A posting that would break the books (unbalanced, not integer cents, id reused for other content)."""


@dataclass(frozen=True)
class Posting:
    """One leg of a transfer: debit positive, credit negative, in integer cents."""

    account: str
    amount_cents: int
    currency: str = CURRENCY

    def __post_init__(self) -> None:
        if type(self.amount_cents) is not int:
            raise LedgerError(f"amount for {self.account} is not integer cents: {self.amount_cents!r}")
        if self.currency != CURRENCY:
            raise LedgerError(f"currency {self.currency!r} for {self.account}: the ledger books EUR only")


@dataclass(frozen=True)
class Transfer:
    """One money movement: balanced postings under a deterministic id, so posting twice books once."""

    transfer_id: str
    kind: str
    postings: tuple[Posting, ...]
    refund_id: str | None = None
    merchant_id: str | None = None
    memo: str | None = None
    legs: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "legs", len(self.postings))
        if self.legs < 2:
            raise LedgerError(f"transfer {self.transfer_id} needs at least two postings")
        total = sum(p.amount_cents for p in self.postings)
        if total != 0:
            raise LedgerError(f"transfer {self.transfer_id} does not balance: postings sum to {total} cents")
        if len({p.account for p in self.postings}) != self.legs:
            raise LedgerError(f"transfer {self.transfer_id} posts to the same account twice")


def transfer(
    transfer_id: str,
    kind: str,
    debit: str,
    credit: str,
    amount_cents: int,
    *,
    refund_id: str | None = None,
    merchant_id: str | None = None,
    memo: str | None = None,
) -> Transfer:
    """A two-legged transfer moving `amount_cents` from `credit` to `debit`."""
    return Transfer(
        transfer_id,
        kind,
        (Posting(debit, amount_cents), Posting(credit, -amount_cents)),
        refund_id=refund_id,
        merchant_id=merchant_id,
        memo=memo,
    )


def to_frames(transfers: Iterable[Transfer]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The transfers as a (transfers, postings) pair of frames, ready for `post_frames`."""
    heads, legs = [], []
    for t in transfers:
        heads.append((t.transfer_id, t.kind, t.refund_id, t.merchant_id, t.memo))
        legs.extend((t.transfer_id, p.account, p.amount_cents, p.currency) for p in t.postings)
    heads_frame = pl.DataFrame(
        heads, schema=["transfer_id", "kind", "refund_id", "merchant_id", "memo"], orient="row"
    ).cast({c: pl.String for c in ["transfer_id", "kind", "refund_id", "merchant_id", "memo"]})
    legs_frame = pl.DataFrame(legs, schema=["transfer_id", "account", "amount_cents", "currency"], orient="row").cast(
        {"transfer_id": pl.String, "account": pl.String, "amount_cents": pl.Int64, "currency": pl.String}
    )
    return heads_frame, legs_frame


def post(con: duckdb.DuckDBPyConnection, transfers: Iterable[Transfer]) -> int:
    """Post transfers; those whose id is already booked are skipped. Returns how many were new."""
    return post_frames(con, *to_frames(transfers))


def post_frames(con: duckdb.DuckDBPyConnection, heads: pl.DataFrame, legs: pl.DataFrame) -> int:
    """Post transfers given as frames (the bulk path: one insert per table, never row by row).

    Every transfer must balance to zero in integer cents. A transfer id already in the ledger is
    skipped when its postings are the same, and refused when they differ: ids are never reused.
    """
    if heads.is_empty():
        return 0
    if heads["transfer_id"].n_unique() != heads.height:
        raise LedgerError(f"transfer id given twice: {heads.filter(pl.col('transfer_id').is_duplicated())[0, 0]}")
    try:
        heads = TransferFrame.validate(heads)
        legs = PostingFrame.validate(legs)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise LedgerError(f"postings not in the ledger's shape: {exc}") from None
    _check_legs(heads, legs)
    # transfer_id has no index (a million a week would cost more than the rest of the write): this look-up, in
    # the transaction that inserts, under the ledger lock, is what keeps an id from being booked twice.
    with transaction(con):
        known = run_with_frames(
            con,
            "SELECT p.transfer_id, p.account, p.amount_cents, p.currency FROM postings p JOIN ids USING (transfer_id)",
            ids=heads.select("transfer_id"),
        )
        new_heads, new_legs = heads, legs
        if not known.is_empty():
            _check_same_content(known, legs)
            new_heads = heads.join(known.select("transfer_id").unique(), on="transfer_id", how="anti")
            new_legs = legs.join(new_heads.select("transfer_id"), on="transfer_id", how="semi")
        if new_heads.is_empty():
            return 0
        run_with_frames(
            con,
            "INSERT INTO transfers (transfer_id, kind, refund_id, merchant_id, memo, booked_at) "
            "SELECT transfer_id, kind, refund_id, merchant_id, memo, current_timestamp FROM new_heads",
            new_heads=new_heads,
        )
        run_with_frames(
            con,
            "INSERT INTO postings (transfer_id, account, amount_cents, currency) "
            "SELECT transfer_id, account, amount_cents, currency FROM new_legs",
            new_legs=new_legs,
        )
    return new_heads.height


def _check_legs(heads: pl.DataFrame, legs: pl.DataFrame) -> None:
    """Each transfer (heads unique) has two legs or more, on as many accounts, summing to zero; every leg
    belongs to a head. One grouping of the legs answers all of it (a million transfers: about half a second)."""
    sums = legs.group_by("transfer_id").agg(
        pl.col("amount_cents").sum().alias("total"),
        pl.len().alias("legs"),
        pl.col("account").n_unique().alias("accounts"),
    )
    twice = sums.filter(pl.col("accounts") < pl.col("legs"))
    if not twice.is_empty():
        tid = twice["transfer_id"][0]
        account = legs.filter((pl.col("transfer_id") == tid) & pl.col("account").is_duplicated())["account"][0]
        raise LedgerError(f"transfer {tid} posts to {account} twice")
    # Heads are unique and so are the groups: the same count and every group a head means the same ids.
    if sums.height != heads.height or sums.join(heads, on="transfer_id", how="semi").height != sums.height:
        missing = heads.join(sums, on="transfer_id", how="anti")
        if not missing.is_empty():
            raise LedgerError(f"transfer {missing['transfer_id'][0]} has no postings")
        orphan = sums.join(heads, on="transfer_id", how="anti")
        raise LedgerError(f"postings for unknown transfer {orphan['transfer_id'][0]}")
    bad = sums.filter((pl.col("total") != 0) | (pl.col("legs") < 2))
    if not bad.is_empty():
        row = bad.row(0, named=True)
        raise LedgerError(
            f"transfer {row['transfer_id']} does not balance: {row['legs']} postings sum to {row['total']} cents"
        )


def _check_same_content(known: pl.DataFrame, legs: pl.DataFrame) -> None:
    keys = ["transfer_id", "account", "amount_cents", "currency"]
    offered = legs.join(known.select("transfer_id").unique(), on="transfer_id", how="semi")
    differs = offered.select(keys).join(known.select(keys), on=keys, how="anti")
    if not differs.is_empty() or offered.height != known.height:
        tid = (differs if not differs.is_empty() else known)["transfer_id"][0]
        raise LedgerError(f"transfer {tid} is already booked with other postings; ledger ids are never reused")


def balances(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Balance per account in cents (debit positive), accounts in name order."""
    return con.execute(
        "SELECT account, CAST(SUM(amount_cents) AS BIGINT) AS balance_cents "
        "FROM postings GROUP BY account ORDER BY account"
    ).pl()


def balance(con: duckdb.DuckDBPyConnection, account: str) -> int:
    """The balance of one account in cents (0 for an account never posted to)."""
    row = con.execute(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM postings WHERE account = ?", [account]
    ).fetchone()
    return int(row[0]) if row else 0


def unbalanced_transfers(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Transfers in the ledger whose postings do not sum to zero or have fewer than two legs (should be none)."""
    return con.execute(
        "SELECT t.transfer_id, CAST(COALESCE(SUM(p.amount_cents), 0) AS BIGINT) AS total, "
        "COUNT(p.account) AS legs FROM transfers t LEFT JOIN postings p USING (transfer_id) "
        "GROUP BY t.transfer_id HAVING COALESCE(SUM(p.amount_cents), 0) <> 0 OR COUNT(p.account) < 2"
    ).pl()


def reused_transfer_ids(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Transfer ids booked more than once, with how many heads each has (should be none: `post_frames` books
    an id once, and the table has no key to refuse a second head written past it)."""
    return con.execute(
        "SELECT transfer_id, COUNT(*) AS heads FROM transfers GROUP BY transfer_id HAVING COUNT(*) > 1 "
        "ORDER BY transfer_id"
    ).pl()


def ledger_total(con: duckdb.DuckDBPyConnection) -> int:
    """Sum of every posting ever made; zero in a sound ledger."""
    row = con.execute("SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM postings").fetchone()
    return int(row[0]) if row else 0


def two_legged_frames(
    rows: pl.DataFrame,
    *,
    transfer_id: pl.Expr,
    kind: str,
    debit: pl.Expr,
    credit: pl.Expr,
    amount_cents: pl.Expr,
    memo: pl.Expr,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One two-legged transfer per row, built column-wise: `amount_cents` moves from `credit` to `debit`.

    `rows` needs refund_id and merchant_id (null where not about one) for the transfer heads.
    """
    heads = rows.select(
        transfer_id.alias("transfer_id"),
        pl.lit(kind).alias("kind"),
        pl.col("refund_id").cast(pl.String),
        pl.col("merchant_id").cast(pl.String),
        memo.cast(pl.String).alias("memo"),
    )
    legs = pl.concat(
        [
            rows.select(transfer_id.alias("transfer_id"), debit.alias("account"), amount_cents.alias("amount_cents")),
            rows.select(
                transfer_id.alias("transfer_id"), credit.alias("account"), (-amount_cents).alias("amount_cents")
            ),
        ]
    ).with_columns(pl.col("amount_cents").cast(pl.Int64), pl.lit(CURRENCY).alias("currency"))
    return heads, legs
