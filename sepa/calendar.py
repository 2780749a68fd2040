"""TARGET2 business days, the days on which SEPA payments are executed and collected.

TARGET2 is closed on Saturdays, Sundays and the ECB's TARGET holidays (1 January, Good Friday, Easter Monday,
1 May, 25 and 26 December). The holidays come from the `holidays` package's ECB calendar (market XECB), so
that no hand-written list goes stale.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays

# expand=True: the calendar fills in each year the first time a date of that year is asked about.
_TARGET_HOLIDAYS = holidays.financial_holidays("XECB", expand=True)


def is_business_day(d: date) -> bool:
    """True if TARGET2 is open on `d` (a weekday that is not a TARGET holiday)."""
    return d.weekday() < 5 and d not in _TARGET_HOLIDAYS


def next_business_day(d: date) -> date:
    """`d` itself if it is a business day, otherwise the first business day after it."""
    while not is_business_day(d):
        d += timedelta(days=1)
    return d


def add_business_days(d: date, n: int) -> date:
    """The `n`-th business day after `d` (`d` itself need not be one); n=0 rolls `d` to a business day."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    for _ in range(n):
        d = next_business_day(d + timedelta(days=1))
    return next_business_day(d)


def collection_date(created_on: date, lead_business_days: int) -> date:
    """The first business day at or after `created_on` plus `lead_business_days` business days.

    This is the earliest requested collection date for a direct debit file submitted on `created_on`
    (SEPA Core needs one business day of lead time; banks often ask for more). A file created on a weekend or
    holiday reaches the bank on the next business day, so the lead days count from there: created on
    Saturday with one day of lead, it is collected on Tuesday, not Monday.
    """
    return add_business_days(next_business_day(created_on), lead_business_days)
