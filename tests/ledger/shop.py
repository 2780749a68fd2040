"""Small shop exports for the ledger tests: rows with sensible defaults, written as CSV and recorded
exactly the way the product records them (read, check the IBAN column, record)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ledger.db import migrate, open_ledger
from ledger.intake import IntakeResult, record_shop_file, refund_id_for
from ledger.intake_files import read_shop_file
from sepa.iban import check_iban_column

# Valid IBANs (check digits right); GB is a valid IBAN outside the euro area.
IBAN_MERCHANT = "DE89370400440532013000"
IBAN_CUSTOMER = "DE02120300000000202051"
IBAN_CUSTOMER_2 = "FR7630006000011234567890189"
IBAN_INTEGRATED = "NL91ABNA0417164300"
IBAN_CARRIER = "AT611904300234573201"
IBAN_GB = "GB33BUKB20201555555555"
# DE02120300000000202051 with the last digit changed: wrong check digits.
IBAN_BAD_CHECK = "DE02120300000000202052"

IBAN_COLUMNS = {"merchants": "iban", "excluded_ibans": "iban", "orders": "customer_iban", "payments": "payer_iban"}

HEADERS = {
    "merchants": [
        "merchant_id", "name", "iban", "bic", "funding", "mandate_id", "mandate_signed_on", "waiting_days",
        "refund_window_days", "only_refund_paid", "collection", "balance_cents",
    ],
    "orders": [
        "order_id", "merchant_id", "customer_name", "customer_email", "customer_iban", "amount_cents", "paid_cents",
        "ordered_on", "instalments", "instalments_paid", "refundable",
    ],
    "payments": ["payment_id", "merchant_id", "payer_name", "payer_iban", "amount_cents", "received_on"],
    "refunds": ["refund_ref", "merchant_id", "order_id", "payment_id", "amount_cents", "requested_on", "reason"],
    "excluded_ibans": ["iban", "owner", "kind"],
}  # fmt: skip


def merchant(merchant_id: str = "M1", **fields: Any) -> dict[str, Any]:
    """An own-account merchant with a mandate, 7 waiting days and the default 56-day window."""
    row: dict[str, Any] = {
        "merchant_id": merchant_id,
        "name": f"Shop {merchant_id}",
        "iban": IBAN_MERCHANT,
        "bic": "",
        "funding": "own_account",
        "mandate_id": f"MANDATE-{merchant_id}",
        "mandate_signed_on": "2024-01-02",
        "waiting_days": 7,
        "refund_window_days": 56,
        "only_refund_paid": "false",
        "collection": "weekly",
        "balance_cents": 0,
    }
    row.update(fields)
    return row


def integrated(merchant_id: str = "M2", balance_cents: int = 10_000, **fields: Any) -> dict[str, Any]:
    """A merchant whose balance the platform holds."""
    return merchant(
        merchant_id,
        funding="integrated",
        iban=IBAN_INTEGRATED,
        mandate_id="",
        mandate_signed_on="",
        balance_cents=balance_cents,
        **fields,
    )


def order(order_id: str = "O1", merchant_id: str = "M1", **fields: Any) -> dict[str, Any]:
    """A fully paid single-payment order of EUR 40.00 with a valid customer IBAN."""
    row: dict[str, Any] = {
        "order_id": order_id,
        "merchant_id": merchant_id,
        "customer_name": "Anna Kunde",
        "customer_email": "anna@example.org",
        "customer_iban": IBAN_CUSTOMER,
        "amount_cents": 4000,
        "paid_cents": 4000,
        "ordered_on": "2024-05-01",
        "instalments": 1,
        "instalments_paid": 0,
        "refundable": "true",
    }
    row.update(fields)
    return row


def payment(payment_id: str = "P1", merchant_id: str = "M1", **fields: Any) -> dict[str, Any]:
    """An unmatched incoming payment of EUR 12.34."""
    row: dict[str, Any] = {
        "payment_id": payment_id,
        "merchant_id": merchant_id,
        "payer_name": "Paul Zahler",
        "payer_iban": IBAN_CUSTOMER_2,
        "amount_cents": 1234,
        "received_on": "2024-05-02",
    }
    row.update(fields)
    return row


def refund(refund_ref: str, amount_cents: int, order_id: str | None = "O1", **fields: Any) -> dict[str, Any]:
    """A refund request against an order (or, with order_id=None and payment_id=..., a payment)."""
    row: dict[str, Any] = {
        "refund_ref": refund_ref,
        "merchant_id": "M1",
        "order_id": order_id,
        "payment_id": None,
        "amount_cents": amount_cents,
        "requested_on": "2024-05-10",
        "reason": "returned goods",
    }
    row.update(fields)
    return row


def write_rows(folder: Path, name: str, rows: list[dict[str, Any]], header: list[str] | None = None) -> Path:
    """Write rows as a shop export CSV: header on line 1, None as an empty cell."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if header is None:
        header = list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def record(con: duckdb.DuckDBPyConnection, path: Path) -> IntakeResult:
    """Record one shop file the way the product does."""
    shop_file = read_shop_file(path)
    rows = shop_file.rows
    if shop_file.kind in IBAN_COLUMNS:
        rows = check_iban_column(rows, IBAN_COLUMNS[shop_file.kind])
    return record_shop_file(con, shop_file, rows)


class Shop:
    """Writes numbered export files into a folder and records them into one ledger."""

    def __init__(self, folder: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.folder = folder
        self.con = con
        self.count = 0

    def write(self, kind: str, rows: list[dict[str, Any]], header: list[str] | None = None) -> Path:
        """Write a new file of `kind` (merchants_1.csv, refunds_2.csv, ...) without recording it."""
        self.count += 1
        return write_rows(self.folder, f"{kind}_{self.count}.csv", rows, header or HEADERS[kind])

    def load(self, kind: str, rows: list[dict[str, Any]]) -> IntakeResult:
        """Write and record a file of `kind`."""
        return record(self.con, self.write(kind, rows))

    def refund(self, ref: str, merchant_id: str = "M1") -> dict[str, Any]:
        """The refunds row recorded for (merchant, ref)."""
        frame = self.con.execute("SELECT * FROM refunds WHERE refund_id = ?", [refund_id_for(merchant_id, ref)]).pl()
        assert frame.height == 1, f"refund {ref} of {merchant_id} not recorded"
        return frame.row(0, named=True)

    def refund_count(self) -> int:
        return self.con.execute("SELECT COUNT(*) FROM refunds").fetchone()[0]

    def events(self, ref: str, merchant_id: str = "M1") -> pl.DataFrame:
        """Audit events of one refund, in the order written (rowid breaks ties within a transaction)."""
        return self.con.execute(
            "SELECT from_status, to_status, actor, reason FROM refund_events WHERE refund_id = ? "
            "ORDER BY occurred_at, rowid",
            [refund_id_for(merchant_id, ref)],
        ).pl()

    def notifications(self, ref: str, merchant_id: str = "M1") -> list[str]:
        """Templates of the notifications queued for one refund."""
        rows = self.con.execute(
            "SELECT template FROM notifications WHERE refund_id = ? ORDER BY created_at, template",
            [refund_id_for(merchant_id, ref)],
        ).fetchall()
        return [r[0] for r in rows]

    def rejects(self) -> pl.DataFrame:
        """All row rejects, file and line first."""
        return self.con.execute(
            "SELECT file_name, line, column_name, value, problem, severity FROM rejects ORDER BY file_name, line"
        ).pl()


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every table in the ledger."""
    names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall()]
    return {name: con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}


def postings_snapshot(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every posting, sorted: to compare the ledger before and after an operation."""
    return con.execute(
        "SELECT transfer_id, account, amount_cents, currency FROM postings ORDER BY transfer_id, account"
    ).fetchall()


def memory_ledger(template: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A migrated in-memory ledger (no disk writes, so tests stay fast), optionally a copy of `template`."""
    connection = duckdb.connect()
    if template is not None:
        quoted = str(template).replace("'", "''")
        connection.execute(f"ATTACH '{quoted}' AS template (READ_ONLY)")
        connection.execute("COPY FROM DATABASE template TO memory")
        connection.execute("DETACH template")
    migrate(connection)
    return connection


class Templates:
    """Ledger files built once per session (recording shop files takes a while) for tests to copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[str, Path] = {}

    def path(self, name: str, build: Callable[[Shop], None]) -> Path:
        """The ledger file `build` fills, built on first use."""
        if name not in self.built:
            folder = self.root / name
            with open_ledger(folder / "ledger.duckdb") as connection:
                build(Shop(folder / "shop", connection))
            self.built[name] = folder / "ledger.duckdb"
        return self.built[name]

    def shop(self, name: str, build: Callable[[Shop], None], folder: Path) -> Shop:
        """A Shop on a private in-memory copy of the template; its files go to `folder`."""
        shop = Shop(folder, memory_ledger(self.path(name, build)))
        shop.count = 100  # file names never clash with the template's
        return shop
