"""The double-entry ledger: transfers balance in integer EUR cents, posting is idempotent by id and
append-only, ids are never reused for other content, and random histories keep the books at zero."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.db import migrate, open_ledger, transaction
from ledger.postings import (
    LedgerError,
    Posting,
    Transfer,
    balance,
    balances,
    ledger_total,
    post,
    post_frames,
    reused_transfer_ids,
    to_frames,
    transfer,
    unbalanced_transfers,
)
from tests.ledger.shop import postings_snapshot, table_counts

# --- Posting and Transfer refuse what would break the books --------------------------------------


@pytest.mark.parametrize("amount", [1.5, 100.0, True, False, "100", Decimal("1.00"), None])
def test_posting_refuses_anything_but_int_cents(amount: object) -> None:
    """Floats (even whole ones), bools, text, Decimals and None are not integer cents."""
    with pytest.raises(LedgerError, match="not integer cents"):
        Posting("platform:bank", amount)  # type: ignore[arg-type]


def test_posting_accepts_int_cents_of_any_sign() -> None:
    """Debits are positive, credits negative, zero is allowed; EUR is the default currency."""
    assert Posting("a", 0).amount_cents == 0
    assert Posting("a", -5).amount_cents == -5
    assert Posting("a", 5).currency == "EUR"


@pytest.mark.parametrize("currency", ["USD", "eur", "", "CHF"])
def test_posting_refuses_other_currencies(currency: str) -> None:
    """The ledger books EUR only (and the code is case-sensitive about it)."""
    with pytest.raises(LedgerError, match="EUR only"):
        Posting("a", 100, currency)


def test_transfer_refuses_unbalanced_postings() -> None:
    """Postings that do not sum to zero are refused, naming the difference."""
    with pytest.raises(LedgerError, match="sum to 1 cents"):
        Transfer("T1", "test", (Posting("a", 100), Posting("b", -99)))


def test_transfer_refuses_a_single_posting() -> None:
    """Even a zero posting alone is not a transfer."""
    with pytest.raises(LedgerError, match="at least two postings"):
        Transfer("T1", "test", (Posting("a", 0),))


def test_transfer_refuses_two_postings_to_one_account() -> None:
    """Each account appears once per transfer."""
    with pytest.raises(LedgerError, match="same account twice"):
        Transfer("T1", "test", (Posting("a", 100), Posting("a", -100)))


def test_transfer_helper_debits_and_credits() -> None:
    """transfer(debit, credit, amount) is +amount on the debit side, -amount on the credit side."""
    t = transfer("T1", "test", "platform:bank", "customers:payable", 250, refund_id="RF1", memo="m")
    assert t.postings == (Posting("platform:bank", 250), Posting("customers:payable", -250))
    assert (t.legs, t.refund_id, t.memo) == (2, "RF1", "m")


def test_transfer_helper_refuses_float_amounts() -> None:
    """1.5 cents never reaches the ledger, whichever way the transfer is built."""
    with pytest.raises(LedgerError):
        transfer("T1", "test", "a", "b", 1.5)  # type: ignore[arg-type]


def test_three_legged_transfer_books_all_legs(con: duckdb.DuckDBPyConnection) -> None:
    """A split transfer books every leg and the accounts move by exactly those amounts."""
    t = Transfer("T1", "split", (Posting("a", 100), Posting("b", -60), Posting("c", -40)))
    assert post(con, [t]) == 1
    assert balances(con).rows() == [("a", 100), ("b", -60), ("c", -40)]


# --- posting: idempotent, append-only, ids never reused ------------------------------------------


def test_posting_the_same_transfer_twice_books_once(con: duckdb.DuckDBPyConnection) -> None:
    """The second post of the same id and content is skipped: nothing new, balances unchanged."""
    t = transfer("T1", "test", "a", "b", 100)
    assert post(con, [t]) == 1
    before = table_counts(con)
    assert post(con, [t]) == 0
    assert table_counts(con) == before
    assert balance(con, "a") == 100
    assert balance(con, "b") == -100


def test_repost_with_other_head_fields_is_still_skipped(con: duckdb.DuckDBPyConnection) -> None:
    """Idempotency is by id and postings; a changed memo does not book a second time or alter the first."""
    post(con, [transfer("T1", "test", "a", "b", 100, memo="first")])
    assert post(con, [transfer("T1", "test", "a", "b", 100, memo="second")]) == 0
    assert con.execute("SELECT memo FROM transfers").fetchall() == [("first",)]


@pytest.mark.parametrize(
    "other",
    [
        transfer("T1", "test", "a", "b", 101),
        transfer("T1", "test", "a", "c", 100),
        transfer("T1", "test", "b", "a", 100),
        Transfer("T1", "test", (Posting("a", 100), Posting("b", -60), Posting("c", -40))),
    ],
    ids=["other-amount", "other-account", "reversed", "extra-leg"],
)
def test_same_id_with_other_postings_is_refused(con: duckdb.DuckDBPyConnection, other: Transfer) -> None:
    """An id already booked is never reused for other postings; the ledger is left as it was."""
    post(con, [transfer("T1", "test", "a", "b", 100)])
    before = postings_snapshot(con)
    with pytest.raises(LedgerError, match="already booked with other postings"):
        post(con, [other])
    assert postings_snapshot(con) == before


def test_a_batch_with_one_conflict_books_nothing(con: duckdb.DuckDBPyConnection) -> None:
    """A batch is all or nothing: a new transfer beside a conflicting one is not booked either."""
    post(con, [transfer("T1", "test", "a", "b", 100)])
    with pytest.raises(LedgerError):
        post(con, [transfer("T2", "test", "a", "b", 5), transfer("T1", "test", "a", "b", 999)])
    assert con.execute("SELECT transfer_id FROM transfers").fetchall() == [("T1",)]


def test_a_batch_mixing_new_and_known_transfers_books_only_the_new(con: duckdb.DuckDBPyConnection) -> None:
    """Known ids in a batch are skipped, the new ones booked; the count says how many were new."""
    post(con, [transfer("T1", "test", "a", "b", 100)])
    assert post(con, [transfer("T1", "test", "a", "b", 100), transfer("T2", "test", "b", "c", 30)]) == 1
    assert balances(con).rows() == [("a", 100), ("b", -70), ("c", -30)]


def test_posting_never_changes_existing_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Append-only: after more postings (including re-posts) every earlier row is still there unchanged."""
    post(con, [transfer("T1", "test", "a", "b", 100), transfer("T2", "test", "b", "c", 40)])
    old_postings = set(postings_snapshot(con))
    old_heads = set(con.execute("SELECT * FROM transfers").fetchall())
    post(con, [transfer("T2", "test", "b", "c", 40), transfer("T3", "test", "c", "a", 10)])
    post(con, [transfer("T4", "test", "a", "b", 100)])
    assert old_postings < set(postings_snapshot(con))
    assert old_heads < set(con.execute("SELECT * FROM transfers").fetchall())
    assert len(postings_snapshot(con)) == 8


def test_empty_post_books_nothing(con: duckdb.DuckDBPyConnection) -> None:
    """Posting no transfers is a no-op."""
    assert post(con, []) == 0
    assert table_counts(con)["postings"] == 0


def test_same_transfer_twice_in_one_batch_is_refused_as_a_ledger_error(con: duckdb.DuckDBPyConnection) -> None:
    """One id given twice in one batch is refused with LedgerError ("transfer id given twice", as
    post_frames' own check says) and books nothing."""
    t = transfer("T1", "test", "a", "b", 100)
    with pytest.raises(LedgerError):
        post(con, [t, t])
    assert table_counts(con)["postings"] == 0


# --- post_frames: the bulk path checks the same things -------------------------------------------


def frames(legs: list[tuple[str, str, int]], heads: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(heads, legs) frames for post_frames; heads default to the transfer ids of the legs."""
    ids = heads if heads is not None else list(dict.fromkeys(t for t, _, _ in legs))
    head_frame = pl.DataFrame(
        {"transfer_id": ids, "kind": ["test"] * len(ids), "refund_id": None, "merchant_id": None, "memo": None},
        schema={c: pl.String for c in ["transfer_id", "kind", "refund_id", "merchant_id", "memo"]},
    )
    leg_frame = pl.DataFrame(
        {
            "transfer_id": [t for t, _, _ in legs],
            "account": [a for _, a, _ in legs],
            "amount_cents": [c for _, _, c in legs],
            "currency": ["EUR"] * len(legs),
        },
        schema={"transfer_id": pl.String, "account": pl.String, "amount_cents": pl.Int64, "currency": pl.String},
    )
    return head_frame, leg_frame


@pytest.mark.parametrize(
    ("legs", "heads", "problem"),
    [
        ([("T1", "a", 100), ("T1", "b", -99)], None, "does not balance"),
        ([("T1", "a", 0)], None, "does not balance"),
        ([("T1", "a", 100), ("T1", "b", -100)], ["T1", "T2"], "T2 has no postings"),
        ([("T1", "a", 100), ("T1", "b", -100), ("T9", "a", 1), ("T9", "b", -1)], ["T1"], "unknown transfer T9"),
        ([("T1", "a", 100), ("T1", "b", -100), ("T1", "a", 0)], None, "T1 posts to a twice"),
        ([("T1", "a", 100), ("T1", "b", -100), ("T2", "a", 5), ("T2", "b", -5)], ["T1", "T3"], "T3 has no postings"),
    ],
    ids=["unbalanced", "one-leg", "head-without-legs", "orphan-legs", "same-account-twice", "legs-of-another-id"],
)
def test_post_frames_refuses_broken_transfers(
    con: duckdb.DuckDBPyConnection, legs: list[tuple[str, str, int]], heads: list[str] | None, problem: str
) -> None:
    """The bulk path refuses what Transfer refuses, and books nothing."""
    with pytest.raises(LedgerError, match=problem):
        post_frames(con, *frames(legs, heads))
    assert table_counts(con)["transfers"] == 0


def test_post_frames_refuses_a_non_eur_posting(con: duckdb.DuckDBPyConnection) -> None:
    """A frame leg in USD never reaches the ledger."""
    heads, legs = frames([("T1", "a", 100), ("T1", "b", -100)])
    with pytest.raises(Exception, match="currency"):
        post_frames(con, heads, legs.with_columns(pl.lit("USD").alias("currency")))
    assert table_counts(con)["postings"] == 0


def test_post_frames_refuses_float_amounts(con: duckdb.DuckDBPyConnection) -> None:
    """A frame with float amounts never reaches the ledger."""
    heads, legs = frames([("T1", "a", 100), ("T1", "b", -100)])
    with pytest.raises(Exception, match="amount_cents"):
        post_frames(con, heads, legs.with_columns(pl.col("amount_cents").cast(pl.Float64) + 0.5))
    assert table_counts(con)["postings"] == 0


def test_post_frames_refuses_two_legs_on_one_account_as_a_ledger_error(con: duckdb.DuckDBPyConnection) -> None:
    """Like Transfer, the bulk path refuses a transfer posting twice to the same account with LedgerError."""
    with pytest.raises(LedgerError):
        post_frames(con, *frames([("T1", "a", 100), ("T1", "a", -100)]))
    assert table_counts(con)["transfers"] == 0


def test_to_frames_round_trips_through_post_frames(con: duckdb.DuckDBPyConnection) -> None:
    """to_frames + post_frames books the same as post."""
    ts = [transfer("T1", "test", "a", "b", 7, refund_id="RF1", merchant_id="M1"), transfer("T2", "test", "b", "c", 3)]
    assert post_frames(con, *to_frames(ts)) == 2
    assert balances(con).rows() == [("a", 7), ("b", -4), ("c", -3)]
    assert con.execute("SELECT refund_id, merchant_id FROM transfers WHERE transfer_id = 'T1'").fetchone() == (
        "RF1",
        "M1",
    )


# --- the zero-sum checks can see a broken ledger -------------------------------------------------


def test_balance_of_an_account_never_posted_to_is_zero(con: duckdb.DuckDBPyConnection) -> None:
    """balance() of an unknown account is 0, and balances() lists only accounts posted to."""
    post(con, [transfer("T1", "test", "b", "a", 5)])
    assert balance(con, "nobody") == 0
    assert balances(con)["account"].to_list() == ["a", "b"]


def test_unbalanced_transfers_and_ledger_total_detect_corruption(con: duckdb.DuckDBPyConnection) -> None:
    """The checks are not vacuous: rows written past post() (a lone leg, a head without legs) are flagged."""
    post(con, [transfer("T1", "test", "a", "b", 100)])
    assert unbalanced_transfers(con).is_empty()
    assert ledger_total(con) == 0
    con.execute("INSERT INTO transfers VALUES ('BAD1', 'test', NULL, NULL, NULL, current_timestamp)")
    con.execute("INSERT INTO postings VALUES ('BAD1', 'a', 5, 'EUR')")
    con.execute("INSERT INTO transfers VALUES ('BAD2', 'test', NULL, NULL, NULL, current_timestamp)")
    flagged = dict(unbalanced_transfers(con).select("transfer_id", "total").iter_rows())
    assert flagged == {"BAD1": 5, "BAD2": 0}
    assert ledger_total(con) == 5


def test_a_transfer_id_booked_twice_past_post_is_flagged(con: duckdb.DuckDBPyConnection) -> None:
    """transfers has no key on transfer_id (post_frames checks it): posting again books nothing, and a head
    written a second time by anything else is found by `reused_transfer_ids`, which the asset check runs."""
    post(con, [transfer("T1", "test", "a", "b", 100), transfer("T2", "test", "a", "b", 7)])
    assert post(con, [transfer("T1", "test", "a", "b", 100)]) == 0
    assert reused_transfer_ids(con).is_empty()
    con.execute("INSERT INTO transfers SELECT * FROM transfers WHERE transfer_id = 'T2'")
    assert reused_transfer_ids(con).rows() == [("T2", 2)]


def test_keys_dropped_by_migration_6_keep_every_row(tmp_path: Path) -> None:
    """A ledger written before migration 6 (which rebuilds transfers, bank_lines and refunds without the keys
    their writers check) keeps every row and every constraint but those keys."""
    from ledger.db import migrations

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP)"
    )
    for version, name, sql in migrations():
        if version < 6:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)", [version, name])
    post(con, [transfer("T1", "test", "a", "b", 100)])
    con.execute(
        "INSERT INTO refunds (refund_id, refund_ref, merchant_id, amount_cents, payout_cents, "
        "cancelled_instalments_cents, requested_on, status, source_file, source_line, recorded_at) "
        "VALUES ('RF1', 'R1', 'M1', 500, 500, 0, DATE '2024-05-01', 'scheduled', 'refunds.csv', 2, current_timestamp)"
    )
    con.execute(
        "INSERT INTO bank_lines (line_id, file_sha256, file_name, outcome, amount_cents, recorded_at) "
        "VALUES ('L1', 'abc', 'n.xml', 'matched', 100, current_timestamp)"
    )
    before = table_counts(con)
    assert migrate(con) == [6]
    after = table_counts(con)
    assert after.pop("schema_migrations") == before.pop("schema_migrations") + 1
    assert after == before
    assert balance(con, "a") == 100
    assert con.execute("SELECT status FROM refunds WHERE refund_id = 'RF1'").fetchone() == ("scheduled",)
    with pytest.raises(duckdb.ConstraintException):  # refund_id keeps its primary key
        con.execute("INSERT INTO refunds SELECT * FROM refunds")
    con.close()


# --- the database around the ledger --------------------------------------------------------------


def test_migrate_is_idempotent_and_reopening_keeps_the_books(tmp_path: Path) -> None:
    """A second migrate applies nothing; a reopened ledger still holds what was booked."""
    path = tmp_path / "books" / "ledger.duckdb"
    with open_ledger(path) as con:
        assert con.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] >= 1
        assert migrate(con) == []
        post(con, [transfer("T1", "test", "a", "b", 100)])
    with open_ledger(path) as con:
        assert balance(con, "a") == 100


def test_transaction_rolls_back_everything_on_error(con: duckdb.DuckDBPyConnection) -> None:
    """A failing block leaves nothing behind, including postings made by a nested transaction."""
    with pytest.raises(RuntimeError), transaction(con):
        post(con, [transfer("T1", "test", "a", "b", 100)])
        raise RuntimeError("boom")
    assert table_counts(con)["transfers"] == 0
    post(con, [transfer("T2", "test", "a", "b", 1)])  # the connection is usable again
    assert balance(con, "a") == 1


# --- property-based: random histories ------------------------------------------------------------

ACCOUNTS = ["platform:bank", "customers:payable", "merchant:M1:receivable", "merchant:M2:balance", "fees"]


@st.composite
def histories(draw: st.DrawFn) -> list[list[tuple[str, str, str, int]]]:
    """Batches of transfers (id, debit, credit, amount): new ones, and re-posts of earlier ones."""
    batches: list[list[tuple[str, str, str, int]]] = []
    made: list[tuple[str, str, str, int]] = []
    for b in range(draw(st.integers(1, 3))):
        batch: dict[str, tuple[str, str, str, int]] = {}
        for i in range(draw(st.integers(1, 5))):
            if made and draw(st.booleans()):
                old = draw(st.sampled_from(made))
                batch[old[0]] = old
                continue
            debit, credit = draw(st.lists(st.sampled_from(ACCOUNTS), min_size=2, max_size=2, unique=True))
            new = (f"T{b}-{i}", debit, credit, draw(st.integers(1, 10**9)))
            batch[new[0]] = new
        made.extend(t for t in batch.values() if t not in made)
        batches.append(list(batch.values()))
    return batches


@pytest.fixture(scope="module")
def shared_ledger() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory ledger for the whole property run; each example books under its own prefix."""
    con = duckdb.connect()
    migrate(con)
    yield con
    con.close()


_example = itertools.count()


@settings(max_examples=40, deadline=None)
@given(history=histories(), try_conflict=st.booleans())
def test_random_histories_keep_the_books_straight(
    shared_ledger: duckdb.DuckDBPyConnection, history: list[list[tuple[str, str, str, int]]], try_conflict: bool
) -> None:
    """Whatever transfers are posted and re-posted: the ledger sums to zero, no transfer is unbalanced,
    each id books once, a reused id with other content is refused, and every balance equals a plain
    Python model of the same history. (Each example uses its own id and account prefix.)"""
    con = shared_ledger
    prefix = f"x{next(_example)}:"
    model: dict[str, int] = defaultdict(int)
    booked: set[str] = set()
    for batch in history:
        new = [t for t in batch if t[0] not in booked]
        offered = [transfer(prefix + tid, "test", prefix + d, prefix + c, amount) for tid, d, c, amount in batch]
        assert post(con, offered) == len(new)
        for tid, debit, credit, amount in new:
            model[prefix + debit] += amount
            model[prefix + credit] -= amount
            booked.add(tid)
    if try_conflict:
        tid, debit, credit, amount = history[0][0]
        mine = "SELECT * FROM postings WHERE starts_with(transfer_id, ?) ORDER BY ALL"
        before = con.execute(mine, [prefix]).fetchall()
        with pytest.raises(LedgerError):
            post(con, [transfer(prefix + tid, "test", prefix + debit, prefix + credit, amount + 1)])
        assert con.execute(mine, [prefix]).fetchall() == before
    assert ledger_total(con) == 0
    assert unbalanced_transfers(con).is_empty()
    mine = balances(con).filter(pl.col("account").str.starts_with(prefix))
    assert dict(mine.iter_rows()) == dict(model)
    counts = con.execute(
        "SELECT (SELECT COUNT(*) FROM transfers WHERE starts_with(transfer_id, ?)), "
        "(SELECT COUNT(*) FROM postings WHERE starts_with(transfer_id, ?))",
        [prefix, prefix],
    ).fetchone()
    assert counts == (len(booked), 2 * len(booked))
