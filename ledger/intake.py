"""Recording shop exports in the books: merchants, orders, payments and the refunds asked for.

Each file is recorded in one transaction together with its rejects, and recognised by its content
hash: loading the same file twice changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import polars as pl

from ledger.bookings import book_balance_changes, book_cancelled_instalments, book_refunds
from ledger.db import run_with_frames, transaction
from ledger.frames import may_repeat
from ledger.intake_files import LINE, ShopFile
from ledger.lifecycle import new_events, record_events
from ledger.notifications import queue_notifications
from ledger.rules import decide_refunds, refund_target

KEYS = {
    "merchants": ["merchant_id"],
    "excluded_ibans": ["iban"],
    "orders": ["order_id"],
    "payments": ["payment_id"],
    "refunds": ["merchant_id", "refund_ref"],
}
ACTOR = "intake"


@dataclass(frozen=True)
class IntakeResult:
    """What loading one file did."""

    file_name: str
    kind: str
    rows_total: int
    rows_loaded: int
    rows_rejected: int
    already_loaded: bool = False
    statuses: dict[str, int] | None = None
    sha256: str = ""


def refund_id_for(merchant_id: str, refund_ref: str) -> str:
    """The platform's id for a shop's refund: deterministic, 22 SEPA-safe characters."""
    digest = hashlib.sha256(f"{merchant_id}\x1f{refund_ref}".encode()).hexdigest()
    return "RF" + digest[:20].upper()


def with_refund_ids(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` with a `refund_id` column: `refund_id_for` of each row, hashed by DuckDB in bulk."""
    digests = run_with_frames(
        con,
        "SELECT 'RF' || upper(substr(sha256(merchant_id || chr(31) || refund_ref), 1, 20)) AS refund_id FROM r",
        r=rows.select("merchant_id", "refund_ref"),
    )
    return rows.with_columns(digests["refund_id"])


def record_shop_file(con: duckdb.DuckDBPyConnection, shop_file: ShopFile, rows: pl.DataFrame) -> IntakeResult:
    """Record a read shop file. `rows` are its good rows with IBAN columns already checked
    (`<column>_problem` beside each IBAN column); rows the books cannot take become rejects too."""
    seen = con.execute("SELECT 1 FROM intake_files WHERE sha256 = ?", [shop_file.sha256]).fetchone()
    if seen:
        return IntakeResult(
            shop_file.path.name,
            shop_file.kind,
            shop_file.rows_total,
            0,
            0,
            already_loaded=True,
            sha256=shop_file.sha256,
        )
    rejects = [shop_file.rejects.with_columns(pl.lit("error").alias("severity"))]
    statuses = None
    with transaction(con):
        if shop_file.kind == "merchants":
            loaded, more = _record_merchants(con, rows, shop_file)
        elif shop_file.kind == "excluded_ibans":
            loaded, more = _record_excluded(con, rows)
        elif shop_file.kind == "orders":
            loaded, more = _record_orders(con, rows, shop_file)
        elif shop_file.kind == "payments":
            loaded, more = _record_payments(con, rows, shop_file)
        else:
            loaded, more, statuses = _record_refunds(con, rows, shop_file)
        rejects.append(more)
        all_rejects = pl.concat([r.select(LINE, "column_name", "value", "problem", "severity") for r in rejects])
        _store_rejects(con, shop_file, all_rejects)
        errors = all_rejects.filter(pl.col("severity") != "warning").select(LINE).n_unique()
        con.execute(
            "INSERT INTO intake_files VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
            [shop_file.sha256, shop_file.path.name, shop_file.kind, shop_file.rows_total, loaded, errors],
        )
    return IntakeResult(
        shop_file.path.name, shop_file.kind, shop_file.rows_total, loaded, errors, statuses=statuses,
        sha256=shop_file.sha256,
    )  # fmt: skip


def _reject(frame: pl.DataFrame, column: str | None, problem: pl.Expr, severity: str = "error") -> pl.DataFrame:
    return frame.select(
        pl.col(LINE),
        pl.lit(column, pl.String).alias("column_name"),
        (pl.col(column).cast(pl.String) if column else pl.lit(None, pl.String)).alias("value"),
        problem.alias("problem"),
        pl.lit(severity).alias("severity"),
    )


def _no_rejects() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            LINE: pl.Int64,
            "column_name": pl.String,
            "value": pl.String,
            "problem": pl.String,
            "severity": pl.String,
        }
    )


def _split_duplicates_in_file(rows: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the first row of each key; report the others as duplicates naming the first line."""
    # The window and the copies run on the rows whose key may repeat (usually none), not on a million rows.
    suspects = rows.filter(may_repeat(rows, keys))
    marked = suspects.with_columns(pl.col(LINE).min().over(keys).alias("_first"))
    dups = marked.filter(pl.col(LINE) != pl.col("_first"))
    key_text = " ".join(f"{k} {{}}" for k in keys)
    rejects = _reject(
        dups,
        keys[-1],
        pl.format(
            f"duplicate: {key_text} already appears on line {{}} of this file; recorded once",
            *[pl.col(k) for k in keys],
            pl.col("_first"),
        ),
        severity="duplicate",
    )
    kept = rows.filter(~pl.col(LINE).is_in(dups[LINE].implode())) if not dups.is_empty() else rows
    return kept, rejects


def _store_rejects(con: duckdb.DuckDBPyConnection, shop_file: ShopFile, rejects: pl.DataFrame) -> None:
    if rejects.is_empty():
        return
    frame = rejects.rename({LINE: "line"}).with_columns(
        pl.lit(shop_file.sha256).alias("file_sha256"), pl.lit(shop_file.path.name).alias("file_name")
    )
    run_with_frames(
        con,
        "INSERT INTO rejects (file_sha256, file_name, line, column_name, value, problem, severity, imported_at) "
        "SELECT file_sha256, file_name, line, column_name, value, problem, severity, current_timestamp FROM frame",
        frame=frame,
    )


def _known(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return con.execute(sql).pl()


def _record_merchants(con, rows: pl.DataFrame, shop_file: ShopFile) -> tuple[int, pl.DataFrame]:
    rows, dup_rejects = _split_duplicates_in_file(rows, KEYS["merchants"])
    bad_iban = rows.filter(pl.col("iban_problem").is_not_null())
    # A merchant with a bad IBAN is still recorded (its refunds are real); it cannot be collected from.
    warnings = _reject(
        bad_iban,
        "iban",
        pl.format(
            "{}; merchant recorded, but nothing can be collected until the IBAN is corrected", pl.col("iban_problem")
        ),
        severity="warning",
    )
    no_mandate = rows.filter((pl.col("funding") == "own_account") & pl.col("mandate_id").is_null())
    warnings = pl.concat(
        [
            warnings,
            _reject(
                no_mandate,
                "mandate_id",
                pl.lit(
                    "own-account merchant without a SEPA mandate: its refunds cannot be "
                    "collected until a mandate is given"
                ),
                severity="warning",
            ),
        ]
    )
    previous = _known(con, "SELECT merchant_id, declared_balance_cents FROM merchants")
    frame = rows.with_columns(
        pl.lit(shop_file.path.name).alias("source_file"),
        pl.col("balance_cents").alias("declared_balance_cents"),
    )
    run_with_frames(
        con,
        "INSERT INTO merchants (merchant_id, name, iban, iban_problem, bic, funding, mandate_id, "
        "mandate_signed_on, waiting_days, refund_window_days, only_refund_paid, collection, "
        "declared_balance_cents, pay_on_release, source_file, updated_at) "
        "SELECT merchant_id, name, iban, iban_problem, bic, funding, mandate_id, mandate_signed_on, waiting_days, "
        "refund_window_days, only_refund_paid, collection, declared_balance_cents, pay_on_release, source_file, "
        "current_timestamp "
        "FROM frame ON CONFLICT (merchant_id) DO UPDATE SET name = excluded.name, iban = excluded.iban, "
        "iban_problem = excluded.iban_problem, bic = excluded.bic, funding = excluded.funding, "
        "mandate_id = excluded.mandate_id, mandate_signed_on = excluded.mandate_signed_on, "
        "waiting_days = excluded.waiting_days, refund_window_days = excluded.refund_window_days, "
        "only_refund_paid = excluded.only_refund_paid, collection = excluded.collection, "
        "declared_balance_cents = excluded.declared_balance_cents, pay_on_release = excluded.pay_on_release, "
        "source_file = excluded.source_file, "
        "updated_at = excluded.updated_at",
        frame=frame,
    )
    # The export states an integrated merchant's balance; a change since the last export is money
    # the merchant paid in (or took out), booked against the platform's bank account.
    moves = (
        frame.filter(pl.col("funding") == "integrated")
        .join(previous, on="merchant_id", how="left", suffix="_before")
        .with_columns(
            (pl.col("declared_balance_cents") - pl.col("declared_balance_cents_before").fill_null(0)).alias("delta")
        )
        .filter(pl.col("delta") != 0)
    )
    book_balance_changes(con, moves, file_name=shop_file.path.name, file_sha256=shop_file.sha256)
    return rows.height, pl.concat([dup_rejects, warnings])


def _record_excluded(con, rows: pl.DataFrame) -> tuple[int, pl.DataFrame]:
    rows, dup_rejects = _split_duplicates_in_file(rows, KEYS["excluded_ibans"])
    bad = rows.filter(pl.col("iban_problem").is_not_null())
    good = rows.filter(pl.col("iban_problem").is_null())
    run_with_frames(
        con,
        "INSERT INTO excluded_ibans (iban, owner, kind) SELECT iban, owner, kind FROM good "
        "ON CONFLICT (iban) DO UPDATE SET owner = excluded.owner, kind = excluded.kind",
        good=good,
    )
    return good.height, pl.concat([dup_rejects, _reject(bad, "iban", pl.col("iban_problem"))])


def _check_merchant(con, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    merchants = _known(con, "SELECT merchant_id FROM merchants")
    unknown = rows.join(merchants, on="merchant_id", how="anti")
    rejects = _reject(
        unknown, "merchant_id", pl.format("unknown merchant {} (load its merchants file first)", pl.col("merchant_id"))
    )
    return rows.join(merchants, on="merchant_id", how="semi"), rejects


def _record_orders(con, rows: pl.DataFrame, shop_file: ShopFile) -> tuple[int, pl.DataFrame]:
    rows, rejects = _check_merchant(con, rows)
    rows, dup_rejects = _split_duplicates_in_file(rows, KEYS["orders"])
    rejects = pl.concat([rejects, dup_rejects])
    existing = run_with_frames(
        con,
        "SELECT order_id, merchant_id AS owner FROM orders WHERE order_id IN (SELECT order_id FROM r)",
        r=rows.select("order_id"),
    )
    moved = rows.join(existing, on="order_id").filter(pl.col("owner") != pl.col("merchant_id"))
    rejects = pl.concat(
        [
            rejects,
            _reject(
                moved,
                "merchant_id",
                pl.format(
                    "order {} belongs to merchant {}, not {}",
                    pl.col("order_id"),
                    pl.col("owner"),
                    pl.col("merchant_id"),
                ),
            ),
        ]
    )
    frame = rows.join(moved.select("order_id"), on="order_id", how="anti").with_columns(
        pl.lit(shop_file.path.name).alias("source_file")
    )
    run_with_frames(
        con,
        "INSERT INTO orders (order_id, merchant_id, customer_name, customer_email, customer_iban, "
        "customer_iban_problem, amount_cents, paid_cents, ordered_on, instalments, instalments_paid, refundable, "
        "source_file, updated_at) SELECT order_id, merchant_id, customer_name, customer_email, customer_iban, "
        "customer_iban_problem, amount_cents, paid_cents, ordered_on, instalments, instalments_paid, refundable, "
        "source_file, current_timestamp FROM frame ON CONFLICT (order_id) DO UPDATE SET "
        "customer_name = excluded.customer_name, customer_email = excluded.customer_email, "
        "customer_iban = excluded.customer_iban, customer_iban_problem = excluded.customer_iban_problem, "
        "amount_cents = excluded.amount_cents, paid_cents = excluded.paid_cents, ordered_on = excluded.ordered_on, "
        "instalments = excluded.instalments, instalments_paid = excluded.instalments_paid, "
        "refundable = excluded.refundable, source_file = excluded.source_file, updated_at = excluded.updated_at",
        frame=frame,
    )
    return frame.height, rejects


def _record_payments(con, rows: pl.DataFrame, shop_file: ShopFile) -> tuple[int, pl.DataFrame]:
    rows, rejects = _check_merchant(con, rows)
    rows, dup_rejects = _split_duplicates_in_file(rows, KEYS["payments"])
    rejects = pl.concat([rejects, dup_rejects])
    frame = rows.with_columns(pl.lit(shop_file.path.name).alias("source_file"))
    run_with_frames(
        con,
        "INSERT INTO payments (payment_id, merchant_id, payer_name, payer_iban, payer_iban_problem, amount_cents, "
        "received_on, source_file, updated_at) SELECT payment_id, merchant_id, payer_name, payer_iban, "
        "payer_iban_problem, amount_cents, received_on, source_file, current_timestamp FROM frame "
        "ON CONFLICT (payment_id) DO UPDATE SET payer_name = excluded.payer_name, payer_iban = excluded.payer_iban, "
        "payer_iban_problem = excluded.payer_iban_problem, amount_cents = excluded.amount_cents, "
        "received_on = excluded.received_on, source_file = excluded.source_file, updated_at = excluded.updated_at",
        frame=frame,
    )
    return frame.height, rejects


def _record_refunds(con, rows: pl.DataFrame, shop_file: ShopFile):
    rows = with_refund_ids(con, rows)
    rows, rejects = _check_merchant(con, rows)
    # Only the rows' own ids are looked up: the cost follows the file, not the books.
    known = run_with_frames(
        con,
        "SELECT refund_id, source_file AS first_file, source_line AS first_line, status AS first_status "
        "FROM refunds WHERE refund_id IN (SELECT refund_id FROM r)",
        r=rows.select("refund_id"),
    )
    dups = rows.join(known, on="refund_id")
    rejects = pl.concat(
        [
            rejects,
            _reject(
                dups,
                "refund_ref",
                pl.format(
                    "duplicate: refund_ref {} of merchant {} was already recorded from {} line {} (now {}); "
                    "not paid again",
                    pl.col("refund_ref"),
                    pl.col("merchant_id"),
                    pl.col("first_file"),
                    pl.col("first_line"),
                    pl.col("first_status"),
                ),
                severity="duplicate",
            ),
        ]
    )
    rows = rows.join(known, on="refund_id", how="anti")

    orders = run_with_frames(
        con,
        "SELECT order_id, merchant_id AS order_merchant, amount_cents AS order_amount_cents, "
        "paid_cents AS order_paid_cents, ordered_on, instalments, instalments_paid, refundable, "
        "customer_name AS order_customer, customer_iban AS order_iban, "
        "customer_iban_problem AS order_iban_problem FROM orders WHERE order_id IN (SELECT order_id FROM r)",
        r=rows.select("order_id").drop_nulls(),
    )
    payments = run_with_frames(
        con,
        "SELECT payment_id, merchant_id AS payment_merchant, amount_cents AS payment_amount_cents, "
        "payer_name, payer_iban, payer_iban_problem FROM payments WHERE payment_id IN (SELECT payment_id FROM r)",
        r=rows.select("payment_id").drop_nulls(),
    )
    rows = rows.join(orders, on="order_id", how="left").join(payments, on="payment_id", how="left")
    unknown_order = rows.filter(pl.col("order_id").is_not_null() & pl.col("order_merchant").is_null())
    unknown_payment = rows.filter(pl.col("payment_id").is_not_null() & pl.col("payment_merchant").is_null())
    foreign = rows.filter(
        (pl.col("order_merchant").is_not_null() & (pl.col("order_merchant") != pl.col("merchant_id")))
        | (pl.col("payment_merchant").is_not_null() & (pl.col("payment_merchant") != pl.col("merchant_id")))
    )
    rejects = pl.concat(
        [
            rejects,
            _reject(
                unknown_order,
                "order_id",
                pl.format("unknown order {} (load its orders file first)", pl.col("order_id")),
            ),
            _reject(
                unknown_payment,
                "payment_id",
                pl.format("unknown payment {} (load its payments file first)", pl.col("payment_id")),
            ),
            _reject(
                foreign,
                "merchant_id",
                pl.format(
                    "order or payment {} belongs to merchant {}, not {}",
                    pl.coalesce("order_id", "payment_id"),
                    pl.coalesce("order_merchant", "payment_merchant"),
                    pl.col("merchant_id"),
                ),
            ),
        ]
    )
    bad_lines = pl.concat([unknown_order, unknown_payment, foreign]).select(LINE)
    if not bad_lines.is_empty():  # a copy of every row otherwise
        rows = rows.join(bad_lines, on=LINE, how="anti")
    rows, dup_rejects = _split_duplicates_in_file(rows, KEYS["refunds"])
    rejects = pl.concat([rejects, dup_rejects])

    candidates = _candidates(con, rows)
    decided = decide_refunds(candidates).join(
        candidates.select("refund_id", "refund_ref", LINE, "reason", "customer_name"), on="refund_id"
    )
    _store_refunds(con, decided, shop_file)
    statuses = dict(decided.group_by("status").len().iter_rows())
    return decided.height, rejects, statuses


def _candidates(con, rows: pl.DataFrame) -> pl.DataFrame:
    """Join each new refund with what the rules need: merchant settings, balances, earlier refunds."""
    merchants = _known(
        con,
        "SELECT merchant_id, funding, only_refund_paid, refund_window_days, waiting_days, "
        "iban AS merchant_iban FROM merchants",
    )
    # What an integrated merchant's balance can still pay: refunds already waiting on it come first,
    # so a later, smaller refund never overtakes a blocked one.
    held = _known(
        con,
        "SELECT m.merchant_id, "
        "CAST(COALESCE(-b.held, 0) - COALESCE(w.waiting, 0) AS BIGINT) AS available_balance_cents "
        "FROM merchants m "
        "LEFT JOIN (SELECT account, SUM(amount_cents) AS held FROM postings GROUP BY account) b "
        "  ON b.account = 'merchant:' || m.merchant_id || ':balance' "
        "LEFT JOIN (SELECT merchant_id, SUM(payout_cents) AS waiting FROM refunds WHERE status = 'blocked' "
        "  GROUP BY merchant_id) w ON w.merchant_id = m.merchant_id",
    )
    prior = run_with_frames(
        con,
        "SELECT COALESCE('O:' || order_id, 'P:' || payment_id) AS _target, "
        "CAST(SUM(amount_cents) AS BIGINT) AS prior_refunded_cents, "
        "CAST(SUM(cancelled_instalments_cents) AS BIGINT) AS prior_cancelled_cents "
        "FROM refunds WHERE status <> 'rejected' AND (order_id IN (SELECT order_id FROM r) "
        "OR payment_id IN (SELECT payment_id FROM r)) GROUP BY 1",
        r=rows.select("order_id", "payment_id"),
    )
    excluded = _known(
        con, "SELECT iban AS customer_iban, owner AS excluded_owner, kind AS excluded_kind FROM excluded_ibans"
    )
    frame = (
        rows.with_columns(
            refund_target().alias("_target"),
            pl.coalesce("order_iban", "payer_iban").alias("customer_iban"),
            pl.coalesce("order_customer", "payer_name").alias("customer_name"),
            pl.coalesce("order_iban_problem", "payer_iban_problem").alias("iban_problem"),
            pl.col(LINE).alias("seq"),
        )
        .join(merchants, on="merchant_id", how="left")
        .join(held, on="merchant_id", how="left")
        .join(prior, on="_target", how="left")
        .join(excluded, on="customer_iban", how="left")
    )
    # An account that is not the customer's is as good as no account: ask the customer.
    return frame.with_columns(
        pl.when(pl.col("customer_iban") == pl.col("merchant_iban"))
        .then(pl.lit("the customer's IBAN on record is the merchant's own account"))
        .when(pl.col("excluded_owner").is_not_null())
        .then(
            pl.format(
                "the customer's IBAN on record belongs to {} ({}), not to the customer",
                pl.col("excluded_owner"),
                pl.col("excluded_kind").str.replace("_", " "),
            )
        )
        .otherwise(pl.col("iban_problem"))
        .alias("iban_problem"),
        pl.col("available_balance_cents").fill_null(0),
        pl.col("prior_refunded_cents").fill_null(0),
        pl.col("prior_cancelled_cents").fill_null(0),
    )


def _store_refunds(con, decided: pl.DataFrame, shop_file: ShopFile) -> None:
    refunds = decided.with_columns(
        pl.lit(shop_file.path.name).alias("source_file"),
        pl.col(LINE).alias("source_line"),
        pl.col("reason").alias("request_reason"),
    )
    run_with_frames(
        con,
        "INSERT INTO refunds (refund_id, refund_ref, merchant_id, order_id, payment_id, amount_cents, payout_cents, "
        "cancelled_instalments_cents, cancelled_instalments, requested_on, request_reason, customer_name, "
        "customer_iban, iban_problem, status, status_reason, due_on, source_file, source_line, recorded_at) "
        "SELECT refund_id, refund_ref, merchant_id, order_id, payment_id, amount_cents, payout_cents, "
        "cancelled_instalments_cents, cancelled_instalments, requested_on, request_reason, customer_name, "
        "customer_iban, iban_problem, status, status_reason, due_on, source_file, source_line, current_timestamp "
        "FROM new_refunds",
        new_refunds=refunds,
    )
    events = new_events(decided, actor=ACTOR)
    record_events(con, events)
    book_refunds(con, decided.filter(pl.col("status").is_in(["scheduled", "awaiting_bank_details"])))
    book_cancelled_instalments(con, decided.filter(pl.col("cancelled_instalments_cents") > 0))
    queue_notifications(con, intake_notifications(decided.join(events.select("refund_id", "event_id"), on="refund_id")))


_INTAKE_TEMPLATES = {
    "scheduled": "refund_scheduled",
    "awaiting_bank_details": "bank_details_needed",
    "blocked": "balance_insufficient",
    "rejected": "refund_refused",
    "completed": "instalments_cancelled",
}


def intake_notifications(decided: pl.DataFrame) -> pl.DataFrame:
    """One notification per newly recorded refund, chosen by its status (refund_id, event_id, status...)."""
    frame = decided.filter(pl.col("status").is_in(list(_INTAKE_TEMPLATES)))
    return frame.select(
        pl.format("{}:{}", pl.col("status").replace_strict(_INTAKE_TEMPLATES), pl.col("event_id")).alias(
            "notification_id"
        ),
        pl.col("status").replace_strict(_INTAKE_TEMPLATES).alias("template"),
        "refund_id",
        "merchant_id",
        pl.struct(
            "refund_ref",
            "merchant_id",
            "customer_name",
            "amount_cents",
            "payout_cents",
            pl.col("due_on").cast(pl.String),
            pl.col("status_reason").alias("reason"),
        )
        .struct.json_encode()
        .alias("data"),
    )


def record_refused_file(con: duckdb.DuckDBPyConnection, file_name: str, sha256: str, problem: str) -> None:
    """Note a file that could not be read at all, once per content, so finance ops find it with the rejects."""
    seen = con.execute("SELECT 1 FROM rejects WHERE file_sha256 = ? AND severity = 'file'", [sha256]).fetchone()
    if not seen:
        con.execute(
            "INSERT INTO rejects (file_sha256, file_name, line, column_name, value, problem, severity, imported_at) "
            "VALUES (?, ?, 0, NULL, NULL, ?, 'file', current_timestamp)",
            [sha256, file_name, problem],
        )


def list_rejects(con: duckdb.DuckDBPyConnection, sha256s: list[str] | None = None) -> pl.DataFrame:
    """Rows (and whole files) intake could not take, with file, line, column and problem;
    only those of the files with the given content hashes if `sha256s` is given."""
    where, params = "", []
    if sha256s is not None:
        where = "WHERE file_sha256 IN (" + ", ".join("?" for _ in sha256s) + ")" if sha256s else "WHERE FALSE"
        params = list(sha256s)
    return con.execute(
        "SELECT file_name, line, column_name, value, problem, severity, imported_at, file_sha256 FROM rejects "
        f"{where} ORDER BY imported_at, file_name, line",
        params,
    ).pl()
