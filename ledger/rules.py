"""The refund rules (DESIGN.md section 2) as frame operations: limits, windows, instalments, balances.

`decide_refunds` takes candidate refunds already joined with their order or payment and merchant,
and says for each what happens: refused (and why), blocked, waiting for bank details, or scheduled,
with the amount that goes to the customer. Pure: no database, no clock.
"""

from __future__ import annotations

import polars as pl

from ledger.frames import running_total, texts_where
from ledger.money import euros

TARGET = "_target"
NO_IBAN = "no IBAN known for the customer (cash or foreign payment)"

CANDIDATE_COLUMNS = {
    "refund_id": pl.String,
    "merchant_id": pl.String,
    "order_id": pl.String,
    "payment_id": pl.String,
    "amount_cents": pl.Int64,
    "requested_on": pl.Date,
    "seq": pl.Int64,
    # the order (null for refunds against a payment)
    "order_amount_cents": pl.Int64,
    "order_paid_cents": pl.Int64,
    "ordered_on": pl.Date,
    "instalments": pl.Int64,
    "instalments_paid": pl.Int64,
    "refundable": pl.Boolean,
    # the unmatched payment (null for refunds against an order)
    "payment_amount_cents": pl.Int64,
    # the merchant
    "funding": pl.String,
    "only_refund_paid": pl.Boolean,
    "refund_window_days": pl.Int64,
    "waiting_days": pl.Int64,
    "available_balance_cents": pl.Int64,
    # the ledger's history for the same order or payment
    "prior_refunded_cents": pl.Int64,
    "prior_cancelled_cents": pl.Int64,
    # the customer's account
    "customer_iban": pl.String,
    "iban_problem": pl.String,
}


def refund_target() -> pl.Expr:
    """What a refund is limited against: its order (`O:<id>`) or its unmatched payment (`P:<id>`)."""
    return pl.coalesce(pl.format("O:{}", pl.col("order_id")), pl.format("P:{}", pl.col("payment_id")))


def refund_limit(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `limit_cents` and `limit_text`: the most that may ever be refunded on the order or payment.

    Against an order: twice the order amount, or the amount paid if the customer paid more than that;
    with the merchant's "only refund what was paid", the amount paid. Against an unmatched payment:
    the payment amount.
    """
    on_payment = pl.col("order_id").is_null()
    twice = pl.col("order_amount_cents") * 2
    paid = pl.col("order_paid_cents")
    limit = (
        pl.when(on_payment)
        .then(pl.col("payment_amount_cents"))
        .when(pl.col("only_refund_paid"))
        .then(paid)
        .otherwise(pl.max_horizontal(twice, paid))
    )
    why = (
        pl.when(on_payment)
        .then(pl.format("the payment amount of payment {}", pl.col("payment_id")))
        .when(pl.col("only_refund_paid"))
        .then(pl.format("the amount paid on order {} (merchant refunds only what was paid)", pl.col("order_id")))
        .when(paid > twice)
        .then(pl.format("the amount paid on order {} (more than twice the order amount)", pl.col("order_id")))
        .otherwise(pl.format("twice the amount of order {}", pl.col("order_id")))
    )
    return frame.with_columns(limit.alias("limit_cents"), why.alias("limit_basis"))


def decide_refunds(candidates: pl.DataFrame) -> pl.DataFrame:
    """Decide every candidate refund. Adds status, status_reason, payout_cents,
    cancelled_instalments_cents, cancelled_instalments and due_on.

    Candidates are decided in request order (requested_on, then seq), so that when partial refunds
    together exceed the limit, the earlier ones are paid and the later one is refused.
    """
    frame = candidates.select(
        [
            pl.col(c).cast(t) if c in candidates.columns else pl.lit(None, t).alias(c)
            for c, t in CANDIDATE_COLUMNS.items()
        ]
    ).sort("requested_on", "seq")
    frame = frame.with_columns(
        refund_target().alias(TARGET),
        pl.col("prior_refunded_cents").fill_null(0),
        pl.col("prior_cancelled_cents").fill_null(0),
    )
    frame = refund_limit(frame)
    frame = frame.with_columns(_eligibility().alias("refusal"))
    frame = _apply_limits(frame)
    frame = _cancel_instalments(frame)
    frame = _check_balance(frame)
    return _settle_status(frame)


def _eligibility() -> pl.Expr:
    window_end = pl.col("ordered_on") + pl.duration(days=pl.col("refund_window_days"))
    return (
        pl.when(pl.col("order_id").is_not_null() & ~pl.col("refundable"))
        .then(
            pl.format(
                "order {} is not refundable (trial product, or its return period expired or is disabled)",
                pl.col("order_id"),
            )
        )
        .when(pl.col("order_id").is_not_null() & (pl.col("requested_on") > window_end))
        .then(
            pl.format(
                "requested on {} after the refund window of {} days for order {} closed on {}",
                pl.col("requested_on"),
                pl.col("refund_window_days"),
                pl.col("order_id"),
                window_end,
            )
        )
        .otherwise(pl.lit(None, pl.String))
    )


def _apply_limits(frame: pl.DataFrame) -> pl.DataFrame:
    """Refuse refunds that would take the order's or payment's refunds past its limit."""
    eligible_amount = pl.when(pl.col("refusal").is_null()).then(pl.col("amount_cents")).otherwise(0)
    frame = running_total(frame, eligible_amount, TARGET, "_cum")
    frame = frame.with_columns((pl.col("prior_refunded_cents") + pl.col("_cum")).alias("_cum"))
    bad_targets = frame.filter(pl.col("_cum") > pl.col("limit_cents")).select(TARGET).unique()
    if bad_targets.is_empty():
        return frame.with_columns(pl.col("_cum").alias("_refunded_before") - pl.col("amount_cents"))
    # Only orders where some request overshoots need the sequential walk: a refused request does
    # not count against the limit, so a later smaller one may still fit.
    tricky = frame.join(bad_targets, on=TARGET, how="semi")
    refusals, before = [], []
    running: dict[str, int] = {}
    for row in tricky.iter_rows(named=True):
        key = row[TARGET]
        done = running.get(key, row["prior_refunded_cents"])
        before.append(done)
        if row["refusal"] is not None:
            refusals.append(row["refusal"])
            continue
        if done + row["amount_cents"] > row["limit_cents"]:
            refusals.append(
                f"over the refund limit: {euros(row['amount_cents'])} requested, {euros(done)} already "
                f"refunded, limit {euros(row['limit_cents'])} ({row['limit_basis']})"
            )
        else:
            running[key] = done + row["amount_cents"]
            refusals.append(None)
    walked = tricky.select("refund_id").with_columns(
        pl.Series("_refusal", refusals, pl.String), pl.Series("_before", before, pl.Int64)
    )
    frame = frame.join(walked, on="refund_id", how="left")
    return frame.with_columns(
        pl.coalesce("_refusal", "refusal").alias("refusal"),
        pl.coalesce(pl.col("_before"), pl.col("_cum") - pl.col("amount_cents")).alias("_refunded_before"),
    ).drop("_refusal", "_before")


def _cancel_instalments(frame: pl.DataFrame) -> pl.DataFrame:
    """A refund on an order with open instalments cancels them, last one first; only the rest is paid.

    The instalment amount is the order amount divided by the number of instalments, the last one
    taking the remaining cents.
    """
    n = pl.col("instalments")
    base = pl.col("order_amount_cents") // n
    open_cents = (
        pl.when(pl.col("order_id").is_not_null() & (n > 1) & (pl.col("instalments_paid") < n))
        .then(pl.col("order_amount_cents") - base * pl.col("instalments_paid"))
        .otherwise(0)
    )
    cancellable = pl.max_horizontal(open_cents - pl.col("prior_cancelled_cents"), pl.lit(0))
    accepted = pl.when(pl.col("refusal").is_null()).then(pl.col("amount_cents")).otherwise(0)
    frame = running_total(frame, accepted, TARGET, "_accepted_so_far")
    cum = pl.col("_accepted_so_far")
    cancelled = pl.min_horizontal(cancellable, cum) - pl.min_horizontal(cancellable, cum - accepted)
    frame = frame.with_columns(cancelled.alias("cancelled_instalments_cents")).drop("_accepted_so_far")
    cancelled_now = pl.col("cancelled_instalments_cents")
    frame = running_total(frame, cancelled_now, TARGET, "_cancelled_so_far")
    frame = frame.with_columns(
        (accepted - pl.col("cancelled_instalments_cents")).alias("payout_cents"),
        (pl.col("prior_cancelled_cents") + pl.col("_cancelled_so_far") - cancelled_now).alias("_cancelled_before"),
    ).drop("_cancelled_so_far")
    labels = texts_where(
        frame,
        pl.col("cancelled_instalments_cents") > 0,
        describe_cancellation,
        "cancelled_instalments_cents", "_cancelled_before", "order_amount_cents", "instalments",
    )  # fmt: skip
    return frame.with_columns(labels.alias("cancelled_instalments")).drop("_cancelled_before")


def describe_cancellation(cancelled: int, cancelled_before: int, amount: int, instalments: int) -> str:
    """Which instalments a cancellation of `cancelled` cents touches, counted from the last one.

    >>> describe_cancellation(20000, 0, 40000, 4)
    'instalments 4 and 3 cancelled (EUR 200.00)'
    """
    base = amount // instalments
    values = [base] * (instalments - 1) + [amount - base * (instalments - 1)]
    full, partial = [], None
    start, end = cancelled_before, cancelled_before + cancelled
    edge = 0
    for number in range(instalments, 0, -1):
        lo, hi = edge, edge + values[number - 1]
        edge = hi
        covered = min(hi, end) - max(lo, start)
        if covered <= 0:
            continue
        if covered == hi - lo:
            full.append(number)
        else:
            partial = (number, covered)
    parts = []
    if full:
        names = [str(x) for x in full]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        parts.append(f"instalment{'s' if len(full) > 1 else ''} {joined} cancelled")
    if partial:
        parts.append(f"instalment {partial[0]} reduced by {euros(partial[1])}")
    return f"{' and '.join(parts)} ({euros(cancelled)})"


def _check_balance(frame: pl.DataFrame) -> pl.DataFrame:
    """Integrated merchants pay from their balance: first come, first served; once one refund does
    not fit, it and every later one wait, so older refunds are never overtaken."""
    needs = (pl.col("funding") == "integrated") & pl.col("refusal").is_null() & (pl.col("payout_cents") > 0)
    claim = pl.when(needs).then(pl.col("payout_cents")).otherwise(0)
    cum = claim.cum_sum().over("merchant_id")
    short = needs & (cum > pl.col("available_balance_cents"))
    return frame.with_columns(
        (short.cast(pl.Int8).cum_max().over("merchant_id").cast(pl.Boolean) & needs).alias("blocked"),
        # What is left for this refund once earlier ones (in the ledger and in this batch) are served.
        pl.max_horizontal(pl.col("available_balance_cents") - (cum - claim), pl.lit(0)).alias("_available"),
    )


def _settle_status(frame: pl.DataFrame) -> pl.DataFrame:
    due_on = pl.col("requested_on") + pl.duration(days=pl.col("waiting_days"))
    no_iban = pl.col("customer_iban").is_null()
    status = (
        pl.when(pl.col("refusal").is_not_null())
        .then(pl.lit("rejected"))
        .when(pl.col("blocked"))
        .then(pl.lit("blocked"))
        .when(pl.col("payout_cents") == 0)
        .then(pl.lit("completed"))
        .when(no_iban | pl.col("iban_problem").is_not_null())
        .then(pl.lit("awaiting_bank_details"))
        .otherwise(pl.lit("scheduled"))
    )
    shortfall = texts_where(
        frame,
        pl.col("refusal").is_null() & pl.col("blocked"),
        lambda available, needed: (
            f"integrated balance does not cover it: {euros(available)} available after earlier refunds, "
            f"{euros(needed)} needed"
        ),
        "_available", "payout_cents",
    )  # fmt: skip
    reason = (
        pl.when(pl.col("refusal").is_not_null())
        .then(pl.col("refusal"))
        .when(pl.col("blocked"))
        .then(pl.lit(shortfall))
        .when(pl.col("payout_cents") == 0)
        .then(pl.format("nothing to pay out: {}", pl.col("cancelled_instalments")))
        .when(no_iban)
        .then(pl.lit("no IBAN known for the customer (cash or foreign payment)"))
        .when(pl.col("iban_problem").is_not_null())
        .then(pl.col("iban_problem"))
        .otherwise(pl.col("cancelled_instalments"))
    )
    refused = pl.col("refusal").is_not_null()
    return frame.with_columns(
        status.alias("status"),
        reason.alias("status_reason"),
        pl.when(refused).then(None).otherwise(due_on).alias("due_on"),
        pl.when(refused).then(0).otherwise(pl.col("payout_cents")).alias("payout_cents"),
    ).drop("_cum", "_refunded_before", "_available", "refusal", "limit_basis", TARGET)
