"""The refund rules of DESIGN.md section 2 with the seed's numbers: limits, partial refunds, the request
window, non-refundable orders and instalment plans; through intake (the product's path) and directly
on `decide_refunds`, including property-based runs over random refund batches."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import accounts
from ledger.postings import balance, ledger_total
from ledger.rules import decide_refunds, describe_cancellation, refund_limit
from tests.ledger.shop import Shop, Templates, merchant, order, payment, refund

# The merchants, orders and payments the intake tests below refund against (built once per session).
#   M1: own account, defaults (7 waiting days, 56-day window)     M3: refunds only what was paid
#   M4: 10-day request window
#   O1, O2    M1  EUR 40.00, paid 40.00            -> limit 80.00 (twice the order)
#   OP1, OP2  M1  EUR 10.00, paid 25.00            -> limit 25.00 (paid more than twice)
#   OR1, OR2  M3  EUR 40.00, paid 30.00            -> limit 30.00 (only what was paid)
#   OI        M1  EUR 400.00 in 4 x 100, 2 paid    -> the seed's instalment example
#   ON        M1  not refundable (trial product)
#   OW        M4  EUR 40.00, ordered 2024-05-01
#   P1, P2    M1  unmatched payments of EUR 12.34  -> limit 12.34
SEED_PLAN = {"amount_cents": 40000, "paid_cents": 20000, "instalments": 4, "instalments_paid": 2}


def build_rules_books(shop: Shop) -> None:
    shop.load(
        "merchants",
        [merchant("M1"), merchant("M3", only_refund_paid="true"), merchant("M4", refund_window_days=10)],
    )
    shop.load(
        "orders",
        [
            order("O1"),
            order("O2"),
            order("OP1", amount_cents=1000, paid_cents=2500),
            order("OP2", amount_cents=1000, paid_cents=2500),
            order("OR1", merchant_id="M3", paid_cents=3000),
            order("OR2", merchant_id="M3", paid_cents=3000),
            order("OI", **SEED_PLAN),
            order("ON", refundable="false"),
            order("OW", merchant_id="M4"),
        ],
    )
    shop.load("payments", [payment("P1", amount_cents=1234), payment("P2", amount_cents=1234)])


@pytest.fixture
def books(shop_from: Callable[[str, Callable[[Shop], None]], Shop]) -> Shop:
    """A private copy of the ledger build_rules_books makes; no refunds yet."""
    shop = shop_from("rules", build_rules_books)
    assert shop.refund_count() == 0
    return shop


# --- limits -------------------------------------------------------------------------------------


def test_limit_is_twice_the_order_amount(books: Shop) -> None:
    """Against an order of EUR 40.00: EUR 80.00 is accepted in full, EUR 80.01 is refused, not cut."""
    books.load("refunds", [refund("R1", 8000, "O1"), refund("R2", 8001, "O2")])

    ok = books.refund("R1")
    assert (ok["status"], ok["amount_cents"], ok["payout_cents"]) == ("scheduled", 8000, 8000)
    refused = books.refund("R2")
    assert (refused["status"], refused["amount_cents"], refused["payout_cents"]) == ("rejected", 8001, 0)
    assert "limit EUR 80.00" in refused["status_reason"]
    assert "twice the amount of order O2" in refused["status_reason"]
    assert refused["due_on"] is None


def test_limit_is_the_amount_paid_when_more_than_twice_was_paid(books: Shop) -> None:
    """Order EUR 10.00, paid EUR 25.00 (more than twice): EUR 25.00 may be refunded, EUR 25.01 may not."""
    books.load("refunds", [refund("R1", 2500, "OP1"), refund("R2", 2501, "OP2")])

    assert (books.refund("R1")["status"], books.refund("R1")["payout_cents"]) == ("scheduled", 2500)
    refused = books.refund("R2")
    assert refused["status"] == "rejected"
    assert "limit EUR 25.00" in refused["status_reason"]
    assert "more than twice" in refused["status_reason"]


def test_limit_is_the_amount_paid_when_merchant_refunds_only_what_was_paid(books: Shop) -> None:
    """With only_refund_paid, an order of EUR 40.00 of which EUR 30.00 was paid refunds at most EUR 30.00."""
    books.load("refunds", [refund("R1", 3000, "OR1", merchant_id="M3"), refund("R2", 3001, "OR2", merchant_id="M3")])

    assert (books.refund("R1", "M3")["status"], books.refund("R1", "M3")["payout_cents"]) == ("scheduled", 3000)
    refused = books.refund("R2", "M3")
    assert (refused["status"], refused["amount_cents"], refused["payout_cents"]) == ("rejected", 3001, 0)
    assert "limit EUR 30.00" in refused["status_reason"]
    assert "only what was paid" in refused["status_reason"]


def test_limit_against_an_unmatched_payment_is_the_payment_amount(books: Shop) -> None:
    """A payment return (no order) of EUR 12.34 refunds at most EUR 12.34, across two files too."""
    books.load("refunds", [refund("R1", 1234, None, payment_id="P1"), refund("R2", 1235, None, payment_id="P2")])
    books.load("refunds", [refund("R3", 1, None, payment_id="P1")])

    first = books.refund("R1")
    assert (first["status"], first["payout_cents"], first["customer_iban"]) == (
        "scheduled",
        1234,
        "FR7630006000011234567890189",
    )
    over = books.refund("R2")
    assert over["status"] == "rejected"
    assert "limit EUR 12.34" in over["status_reason"]
    assert "payment amount of payment P2" in over["status_reason"]
    later = books.refund("R3")
    assert later["status"] == "rejected"
    assert "EUR 12.34 already refunded" in later["status_reason"]


def test_partial_refunds_add_up_against_the_same_limit(books: Shop) -> None:
    """Limit EUR 80.00: 50 accepted, 35 refused (would make 85), a later 30 still fits and is accepted."""
    books.load(
        "refunds",
        [
            refund("R1", 5000, requested_on="2024-05-10"),
            refund("R2", 3500, requested_on="2024-05-11"),
            refund("R3", 3000, requested_on="2024-05-12"),
        ],
    )

    assert books.refund("R1")["status"] == "scheduled"
    refused = books.refund("R2")
    assert (refused["status"], refused["amount_cents"], refused["payout_cents"]) == ("rejected", 3500, 0)
    assert "EUR 35.00 requested" in refused["status_reason"]
    assert "EUR 50.00 already refunded" in refused["status_reason"]
    assert "limit EUR 80.00" in refused["status_reason"]
    assert (books.refund("R3")["status"], books.refund("R3")["payout_cents"]) == ("scheduled", 3000)
    # Only what was accepted is owed to the customer.
    assert balance(books.con, accounts.CUSTOMER_PAYABLE) == -8000


def test_partial_refunds_are_decided_in_request_order_not_file_order(books: Shop) -> None:
    """The earlier request wins even when it stands later in the file."""
    books.load(
        "refunds", [refund("LATE", 5000, requested_on="2024-05-12"), refund("EARLY", 5000, requested_on="2024-05-11")]
    )

    assert books.refund("EARLY")["status"] == "scheduled"
    assert books.refund("LATE")["status"] == "rejected"


def test_prior_refunds_from_the_ledger_count_against_the_limit(books: Shop) -> None:
    """The same partial refunds split over four files: earlier files' refunds count, refused ones do not."""
    books.load("refunds", [refund("R1", 5000)])
    books.load("refunds", [refund("R2", 3500, requested_on="2024-05-11")])
    books.load("refunds", [refund("R3", 3000, requested_on="2024-05-12")])
    books.load("refunds", [refund("R4", 1, requested_on="2024-05-13")])

    assert books.refund("R1")["status"] == "scheduled"
    second = books.refund("R2")
    assert second["status"] == "rejected"
    assert "EUR 50.00 already refunded" in second["status_reason"]
    assert "limit EUR 80.00" in second["status_reason"]
    assert books.refund("R3")["status"] == "scheduled"  # the refused EUR 35.00 did not use up the limit
    last = books.refund("R4")
    assert last["status"] == "rejected"
    assert "EUR 80.00 already refunded" in last["status_reason"]


def test_a_refused_refund_notifies_the_merchant(books: Shop) -> None:
    """A refusal goes to the merchant's outbox, not the customer's."""
    books.load("refunds", [refund("R1", 9000)])

    assert books.notifications("R1") == ["refund_refused"]
    recipient = books.con.execute("SELECT recipient FROM notifications").fetchone()[0]
    assert recipient == "merchant"


# --- request window and non-refundable orders ---------------------------------------------------


def test_request_window_closes_refund_window_days_after_the_order(books: Shop) -> None:
    """Ordered 2024-05-01 with a 56-day window: a request on 2024-06-26 is in time, on 2024-06-27 it is not."""
    books.load(
        "refunds",
        [refund("IN", 1000, "O1", requested_on="2024-06-26"), refund("LATE", 1000, "O2", requested_on="2024-06-27")],
    )

    assert books.refund("IN")["status"] == "scheduled"
    late = books.refund("LATE")
    assert (late["status"], late["payout_cents"]) == ("rejected", 0)
    assert "refund window of 56 days" in late["status_reason"]
    assert "2024-06-26" in late["status_reason"]


def test_request_window_is_per_merchant(books: Shop) -> None:
    """A merchant with a 10-day window accepts a request 10 days after the order and refuses one after 11."""
    books.load("refunds", [refund("R1", 1000, "OW", merchant_id="M4", requested_on="2024-05-11")])
    books.load("refunds", [refund("R2", 1000, "OW", merchant_id="M4", requested_on="2024-05-12")])

    assert books.refund("R1", "M4")["status"] == "scheduled"
    late = books.refund("R2", "M4")
    assert late["status"] == "rejected"
    assert "refund window of 10 days" in late["status_reason"]


def test_non_refundable_order_is_refused_with_a_reason(books: Shop) -> None:
    """A trial product (refundable=false) is refused, its amount kept, nothing booked for the customer."""
    books.load("refunds", [refund("R1", 1000, "ON")])

    row = books.refund("R1")
    assert (row["status"], row["amount_cents"], row["payout_cents"]) == ("rejected", 1000, 0)
    assert "order ON is not refundable" in row["status_reason"]
    assert balance(books.con, accounts.CUSTOMER_PAYABLE) == 0


# --- instalments --------------------------------------------------------------------------------


def test_seed_example_refund_cancels_instalments_4_and_3_and_pays_50(books: Shop) -> None:
    """400 EUR in 4 x 100, two paid, refund 250: instalments 4 and 3 cancelled (200), 50 EUR paid out."""
    books.load("refunds", [refund("R1", 25000, "OI")])

    row = books.refund("R1")
    assert row["status"] == "scheduled"
    assert row["amount_cents"] == 25000
    assert row["cancelled_instalments_cents"] == 20000
    assert row["payout_cents"] == 5000
    assert "instalments 4 and 3 cancelled" in row["cancelled_instalments"]
    assert "EUR 200.00" in row["cancelled_instalments"]
    # The customer is owed 50; the merchant gives up the two open instalments.
    assert balance(books.con, accounts.CUSTOMER_PAYABLE) == -5000
    assert balance(books.con, accounts.merchant_receivable("M1")) == 5000
    assert balance(books.con, accounts.merchant_cancelled_instalments("M1")) == 20000
    assert balance(books.con, accounts.CUSTOMER_INSTALMENTS) == -20000


def test_second_partial_refund_after_instalments_are_cancelled_pays_in_full(books: Shop) -> None:
    """After the seed refund, no instalment is open any more: a later EUR 30.00 refund is paid entirely."""
    books.load("refunds", [refund("R1", 25000, "OI")])
    books.load("refunds", [refund("R2", 3000, "OI", requested_on="2024-05-11")])

    second = books.refund("R2")
    assert (second["status"], second["cancelled_instalments_cents"], second["payout_cents"]) == ("scheduled", 0, 3000)
    assert second["cancelled_instalments"] is None
    assert balance(books.con, accounts.merchant_cancelled_instalments("M1")) == 20000


def test_two_partial_refunds_in_one_file_cancel_open_instalments_once(books: Shop) -> None:
    """The same two refunds in one file: the first cancels the open instalments, the second only pays."""
    books.load("refunds", [refund("R1", 25000, "OI"), refund("R2", 3000, "OI", requested_on="2024-05-11")])

    assert (books.refund("R1")["cancelled_instalments_cents"], books.refund("R1")["payout_cents"]) == (20000, 5000)
    assert (books.refund("R2")["cancelled_instalments_cents"], books.refund("R2")["payout_cents"]) == (0, 3000)


def test_refund_smaller_than_the_last_instalment_only_reduces_it(books: Shop) -> None:
    """Refund EUR 60.00 on the seed plan: instalment 4 is reduced by 60, nothing is paid, status completed."""
    books.load("refunds", [refund("R1", 6000, "OI")])

    row = books.refund("R1")
    assert (row["status"], row["payout_cents"], row["cancelled_instalments_cents"]) == ("completed", 0, 6000)
    assert "instalment 4 reduced by EUR 60.00" in row["cancelled_instalments"]
    assert books.notifications("R1") == ["instalments_cancelled"]
    assert balance(books.con, accounts.CUSTOMER_PAYABLE) == 0


def test_refund_after_a_reduction_cancels_the_rest_before_paying(books: Shop) -> None:
    """After 60 of instalment 4 is cancelled, EUR 160.00 cancels the remaining 140 and pays 20."""
    books.load("refunds", [refund("R1", 6000, "OI")])
    books.load("refunds", [refund("R2", 16000, "OI", requested_on="2024-05-11")])

    row = books.refund("R2")
    assert (row["cancelled_instalments_cents"], row["payout_cents"]) == (14000, 2000)
    assert "instalment 3 cancelled" in row["cancelled_instalments"]
    assert "instalment 4 reduced by EUR 40.00" in row["cancelled_instalments"]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((20000, 0, 40000, 4), "instalments 4 and 3 cancelled (EUR 200.00)"),
        ((10000, 0, 40000, 4), "instalment 4 cancelled (EUR 100.00)"),
        ((6000, 0, 40000, 4), "instalment 4 reduced by EUR 60.00 (EUR 60.00)"),
        ((30000, 0, 40000, 4), "instalments 4, 3 and 2 cancelled (EUR 300.00)"),
        ((10000, 10000, 40000, 4), "instalment 3 cancelled (EUR 100.00)"),
        ((3334, 0, 10000, 3), "instalment 3 cancelled (EUR 33.34)"),
        ((3333, 0, 10000, 3), "instalment 3 reduced by EUR 33.33 (EUR 33.33)"),
    ],
)
def test_describe_cancellation_names_instalments_from_the_last(args: tuple[int, int, int, int], text: str) -> None:
    """Instalments are counted from the last one; the last takes the remaining cents of an uneven split."""
    assert describe_cancellation(*args) == text


# --- refund_limit and decide_refunds directly ----------------------------------------------------


def test_refund_limit_for_each_basis() -> None:
    """refund_limit: twice the order, the amount paid above that, only-paid, and the payment amount."""
    frame = pl.DataFrame(
        {
            "order_id": ["A", "B", "C", None],
            "payment_id": [None, None, None, "P"],
            "order_amount_cents": [4000, 1000, 4000, None],
            "order_paid_cents": [4000, 2500, 3000, None],
            "only_refund_paid": [False, False, True, False],
            "payment_amount_cents": [None, None, None, 1234],
        },
        schema_overrides={
            "order_amount_cents": pl.Int64,
            "order_paid_cents": pl.Int64,
            "payment_amount_cents": pl.Int64,
        },
    )
    limits = refund_limit(frame)
    assert limits["limit_cents"].to_list() == [8000, 2500, 3000, 1234]
    assert limits["limit_basis"].to_list() == [
        "twice the amount of order A",
        "the amount paid on order B (more than twice the order amount)",
        "the amount paid on order C (merchant refunds only what was paid)",
        "the payment amount of payment P",
    ]


ORDERED_ON = date(2024, 5, 1)
WINDOW_DAYS = 56


def candidate(refund_id: str, amount: int, seq: int, **fields: Any) -> dict[str, Any]:
    """A candidate refund on order O1 (EUR 40.00, paid) of an own-account merchant, customer IBAN valid."""
    row: dict[str, Any] = {
        "refund_id": refund_id,
        "merchant_id": "M1",
        "order_id": "O1",
        "payment_id": None,
        "amount_cents": amount,
        "requested_on": date(2024, 5, 10),
        "seq": seq,
        "order_amount_cents": 4000,
        "order_paid_cents": 4000,
        "ordered_on": ORDERED_ON,
        "instalments": 1,
        "instalments_paid": 0,
        "refundable": True,
        "payment_amount_cents": None,
        "funding": "own_account",
        "only_refund_paid": False,
        "refund_window_days": WINDOW_DAYS,
        "waiting_days": 7,
        "available_balance_cents": 0,
        "prior_refunded_cents": 0,
        "prior_cancelled_cents": 0,
        "customer_iban": "DE02120300000000202051",
        "iban_problem": None,
    }
    row.update(fields)
    return row


def decide(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """decide_refunds on candidate rows, keyed by refund_id."""
    decided = decide_refunds(pl.DataFrame(rows, infer_schema_length=None))
    return {r["refund_id"]: r for r in decided.iter_rows(named=True)}


def test_decide_refunds_counts_prior_refunds_from_the_ledger() -> None:
    """prior_refunded_cents of EUR 70.00 leaves EUR 10.00 of an EUR 80.00 limit."""
    out = decide(
        [candidate("A", 1001, 1, prior_refunded_cents=7000), candidate("B", 1000, 2, prior_refunded_cents=7000)]
    )
    assert out["A"]["status"] == "rejected"
    assert "EUR 70.00 already refunded" in out["A"]["status_reason"]
    assert out["B"]["status"] == "scheduled"


def test_decide_refunds_sets_due_on_after_the_waiting_days() -> None:
    """due_on is requested_on plus the merchant's waiting days; refused refunds have none."""
    out = decide([candidate("A", 1000, 1, waiting_days=3), candidate("B", 99999, 2)])
    assert out["A"]["due_on"] == date(2024, 5, 13)
    assert out["B"]["due_on"] is None


def test_decide_refunds_blocks_first_come_first_served() -> None:
    """Integrated balance EUR 60.00: 50 fits, 20 does not, and the later 5 waits behind it."""
    rows = [
        candidate("A", 5000, 1, order_id="O1", funding="integrated", available_balance_cents=6000),
        candidate("B", 2000, 2, order_id="O2", funding="integrated", available_balance_cents=6000),
        candidate("C", 500, 3, order_id="O3", funding="integrated", available_balance_cents=6000),
    ]
    out = decide(rows)
    assert [out[k]["status"] for k in "ABC"] == ["scheduled", "blocked", "blocked"]
    assert "EUR 10.00 available after earlier refunds, EUR 20.00 needed" in out["B"]["status_reason"]


# --- property-based: random refund batches -------------------------------------------------------


@st.composite
def refund_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to three orders with random plans and settings, and up to ten refunds against them."""
    orders = []
    for i in range(draw(st.integers(1, 3))):
        amount = draw(st.integers(100, 50_000))
        instalments = draw(st.sampled_from([1, 1, 2, 3, 4, 6]))
        paid_count = draw(st.integers(0, instalments)) if instalments > 1 else 0
        paid = draw(st.integers(0, 3 * amount)) if instalments == 1 else amount * paid_count // instalments
        limit_guess = 2 * amount
        orders.append(
            {
                "order_id": f"O{i}",
                "order_amount_cents": amount,
                "order_paid_cents": paid,
                "instalments": instalments,
                "instalments_paid": paid_count,
                "refundable": draw(st.booleans()) or draw(st.booleans()),
                "only_refund_paid": draw(st.booleans()),
                "prior_refunded_cents": draw(st.sampled_from([0, 0, limit_guess // 3])),
            }
        )
    rows = []
    for seq in range(draw(st.integers(1, 10))):
        target = draw(st.sampled_from(orders))
        amount = draw(st.integers(1, max(2, target["order_amount_cents"])))
        day = draw(st.integers(0, WINDOW_DAYS + 5))
        rows.append(
            candidate(
                f"R{seq}",
                amount,
                seq,
                requested_on=ORDERED_ON + timedelta(days=day),
                **target,
            )
        )
    return rows


def limit_of(row: dict[str, Any]) -> int:
    """The rule, written out: twice the order amount, or the amount paid if more; only-paid: the amount paid."""
    if row["only_refund_paid"]:
        return row["order_paid_cents"]
    return max(2 * row["order_amount_cents"], row["order_paid_cents"])


def open_instalment_cents(row: dict[str, Any]) -> int:
    """Order amount not yet covered by paid instalments (0 without a plan)."""
    n = row["instalments"]
    if n <= 1 or row["instalments_paid"] >= n:
        return 0
    return row["order_amount_cents"] - (row["order_amount_cents"] // n) * row["instalments_paid"]


@settings(max_examples=50, deadline=None)
@given(refund_batches())
def test_random_batches_respect_limits_and_split_payouts(rows: list[dict[str, Any]]) -> None:
    """For any batch: accepted refunds per order never exceed the limit, the first-come walk is followed,
    payout + cancelled instalments == amount for accepted refunds, refused ones pay nothing, nothing is
    negative, and open instalments are cancelled before anything is paid out."""
    out = decide(rows)
    assert set(out) == {r["refund_id"] for r in rows}

    running = {r["order_id"]: r["prior_refunded_cents"] for r in rows}
    cancelled = {r["order_id"]: 0 for r in rows}
    for row in sorted(rows, key=lambda r: (r["requested_on"], r["seq"])):
        got = out[row["refund_id"]]
        key = row["order_id"]
        in_window = row["requested_on"] <= row["ordered_on"] + timedelta(days=row["refund_window_days"])
        fits = running[key] + row["amount_cents"] <= limit_of(row)
        should_accept = row["refundable"] and in_window and fits
        assert (got["status"] != "rejected") == should_accept, (row, got)
        assert got["amount_cents"] == row["amount_cents"]
        assert got["payout_cents"] >= 0
        assert got["cancelled_instalments_cents"] >= 0
        if not should_accept:
            assert got["payout_cents"] == 0
            assert got["status_reason"]
            continue
        running[key] += row["amount_cents"]
        assert got["payout_cents"] + got["cancelled_instalments_cents"] == row["amount_cents"]
        cancelled[key] += got["cancelled_instalments_cents"]
        open_cents = open_instalment_cents(row)
        assert cancelled[key] <= open_cents
        if got["payout_cents"] > 0:
            assert cancelled[key] == open_cents, "paid out while instalments were still open"
        assert got["status"] == ("completed" if got["payout_cents"] == 0 else "scheduled")
    for key, total in running.items():
        limit = limit_of(next(r for r in rows if r["order_id"] == key))
        prior = next(r for r in rows if r["order_id"] == key)["prior_refunded_cents"]
        assert total <= max(limit, prior)


# Orders of the property run through intake: (amount, paid, instalments, paid instalments) -> limit, open.
INTAKE_ORDERS = {
    "O1": {"amount_cents": 4000, "paid_cents": 4000},  # limit 80.00
    "O2": {"amount_cents": 1000, "paid_cents": 2500},  # paid more than twice: limit 25.00
    "O3": {"amount_cents": 40000, "paid_cents": 20000, "instalments": 4, "instalments_paid": 2},  # open 200.00
    "O4": {"amount_cents": 10000, "paid_cents": 3333, "instalments": 3, "instalments_paid": 1},  # open 66.67
}
INTAKE_LIMITS = {"O1": 8000, "O2": 2500, "O3": 80000, "O4": 20000}
INTAKE_OPEN = {"O1": 0, "O2": 0, "O3": 20000, "O4": 6667}


def build_intake_orders(shop: Shop) -> None:
    shop.load("merchants", [merchant()])
    shop.load("orders", [order(order_id, **fields) for order_id, fields in INTAKE_ORDERS.items()])


@st.composite
def refund_files(draw: st.DrawFn) -> list[list[tuple[str, str, int]]]:
    """One or two files of one to five refunds (ref, order, amount), requested in file order."""
    files = []
    n = 0
    for _ in range(draw(st.integers(1, 2))):
        batch = []
        for _ in range(draw(st.integers(1, 5))):
            n += 1
            batch.append((f"R{n}", draw(st.sampled_from(sorted(INTAKE_ORDERS))), draw(st.integers(1, 30_000))))
        files.append(batch)
    return files


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=refund_files())
def test_random_files_through_intake_follow_the_rules(
    templates: Templates, files: list[list[tuple[str, str, int]]]
) -> None:
    """Over several files, through intake and the ledger: each refund is accepted exactly when it fits what
    is left of its order's limit, open instalments are cancelled before anything is paid, payout +
    cancelled == amount, refused refunds pay nothing, and the customers' payable equals the payouts."""
    with tempfile.TemporaryDirectory() as folder:
        shop = templates.shop("intake_orders", build_intake_orders, Path(folder))
        con = shop.con
        try:
            day = date(2024, 5, 2)
            for batch in files:
                rows = []
                for ref, order_id, amount in batch:
                    day += timedelta(days=1)
                    rows.append(refund(ref, amount, order_id, requested_on=day.isoformat()))
                shop.load("refunds", rows)

            refunded = dict.fromkeys(INTAKE_ORDERS, 0)
            cancelled = dict.fromkeys(INTAKE_ORDERS, 0)
            payouts = 0
            for ref, order_id, amount in (r for batch in files for r in batch):
                row = shop.refund(ref)
                assert row["amount_cents"] == amount
                if refunded[order_id] + amount > INTAKE_LIMITS[order_id]:
                    assert (row["status"], row["payout_cents"], row["cancelled_instalments_cents"]) == (
                        "rejected",
                        0,
                        0,
                    )
                    continue
                refunded[order_id] += amount
                cancel = min(INTAKE_OPEN[order_id] - cancelled[order_id], amount)
                cancelled[order_id] += cancel
                assert (row["cancelled_instalments_cents"], row["payout_cents"]) == (cancel, amount - cancel)
                assert row["status"] == ("completed" if amount == cancel else "scheduled")
                payouts += amount - cancel
            assert balance(con, accounts.CUSTOMER_PAYABLE) == -payouts
            assert balance(con, accounts.CUSTOMER_INSTALMENTS) == -sum(cancelled.values())
            assert ledger_total(con) == 0
        finally:
            con.close()
