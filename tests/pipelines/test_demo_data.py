"""Tests for the seeded shop-export generator in pipelines.demo_data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from schwifty import IBAN
from schwifty.exceptions import NationalChecksumNotVerified, SchwiftyException

from pipelines.demo_data import generate_shop_export

START = date(2026, 1, 1)
END = date(2026, 3, 31)
STEMS = ("merchants", "orders", "payments", "refunds", "excluded_ibans")

# The export layout as specified; written out here so a change in the generator shows up.
EXPECTED_COLUMNS = {
    "merchants": [
        "merchant_id", "name", "iban", "bic", "funding", "mandate_id", "mandate_signed_on", "waiting_days",
        "refund_window_days", "only_refund_paid", "collection", "balance_cents", "pay_on_release",
    ],
    "orders": [
        "order_id", "merchant_id", "customer_name", "customer_email", "customer_iban", "amount_cents",
        "paid_cents", "ordered_on", "instalments", "instalments_paid", "refundable",
    ],
    "payments": ["payment_id", "merchant_id", "payer_name", "payer_iban", "amount_cents", "received_on"],
    "refunds": [
        "refund_ref", "merchant_id", "order_id", "payment_id", "amount_cents", "requested_on", "reason",
    ],
    "excluded_ibans": ["iban", "owner", "kind"],
}  # fmt: skip

PLANTED = (
    "short_balance",
    "unknown_iban",
    "invalid_iban",
    "excluded_iban",
    "merchant_own_iban",
    "instalment_orders",
    "partially_paid",
    "unpaid",
    "overpaid",
    "not_refundable_orders",
    "apostrophe_names",
    "unknown_payer_iban",
    "invalid_payer_iban",
    "excluded_payer_iban",
    "full_refunds",
    "partial_refunds",
    "multi_partial_within",
    "multi_partial_exceeding",
    "over_limit",
    "instalment_refunds",
    "seed_case",
    "overpayment_refunds",
    "payment_refunds",
    "payment_over_amount",
    "late_refunds",
    "non_refundable",
    "duplicate_refs",
    "unknown_merchant",
    "unknown_order",
)

SMALL = {"merchants": 12, "orders": 600, "start": START, "end": END}


@pytest.fixture(scope="module")
def default_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], float]:
    out = tmp_path_factory.mktemp("default_export")
    began = time.perf_counter()
    counts = generate_shop_export(out, start=START, end=END)
    return out, counts, time.perf_counter() - began


def _read(out: Path, stem: str) -> pl.DataFrame:
    # Everything as text: the test looks at what the file says, not at what polars would infer.
    return pl.read_csv(out / f"{stem}.csv", infer_schema=False)


def _int(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Int64)


def _day(column: str) -> pl.Expr:
    return pl.col(column).str.to_date("%Y-%m-%d")


def _file_bytes(out: Path) -> dict[str, bytes]:
    return {stem: (out / f"{stem}.csv").read_bytes() for stem in STEMS}


# -- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = generate_shop_export(tmp_path / "a", seed=11, **SMALL)
    second = generate_shop_export(tmp_path / "b", seed=11, **SMALL)
    assert first == second
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")


def test_different_seed_gives_different_content(tmp_path: Path) -> None:
    generate_shop_export(tmp_path / "a", seed=11, **SMALL)
    generate_shop_export(tmp_path / "b", seed=12, **SMALL)
    a, b = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    for stem in STEMS:
        assert a[stem] != b[stem], stem


def test_bytes_do_not_depend_on_the_process(tmp_path: Path) -> None:
    # Another interpreter with another hash seed: catches set/dict-order or global-state leaks.
    args = {"merchants": 3, "orders": 120, "start": START, "end": END, "seed": 3}
    generate_shop_export(tmp_path / "here", **args)
    script = (
        "import sys; from datetime import date; from pathlib import Path; "
        "from pipelines.demo_data import generate_shop_export; "
        "generate_shop_export(Path(sys.argv[1]), merchants=3, orders=120, "
        f"start=date.fromisoformat('{START}'), end=date.fromisoformat('{END}'), seed=3)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "there")], check=True, env=env)
    assert _file_bytes(tmp_path / "here") == _file_bytes(tmp_path / "there")


def test_rejects_an_inverted_period(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_shop_export(tmp_path, merchants=2, orders=10, start=END, end=START)


# -- shape -----------------------------------------------------------------------------------------


def test_default_size_is_fast(default_export: tuple[Path, dict[str, int], float]) -> None:
    _, _, seconds = default_export
    assert seconds < 10


def test_columns_and_row_counts(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, counts, _ = default_export
    for stem in STEMS:
        frame = _read(out, stem)
        assert frame.columns == EXPECTED_COLUMNS[stem], stem
        assert counts[stem] == frame.height, stem
    assert counts["merchants"] == 200
    assert counts["orders"] == 20_000
    orders = _read(out, "orders")
    assert orders["order_id"].n_unique() == orders.height
    assert _read(out, "merchants")["merchant_id"].n_unique() == 200
    assert 100 <= counts["payments"] <= 1_000
    # Roughly one refund per 3-4 orders.
    assert 20_000 / 4.5 <= counts["refunds"] <= 20_000 / 2.5


def test_merchants_look_like_the_spec(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, _, _ = default_export
    merchants = _read(out, "merchants")
    assert set(merchants["funding"]) == {"own_account", "integrated"}
    assert set(merchants["only_refund_paid"]) == {"true", "false"}
    assert set(merchants["collection"]) == {"weekly", "twice_weekly", "per_refund"}
    assert set(merchants["waiting_days"]) == {"3", "7", "14"}
    assert set(merchants["refund_window_days"]) == {"30", "56", "90"}
    own = merchants.filter(pl.col("funding") == "own_account")
    assert (own["mandate_id"] == "MNDT-" + own["merchant_id"]).all()
    assert (own.select(_day("mandate_signed_on") < START).to_series()).all()
    assert own["balance_cents"].fill_null("0").eq("0").all()
    names = merchants["name"].to_list()
    assert "Jörg Österle & Söhne GmbH" in names
    assert any("&" in n for n in names)
    assert any("'" in n for n in names)


def test_names_carry_non_ascii_letters(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, _, _ = default_export
    customers = _read(out, "orders")["customer_name"].to_list()
    assert any(not n.isascii() for n in customers)
    assert any(not n.isascii() for n in _read(out, "merchants")["name"].to_list())
    assert any("O'" in n or "D'" in n for n in customers)


def test_money_is_integer_cents(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, _, _ = default_export
    orders = _read(out, "orders")
    for column in ("amount_cents", "paid_cents"):
        assert orders[column].str.contains(r"^\d+$").all(), column
    amounts = orders.select(_int("amount_cents")).to_series()
    assert amounts.min() >= 500
    assert amounts.max() <= 50_000
    assert _read(out, "refunds")["amount_cents"].str.contains(r"^\d+$").all()
    assert _read(out, "merchants")["balance_cents"].drop_nulls().str.contains(r"^\d+$").all()


def test_instalments_add_up(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, _, _ = default_export
    orders = _read(out, "orders").select(
        _int("amount_cents"), _int("paid_cents"), _int("instalments"), _int("instalments_paid")
    )
    plans = orders.filter(pl.col("instalments") > 1)
    assert set(plans["instalments"]) == {3, 4}
    expected = (
        pl.when(pl.col("instalments_paid") >= pl.col("instalments"))
        .then(pl.col("amount_cents"))
        .otherwise(pl.col("amount_cents") // pl.col("instalments") * pl.col("instalments_paid"))
    )
    assert (plans["paid_cents"] == plans.select(expected).to_series()).all()
    assert (plans["instalments_paid"] >= 1).all()


# -- IBANs -----------------------------------------------------------------------------------------


def _is_valid(iban: str) -> bool:
    try:
        with warnings.catch_warnings():
            # Countries without a national check-digit algorithm in schwifty (SE) only warn.
            warnings.simplefilter("ignore", NationalChecksumNotVerified)
            IBAN(iban, validate_bban=True)
    except SchwiftyException:
        return False
    return True


def test_ibans_validate_except_the_planted_invalid_ones(
    default_export: tuple[Path, dict[str, int], float],
) -> None:
    out, counts, _ = default_export
    orders, payments = _read(out, "orders"), _read(out, "payments")
    always_valid = [*_read(out, "merchants")["iban"], *_read(out, "excluded_ibans")["iban"]]
    assert all(_is_valid(iban) for iban in always_valid)

    order_ibans = orders["customer_iban"].drop_nulls().to_list()
    payer_ibans = payments["payer_iban"].drop_nulls().to_list()
    verdict = {iban: _is_valid(iban) for iban in sorted({*order_ibans, *payer_ibans})}
    assert sum(not verdict[i] for i in order_ibans) == counts["invalid_iban"]
    assert sum(not verdict[i] for i in payer_ibans) == counts["invalid_payer_iban"]
    for iban in (i for i, ok in verdict.items() if not ok):
        # Planted as wrong check digits only: recomputing them gives a valid IBAN.
        repaired = IBAN.from_bban(iban[:2], iban[4:])
        assert str(repaired) != iban
        assert _is_valid(str(repaired))


def test_iban_oddities_match_the_counts(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, counts, _ = default_export
    orders = _read(out, "orders")
    merchants = _read(out, "merchants")
    carriers = _read(out, "excluded_ibans").filter(pl.col("kind") == "carrier")["iban"]
    assert orders["customer_iban"].null_count() == counts["unknown_iban"]
    assert orders["customer_iban"].is_in(carriers.implode()).sum() == counts["excluded_iban"]
    own = orders.join(merchants.select("merchant_id", "iban"), on="merchant_id")
    assert (own["customer_iban"] == own["iban"]).sum() == counts["merchant_own_iban"]
    payments = _read(out, "payments")
    assert payments["payer_iban"].null_count() == counts["unknown_payer_iban"]
    assert payments["payer_iban"].is_in(carriers.implode()).sum() == counts["excluded_payer_iban"]


# -- refunds ---------------------------------------------------------------------------------------


def test_seed_instalment_case_is_there(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, counts, _ = default_export
    orders = _read(out, "orders").filter(
        (pl.col("amount_cents") == "40000")
        & (pl.col("instalments") == "4")
        & (pl.col("instalments_paid") == "2")
        & (pl.col("paid_cents") == "20000")
    )
    assert orders.height == 1 == counts["seed_case"]
    refunds = _read(out, "refunds").filter(pl.col("order_id") == orders["order_id"][0])
    assert refunds["amount_cents"].to_list() == ["25000"]
    assert refunds["merchant_id"].to_list() == orders["merchant_id"].to_list()


def test_request_dates(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, _, _ = default_export
    refunds = _read(out, "refunds")
    days = refunds.select(_day("requested_on")).to_series()
    assert days.min() >= START
    assert days.max() <= END
    # Exactly one of order and payment per row.
    assert (refunds["order_id"].is_null() ^ refunds["payment_id"].is_null()).all()
    on_orders = refunds.join(_read(out, "orders").select("order_id", "ordered_on"), on="order_id")
    assert on_orders.filter(_day("requested_on") < _day("ordered_on")).is_empty()
    on_payments = refunds.join(_read(out, "payments").select("payment_id", "received_on"), on="payment_id")
    assert on_payments.height == refunds["payment_id"].drop_nulls().len()
    assert on_payments.filter(_day("requested_on") < _day("received_on")).is_empty()


@pytest.mark.parametrize("case", PLANTED)
def test_planted_case_is_there(default_export: tuple[Path, dict[str, int], float], case: str) -> None:
    _, counts, _ = default_export
    assert counts[case] > 0


def test_planted_counts_match_the_files(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, counts, _ = default_export
    merchants = _read(out, "merchants")
    orders = _read(out, "orders")
    refunds = _read(out, "refunds")

    assert refunds.height - refunds.unique(["merchant_id", "refund_ref"]).height == counts["duplicate_refs"]
    # Duplicates repeat the whole row, not just the reference.
    assert refunds.height - refunds.unique().height == counts["duplicate_refs"]
    assert refunds.join(merchants, on="merchant_id", how="anti").height == counts["unknown_merchant"]
    against_orders = refunds.filter(pl.col("order_id").is_not_null())
    assert against_orders.join(orders, on="order_id", how="anti").height == counts["unknown_order"]

    amounts = orders.select(_int("amount_cents"), _int("paid_cents"), _int("instalments"), pl.col("refundable"))
    assert (amounts["instalments"] > 1).sum() == counts["instalment_orders"]
    single = amounts.filter(pl.col("instalments") == 1)
    assert single.filter(pl.col("paid_cents") == 0).height == counts["unpaid"]
    paid_part = (pl.col("paid_cents") > 0) & (pl.col("paid_cents") < pl.col("amount_cents"))
    assert single.filter(paid_part).height == counts["partially_paid"]
    assert single.filter(pl.col("paid_cents") > 2 * pl.col("amount_cents")).height == counts["overpaid"]
    assert (amounts["refundable"] == "false").sum() == counts["not_refundable_orders"]

    # Refund rows of known merchants on known orders, each request once.
    known = (
        refunds.unique(maintain_order=True)
        .join(merchants.select("merchant_id", _int("refund_window_days")), on="merchant_id")
        .join(
            orders.select(
                "order_id",
                _int("amount_cents").alias("order_cents"),
                _int("instalments"),
                "refundable",
                "ordered_on",
            ),
            on="order_id",
        )
        .with_columns(_int("amount_cents"))
    )
    window_end = _day("ordered_on") + pl.duration(days=pl.col("refund_window_days"))
    assert known.filter(_day("requested_on") > window_end).height == counts["late_refunds"]
    assert known.filter(pl.col("amount_cents") > 2 * pl.col("order_cents")).height == counts["over_limit"]
    assert known.filter(pl.col("refundable") == "false").height == counts["non_refundable"]
    assert known.filter(pl.col("instalments") > 1).height == counts["instalment_refunds"]

    per_order = (
        known.group_by("order_id")
        .agg(
            pl.len().alias("n"),
            pl.col("amount_cents").sum().alias("total"),
            pl.col("amount_cents").max().alias("largest"),
            pl.col("order_cents").first(),
        )
        .filter(pl.col("n") > 1)
    )
    within = per_order.filter(pl.col("total") <= pl.col("order_cents"))
    exceeding = per_order.filter(
        (pl.col("total") > 2 * pl.col("order_cents")) & (pl.col("largest") < pl.col("order_cents"))
    )
    assert within.height == counts["multi_partial_within"]
    assert exceeding.height == counts["multi_partial_exceeding"]
    assert per_order.height == within.height + exceeding.height

    payments = _read(out, "payments").select("payment_id", _int("amount_cents").alias("paid"))
    on_payments = refunds.unique().join(payments, on="payment_id").with_columns(_int("amount_cents"))
    assert on_payments.height == counts["payment_refunds"]
    assert on_payments.filter(pl.col("amount_cents") > pl.col("paid")).height == counts["payment_over_amount"]


def test_short_integrated_merchants(default_export: tuple[Path, dict[str, int], float]) -> None:
    out, counts, _ = default_export
    requested = _read(out, "refunds").group_by("merchant_id").agg(_int("amount_cents").sum().alias("requested"))
    integrated = (
        _read(out, "merchants")
        .filter(pl.col("funding") == "integrated")
        .join(requested, on="merchant_id", how="left")
        .with_columns(_int("balance_cents"), pl.col("requested").fill_null(0))
    )
    assert integrated["balance_cents"].null_count() == 0
    short = integrated.filter(pl.col("balance_cents") * 5 < pl.col("requested"))
    assert short.height == counts["short_balance"]
