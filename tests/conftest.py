"""Shared fixtures: a temporary installation and small shop exports written as CSV."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.settings import Home

MERCHANT_COLUMNS = [
    "merchant_id", "name", "iban", "bic", "funding", "mandate_id", "mandate_signed_on", "waiting_days",
    "refund_window_days", "only_refund_paid", "collection", "balance_cents",
]  # fmt: skip


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """An empty installation in a temporary folder, named by $PAYOUTS_HOME."""
    root = tmp_path / "home"
    monkeypatch.setenv("PAYOUTS_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    return Home(root).prepare()


def write_csv(folder: Path, name: str, rows: list[dict]) -> Path:
    """Write rows as a shop export CSV (all values as text, empty for None)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame = pl.DataFrame([{k: ("" if v is None else str(v)) for k, v in row.items()} for row in rows])
    frame.write_csv(path)
    return path


def corpus_dir() -> Path:
    """The shared corpus of real bank files ($PAYOUTS_CORPUS, default ../shared/corpus)."""
    return Path(os.environ.get("PAYOUTS_CORPUS", Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"))


def small_export(folder: Path) -> Path:
    """A shop export with one of each interesting case; returns the folder.

    M1 own account (waiting 7 days), M2 integrated with EUR 300.00 on balance.
    R1: the seed's instalment case (400 EUR in 4, 2 paid, refund 250 -> 50 EUR paid out).
    R2: no IBAN known. R3: more than M2's balance. R4: over twice the order amount.
    Line 6 repeats R1 (duplicate), line 7 names an unknown merchant, line 8 has a non-numeric amount.
    """
    write_csv(folder, "merchants.csv", [
        {"merchant_id": "M1", "name": "Jörg Österle & Söhne", "iban": "DE89370400440532013000", "bic": "",
         "funding": "own_account", "mandate_id": "MNDT-1", "mandate_signed_on": "2023-01-01", "waiting_days": 7,
         "refund_window_days": 56, "only_refund_paid": "false", "collection": "weekly", "balance_cents": ""},
        {"merchant_id": "M2", "name": "Café Élise", "iban": "FR7630006000011234567890189", "bic": "",
         "funding": "integrated", "mandate_id": "", "mandate_signed_on": "", "waiting_days": 7,
         "refund_window_days": 56, "only_refund_paid": "false", "collection": "weekly", "balance_cents": 30000},
    ])  # fmt: skip
    order = {"customer_email": "x@example.org", "instalments": 1, "instalments_paid": 1, "refundable": "true",
             "ordered_on": "2024-05-01"}  # fmt: skip
    write_csv(folder, "orders.csv", [
        {**order, "order_id": "O1", "merchant_id": "M1", "customer_name": "Anna Müller",
         "customer_iban": "DE02 1203 0000 0000 2020 51", "amount_cents": 40000, "paid_cents": 20000,
         "instalments": 4, "instalments_paid": 2},
        {**order, "order_id": "O2", "merchant_id": "M2", "customer_name": "Zoé D'Angelo", "customer_iban": "",
         "amount_cents": 10000, "paid_cents": 10000},
        {**order, "order_id": "O3", "merchant_id": "M2", "customer_name": "Seán Ó Briain",
         "customer_iban": "NL91ABNA0417164300", "amount_cents": 50000, "paid_cents": 50000},
        {**order, "order_id": "O4", "merchant_id": "M1", "customer_name": "Åsa Öberg",
         "customer_iban": "AT611904300234573201", "amount_cents": 3000, "paid_cents": 3000},
    ])  # fmt: skip
    refund = {"payment_id": "", "reason": "retour"}
    write_csv(folder, "refunds.csv", [
        {**refund, "refund_ref": "R1", "merchant_id": "M1", "order_id": "O1", "amount_cents": 25000,
         "requested_on": "2024-05-10"},
        {**refund, "refund_ref": "R2", "merchant_id": "M2", "order_id": "O2", "amount_cents": 5000,
         "requested_on": "2024-05-10"},
        {**refund, "refund_ref": "R3", "merchant_id": "M2", "order_id": "O3", "amount_cents": 40000,
         "requested_on": "2024-05-11"},
        {**refund, "refund_ref": "R4", "merchant_id": "M1", "order_id": "O4", "amount_cents": 6001,
         "requested_on": "2024-05-11"},
        {**refund, "refund_ref": "R1", "merchant_id": "M1", "order_id": "O1", "amount_cents": 25000,
         "requested_on": "2024-05-10"},
        {**refund, "refund_ref": "R9", "merchant_id": "M9", "order_id": "O1", "amount_cents": 100,
         "requested_on": "2024-05-10"},
        {**refund, "refund_ref": "R10", "merchant_id": "M1", "order_id": "O4", "amount_cents": "12,50",
         "requested_on": "2024-05-10"},
    ])  # fmt: skip
    return folder


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the reliability report: what the tests that try to break the pipeline tried, and found."""
    from tests.reliability.figures import report_lines

    lines = report_lines()
    if lines:
        terminalreporter.section("reliability report")
        for line in lines:
            terminalreporter.write_line(line)
