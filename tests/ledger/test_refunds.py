"""What happens to recorded refunds: the waiting period, waiting for bank details, new bank details from
the customer, integrated merchants' balances (blocking first come, first served), and the queries."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import polars as pl
import pytest

from ledger import accounts
from ledger.intake import refund_id_for
from ledger.lifecycle import change_status
from ledger.postings import balance, ledger_total, unbalanced_transfers
from ledger.refunds import (
    BankDetailsRefused,
    RefundNotFound,
    find_refund,
    list_refunds,
    make_refunds_due,
    refund_history,
    set_manual_status,
    update_bank_details,
)
from sepa.iban import iban_problem
from tests.ledger.shop import (
    IBAN_BAD_CHECK,
    IBAN_CARRIER,
    IBAN_CUSTOMER,
    IBAN_CUSTOMER_2,
    IBAN_INTEGRATED,
    IBAN_MERCHANT,
    Shop,
    integrated,
    merchant,
    order,
    postings_snapshot,
    refund,
    table_counts,
)

ShopFrom = Callable[[str, Callable[[Shop], None]], Shop]

# --- waiting period ------------------------------------------------------------------------------


def build_waiting(shop: Shop) -> None:
    """M1 waits 7 days, M3 waits 3; refunds requested on 10 and 11 May."""
    shop.load("merchants", [merchant("M1"), merchant("M3", waiting_days=3)])
    shop.load("orders", [order("O1"), order("O2"), order("O3", merchant_id="M3"), order("O4", customer_iban="")])
    shop.load(
        "refunds",
        [
            refund("R1", 1000, "O1", requested_on="2024-05-10"),
            refund("R2", 1000, "O2", requested_on="2024-05-11"),
            refund("R3", 1000, "O3", merchant_id="M3", requested_on="2024-05-10"),
            refund("R4", 1000, "O4", requested_on="2024-05-01"),  # no IBAN: waits for bank details
            refund("R5", 99999, "O1", requested_on="2024-05-01"),  # rejected
        ],
    )


@pytest.fixture
def waiting(shop_from: ShopFrom) -> Shop:
    return shop_from("waiting", build_waiting)


def test_due_on_is_requested_on_plus_the_merchants_waiting_days(waiting: Shop) -> None:
    """7 days for M1, 3 days for M3."""
    assert waiting.refund("R1")["due_on"] == date(2024, 5, 17)
    assert waiting.refund("R2")["due_on"] == date(2024, 5, 18)
    assert waiting.refund("R3", "M3")["due_on"] == date(2024, 5, 13)
    assert waiting.refund("R1")["status"] == "scheduled"
    assert waiting.notifications("R1") == ["refund_scheduled"]


def test_nothing_is_due_the_day_before(waiting: Shop) -> None:
    """On 12 May no waiting period has ended yet."""
    assert make_refunds_due(waiting.con, date(2024, 5, 12)) == {"unblocked": 0, "reopened": 0, "due": 0}
    assert waiting.refund("R3", "M3")["status"] == "scheduled"


def test_nightly_run_makes_due_exactly_those_whose_waiting_period_ended(waiting: Shop) -> None:
    """On 17 May: R1 (due 17th) and R3 (due 13th) become due, R2 (due 18th) waits; the day after, R2.
    Refunds waiting for bank details or rejected never become due by the calendar."""
    assert make_refunds_due(waiting.con, date(2024, 5, 17))["due"] == 2
    statuses = {r: waiting.refund(r, m)["status"] for r, m in [("R1", "M1"), ("R2", "M1"), ("R3", "M3")]}
    assert statuses == {"R1": "due", "R2": "scheduled", "R3": "due"}
    assert make_refunds_due(waiting.con, date(2024, 5, 17))["due"] == 0  # running again changes nothing
    assert make_refunds_due(waiting.con, date(2024, 5, 18), actor="ops:bob")["due"] == 1
    assert waiting.refund("R2")["status"] == "due"
    assert waiting.refund("R4")["status"] == "awaiting_bank_details"
    assert waiting.refund("R5")["status"] == "rejected"


def test_making_due_is_audited(waiting: Shop) -> None:
    """Each refund made due gets an event scheduled -> due with the actor and the day its wait ended."""
    make_refunds_due(waiting.con, date(2024, 5, 17))
    make_refunds_due(waiting.con, date(2024, 5, 30), actor="ops:bob")
    assert waiting.events("R1").rows() == [
        (None, "scheduled", "intake", ""),
        ("scheduled", "due", "nightly schedule", "waiting period ended on 2024-05-17"),
    ]
    assert waiting.events("R2").rows()[-1] == ("scheduled", "due", "ops:bob", "waiting period ended on 2024-05-18")
    assert waiting.events("R4").height == 1


def test_making_due_moves_no_money(waiting: Shop) -> None:
    """The refund was booked when accepted; becoming due books nothing more."""
    before = postings_snapshot(waiting.con)
    make_refunds_due(waiting.con, date(2024, 6, 30))
    assert postings_snapshot(waiting.con) == before


# --- waiting for bank details --------------------------------------------------------------------


def build_bank_details(shop: Shop) -> None:
    """One refund per reason to wait for bank details, and one with a good IBAN."""
    shop.load("merchants", [merchant()])
    shop.load("excluded_ibans", [{"iban": IBAN_CARRIER, "owner": "DHL Nachnahme", "kind": "carrier"}])
    shop.load(
        "orders",
        [
            order("O-NONE", customer_iban=""),
            order("O-BAD", customer_iban=IBAN_BAD_CHECK),
            order("O-MERCHANT", customer_iban=IBAN_MERCHANT),
            order("O-CARRIER", customer_iban=IBAN_CARRIER),
            order("O-GOOD", customer_iban=IBAN_CUSTOMER),
        ],
    )
    shop.load(
        "refunds",
        [
            refund("R-NONE", 1000, "O-NONE"),
            refund("R-BAD", 1000, "O-BAD"),
            refund("R-MERCHANT", 1000, "O-MERCHANT"),
            refund("R-CARRIER", 1000, "O-CARRIER"),
            refund("R-GOOD", 1000, "O-GOOD"),
        ],
    )


@pytest.fixture
def bank(shop_from: ShopFrom) -> Shop:
    return shop_from("bank_details", build_bank_details)


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("R-NONE", "no IBAN known for the customer"),
        ("R-BAD", "invalid IBAN DE02 **** 2052"),
        ("R-MERCHANT", "the customer's IBAN on record is the merchant's own account"),
        ("R-CARRIER", "belongs to DHL Nachnahme (carrier), not to the customer"),
    ],
)
def test_refunds_without_a_usable_iban_wait_for_bank_details(bank: Shop, ref: str, why: str) -> None:
    """No IBAN, a wrong one, the merchant's own or a carrier's: the customer is asked for bank details."""
    row = bank.refund(ref)
    assert row["status"] == "awaiting_bank_details"
    assert why in row["status_reason"]
    assert bank.notifications(ref) == ["bank_details_needed"]
    assert row["payout_cents"] == 1000  # the amount is kept; only the account is missing


def test_a_usable_iban_is_scheduled(bank: Shop) -> None:
    """The control case: a valid customer IBAN of the customer's own is scheduled."""
    assert bank.refund("R-GOOD")["status"] == "scheduled"
    assert bank.notifications("R-GOOD") == ["refund_scheduled"]


def test_confirmed_new_iban_makes_the_refund_due_at_once(bank: Shop) -> None:
    """A valid new IBAN, confirmed: IBAN replaced, status due, due today, audited (the change and the move)."""
    after = update_bank_details(
        bank.con,
        "R-NONE",
        iban=IBAN_CUSTOMER_2,
        iban_problem=iban_problem(IBAN_CUSTOMER_2),
        confirm=True,
        today=date(2024, 5, 12),
        actor="customer",
        change_note="IBAN changed from none to FR76 **** 0189",
    )
    assert (after["status"], after["due_on"], after["customer_iban"]) == ("due", date(2024, 5, 12), IBAN_CUSTOMER_2)
    assert after["iban_confirmed"] is True
    assert bank.events("R-NONE").rows()[1:] == [
        ("awaiting_bank_details", "awaiting_bank_details", "customer", "IBAN changed from none to FR76 **** 0189"),
        ("awaiting_bank_details", "due", "customer", "customer confirmed the IBAN"),
    ]


def test_new_iban_without_confirmation_goes_back_to_waiting(bank: Shop) -> None:
    """Without confirmation a new IBAN puts the refund back into its waiting period (due_on unchanged)."""
    before = bank.refund("R-BAD")
    after = update_bank_details(
        bank.con, "R-BAD", iban=IBAN_CUSTOMER, iban_problem=None, confirm=False, today=date(2024, 5, 12), actor="c"
    )
    assert (after["status"], after["customer_iban"], after["due_on"]) == ("scheduled", IBAN_CUSTOMER, before["due_on"])
    assert after["iban_confirmed"] is False


def test_confirming_a_scheduled_refund_makes_it_due_today(bank: Shop) -> None:
    """The customer confirms the IBAN on record: due at once instead of after the waiting period."""
    after = update_bank_details(
        bank.con, "R-GOOD", iban=None, iban_problem=None, confirm=True, today=date(2024, 5, 11), actor="customer"
    )
    assert (after["status"], after["due_on"], after["customer_iban"]) == ("due", date(2024, 5, 11), IBAN_CUSTOMER)


@pytest.mark.parametrize(
    ("iban", "verdict", "message"),
    [
        (IBAN_MERCHANT, None, "merchant's own account"),
        (IBAN_CARRIER, None, "belongs to DHL Nachnahme (carrier)"),
        (IBAN_BAD_CHECK, iban_problem(IBAN_BAD_CHECK), "invalid IBAN"),
    ],
    ids=["merchants-own", "carrier", "bad-check-digits"],
)
def test_refused_new_iban_changes_nothing(bank: Shop, iban: str, verdict: str | None, message: str) -> None:
    """The merchant's own IBAN, a carrier's, or an invalid one is refused; refund and audit trail unchanged."""
    before = bank.refund("R-NONE")
    counts = table_counts(bank.con)
    with pytest.raises(BankDetailsRefused, match=re.escape(message)):
        update_bank_details(
            bank.con, "R-NONE", iban=iban, iban_problem=verdict, confirm=True, today=date(2024, 5, 12), actor="c"
        )
    assert bank.refund("R-NONE") == before
    assert table_counts(bank.con) == counts


def test_confirming_without_any_iban_is_refused(bank: Shop) -> None:
    """There is nothing to confirm when no IBAN is known."""
    with pytest.raises(BankDetailsRefused, match="no IBAN to confirm"):
        update_bank_details(
            bank.con, "R-NONE", iban=None, iban_problem=None, confirm=True, today=date(2024, 5, 12), actor="c"
        )


def test_bank_details_cannot_change_once_money_is_in_flight(bank: Shop) -> None:
    """A refund in a payment file keeps its IBAN."""
    make_refunds_due(bank.con, date(2024, 5, 17))
    change_status(
        bank.con,
        pl.DataFrame({"refund_id": [refund_id_for("M1", "R-GOOD")], "to_status": ["in_file"], "reason": ["file 1"]}),
        actor="weekly schedule",
    )
    assert bank.refund("R-GOOD")["status"] == "in_file"
    with pytest.raises(BankDetailsRefused, match="in_file"):
        update_bank_details(
            bank.con,
            "R-GOOD",
            iban=IBAN_CUSTOMER_2,
            iban_problem=None,
            confirm=True,
            today=date(2024, 5, 18),
            actor="c",
        )
    assert bank.refund("R-GOOD")["customer_iban"] == IBAN_CUSTOMER


def test_reopened_refund_with_the_merchants_iban_waits_for_bank_details_again(bank: Shop) -> None:
    """A refund waiting because its IBAN is the merchant's own, set to open by finance ops, must go back
    to waiting for bank details on the nightly run, not become due to be paid to the merchant's account."""
    set_manual_status(bank.con, "R-MERCHANT", "open", actor="ops:alice", reason="look again")
    make_refunds_due(bank.con, date(2024, 6, 1))
    row = bank.refund("R-MERCHANT")
    assert row["customer_iban"] == IBAN_MERCHANT
    assert row["status"] == "awaiting_bank_details"


# --- integrated merchants: paid from the balance, blocked first come first served --------------


def build_integrated(shop: Shop) -> None:
    """M2 (integrated) declares EUR 100.00; R1 (150) and R2 (50) in one file both wait, oldest first."""
    shop.load("merchants", [integrated("M2", balance_cents=10_000)])
    shop.load(
        "orders",
        [
            order("O1", merchant_id="M2", amount_cents=20000, paid_cents=20000),
            order("O2", merchant_id="M2", amount_cents=20000, paid_cents=20000),
            order("O3", merchant_id="M2", amount_cents=20000, paid_cents=20000),
        ],
    )
    shop.load(
        "refunds",
        [
            refund("R1", 15000, "O1", merchant_id="M2", requested_on="2024-05-10"),
            refund("R2", 5000, "O2", merchant_id="M2", requested_on="2024-05-11"),
        ],
    )


@pytest.fixture
def balance_books(shop_from: ShopFrom) -> Shop:
    return shop_from("integrated", build_integrated)


def raise_balance(shop: Shop, balance_cents: int) -> None:
    """A new merchants export declaring a new balance."""
    shop.load("merchants", [integrated("M2", balance_cents=balance_cents)])


def test_declared_balance_is_booked(balance_books: Shop) -> None:
    """The merchants file's balance_cents is the merchant's money held by the platform (credit-normal)."""
    assert balance(balance_books.con, accounts.merchant_balance("M2")) == -10_000
    assert balance(balance_books.con, accounts.PLATFORM_BANK) == 10_000


def test_refund_the_balance_does_not_cover_is_blocked_and_later_ones_wait(balance_books: Shop) -> None:
    """R1 (150 of 100) is blocked with a balance_insufficient notice; R2 (50) would fit but waits behind it."""
    first, second = balance_books.refund("R1", "M2"), balance_books.refund("R2", "M2")
    assert (first["status"], first["payout_cents"]) == ("blocked", 15000)
    assert "EUR 100.00 available" in first["status_reason"]
    assert second["status"] == "blocked"
    assert balance_books.notifications("R1", "M2") == ["balance_insufficient"]
    assert balance_books.notifications("R2", "M2") == ["balance_insufficient"]
    # Nothing is booked for blocked refunds.
    assert balance(balance_books.con, accounts.merchant_balance("M2")) == -10_000
    assert balance(balance_books.con, accounts.CUSTOMER_PAYABLE) == 0


def test_same_balance_in_a_new_export_books_nothing(balance_books: Shop) -> None:
    """A new merchants file with an unchanged balance (other name) adds no transfer."""
    before = postings_snapshot(balance_books.con)
    balance_books.load("merchants", [integrated("M2", balance_cents=10_000, name="Renamed Shop")])
    assert postings_snapshot(balance_books.con) == before


def test_higher_balance_unblocks_oldest_first_and_books(balance_books: Shop) -> None:
    """Balance raised to 150: R1 (oldest, 150) is unblocked and booked; R2 still waits even though 50 < 150."""
    raise_balance(balance_books, 15_000)
    assert balance(balance_books.con, accounts.merchant_balance("M2")) == -15_000
    counts = make_refunds_due(balance_books.con, date(2024, 5, 12))
    assert counts["unblocked"] == 1
    assert balance_books.refund("R1", "M2")["status"] == "scheduled"
    assert balance_books.refund("R2", "M2")["status"] == "blocked"
    assert balance(balance_books.con, accounts.merchant_balance("M2")) == 0
    assert balance(balance_books.con, accounts.CUSTOMER_PAYABLE) == -15_000
    assert balance_books.events("R1", "M2").rows()[-1] == (
        "blocked",
        "scheduled",
        "nightly schedule",
        "merchant balance now covers it",
    )


def test_enough_balance_unblocks_all_and_makes_them_due(balance_books: Shop) -> None:
    """Balance raised to 300: both unblocked and, their waiting period over, due in the same run."""
    raise_balance(balance_books, 30_000)
    assert make_refunds_due(balance_books.con, date(2024, 5, 31)) == {"unblocked": 2, "reopened": 0, "due": 2}
    assert [balance_books.refund(r, "M2")["status"] for r in ("R1", "R2")] == ["due", "due"]
    assert balance(balance_books.con, accounts.merchant_balance("M2")) == -10_000
    assert balance(balance_books.con, accounts.CUSTOMER_PAYABLE) == -20_000
    assert ledger_total(balance_books.con) == 0
    assert unbalanced_transfers(balance_books.con).is_empty()
    make_refunds_due(balance_books.con, date(2024, 6, 1))  # nothing is booked twice
    assert balance(balance_books.con, accounts.CUSTOMER_PAYABLE) == -20_000


def test_a_later_file_does_not_overtake_a_blocked_refund(balance_books: Shop) -> None:
    """First come, first served across files: while R1 (150) is blocked, a later R3 (50) that the
    balance (100) would cover must wait behind it too, not be scheduled and booked ahead of it."""
    balance_books.load("refunds", [refund("R3", 5000, "O3", merchant_id="M2", requested_on="2024-05-12")])
    assert balance_books.refund("R3", "M2")["status"] == "blocked"
    assert balance(balance_books.con, accounts.merchant_balance("M2")) == -10_000


def test_unblocked_refund_with_the_merchants_iban_waits_for_bank_details(balance_books: Shop) -> None:
    """A blocked refund whose customer IBAN is the merchant's own account must, once the balance covers
    it, wait for bank details: not become scheduled and then due for payment to that account."""
    balance_books.load(
        "orders", [order("O8", merchant_id="M2", amount_cents=20000, paid_cents=20000, customer_iban=IBAN_INTEGRATED)]
    )
    balance_books.load("refunds", [refund("R8", 20000, "O8", merchant_id="M2", requested_on="2024-05-13")])
    assert balance_books.refund("R8", "M2")["status"] == "blocked"  # 200 > 100 available
    raise_balance(balance_books, 100_000)
    make_refunds_due(balance_books.con, date(2024, 6, 1))
    row = balance_books.refund("R8", "M2")
    assert row["customer_iban"] == IBAN_INTEGRATED
    assert row["status"] == "awaiting_bank_details"


def test_unblocked_refund_without_iban_waits_for_bank_details(balance_books: Shop) -> None:
    """A blocked refund with no IBAN goes to waiting for bank details once the balance covers it."""
    balance_books.load(
        "orders", [order("O7", merchant_id="M2", amount_cents=20000, paid_cents=20000, customer_iban="")]
    )
    balance_books.load("refunds", [refund("R7", 15000, "O7", merchant_id="M2", requested_on="2024-05-13")])
    assert balance_books.refund("R7", "M2")["status"] == "blocked"
    raise_balance(balance_books, 100_000)
    make_refunds_due(balance_books.con, date(2024, 6, 1))
    assert balance_books.refund("R7", "M2")["status"] == "awaiting_bank_details"
    assert balance_books.refund("R1", "M2")["status"] == "due"


# --- queries -------------------------------------------------------------------------------------


def test_list_refunds_filters_by_status_and_merchant(waiting: Shop) -> None:
    """list_refunds answers by status and merchant, oldest request first; an unknown status is an error."""
    scheduled = list_refunds(waiting.con, status="scheduled")
    assert scheduled["refund_ref"].to_list() == ["R1", "R3", "R2"]
    assert list_refunds(waiting.con, merchant_id="M3")["refund_ref"].to_list() == ["R3"]
    rejected = list_refunds(waiting.con, status="rejected")
    assert rejected.select("refund_ref", "amount_cents", "payout_cents").rows() == [("R5", 99999, 0)]
    assert list_refunds(waiting.con).height == 5
    with pytest.raises(ValueError):
        list_refunds(waiting.con, status="paid")


def test_find_refund_by_reference_or_id_and_shared_references(shop: Shop) -> None:
    """A reference two merchants use needs the merchant; an unknown one is not found."""
    shop.load("merchants", [merchant("M1"), merchant("M3")])
    shop.load("orders", [order("O1"), order("O3", merchant_id="M3")])
    shop.load("refunds", [refund("SAME", 100, "O1"), refund("SAME", 200, "O3", merchant_id="M3")])
    with pytest.raises(RefundNotFound, match="several merchants"):
        find_refund(shop.con, "SAME")
    assert find_refund(shop.con, "SAME", "M3")["amount_cents"] == 200
    rid = find_refund(shop.con, "SAME", "M1")["refund_id"]
    assert find_refund(shop.con, rid)["amount_cents"] == 100
    with pytest.raises(RefundNotFound):
        find_refund(shop.con, "NOPE")


def test_refund_history_lists_events_oldest_first(waiting: Shop) -> None:
    """The audit trail of one refund, from intake to due."""
    make_refunds_due(waiting.con, date(2024, 5, 17))
    history = refund_history(waiting.con, "R1")
    assert history.select("from_status", "to_status").rows() == [(None, "scheduled"), ("scheduled", "due")]
    assert (history["refund_ref"] == "R1").all()
    assert history["at"].is_sorted()


def test_statuses_and_books_agree_after_a_mixed_run(waiting: Shop) -> None:
    """Accepted refunds are owed to customers in the ledger; rejected ones are not."""
    owed = waiting.con.execute(
        "SELECT CAST(SUM(payout_cents) AS BIGINT) FROM refunds WHERE status <> 'rejected'"
    ).fetchone()[0]
    assert balance(waiting.con, accounts.CUSTOMER_PAYABLE) == -owed
    assert owed == 4000
    statuses = list_refunds(waiting.con).group_by("status").len().sort("status")
    assert statuses.rows() == [("awaiting_bank_details", 1), ("rejected", 1), ("scheduled", 3)]
