"""TARGET2 business days. Every expected date below was worked out by hand from the TARGET2 rule (closed on
Saturdays, Sundays, 1 January, Good Friday, Easter Monday, 1 May, 25 and 26 December), with Easter Sunday on
31 March 2024, 20 April 2025, 5 April 2026 and 28 March 2027."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from sepa.calendar import add_business_days, collection_date, is_business_day, next_business_day

CLOSED = {
    2024: ["2024-01-01", "2024-03-29", "2024-04-01", "2024-05-01", "2024-12-25", "2024-12-26"],
    2025: ["2025-01-01", "2025-04-18", "2025-04-21", "2025-05-01", "2025-12-25", "2025-12-26"],
    2026: ["2026-01-01", "2026-04-03", "2026-04-06", "2026-05-01", "2026-12-25", "2026-12-26"],
    2027: ["2027-01-01", "2027-03-26", "2027-03-29", "2027-05-01", "2027-12-25", "2027-12-26"],
}


@pytest.mark.parametrize("year", sorted(CLOSED))
def test_business_days_of_a_whole_year(year: int) -> None:
    """Exactly the weekdays that are not one of the six TARGET holidays are business days."""
    holidays = {date.fromisoformat(d) for d in CLOSED[year]}
    day = date(year, 1, 1)
    while day.year == year:
        assert is_business_day(day) is (day.weekday() < 5 and day not in holidays), day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    "day",
    ["2024-12-24", "2024-12-31", "2025-12-31", "2024-03-28", "2024-04-02", "2025-05-02", "2024-10-03",
     "2024-11-01", "2025-08-15"],  # Christmas Eve, New Year's Eve, national holidays: TARGET2 is open
)  # fmt: skip
def test_days_open_although_holidays_somewhere(day: str) -> None:
    assert is_business_day(date.fromisoformat(day))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2024-03-28", "2024-03-28"),  # a business day is its own next business day
        ("2024-03-29", "2024-04-02"),  # Good Friday, weekend, Easter Monday
        ("2025-04-18", "2025-04-22"),
        ("2026-04-03", "2026-04-07"),
        ("2027-03-26", "2027-03-30"),
        ("2024-05-01", "2024-05-02"),  # Wednesday
        ("2025-05-01", "2025-05-02"),  # Thursday
        ("2026-05-01", "2026-05-04"),  # Friday, then the weekend
        ("2027-05-01", "2027-05-03"),  # Saturday
        ("2024-12-25", "2024-12-27"),  # Wednesday and Thursday closed
        ("2025-12-25", "2025-12-29"),  # Thursday, Friday, weekend
        ("2026-12-25", "2026-12-28"),  # Friday, Saturday 26th, Sunday
        ("2027-12-25", "2027-12-27"),  # Saturday, Sunday 26th: Monday 27th is open
        ("2024-01-01", "2024-01-02"),
        ("2025-01-01", "2025-01-02"),
        ("2026-01-01", "2026-01-02"),
        ("2027-01-01", "2027-01-04"),  # Friday, then the weekend
        ("2024-06-01", "2024-06-03"),  # an ordinary weekend
        ("2024-06-02", "2024-06-03"),
    ],
)
def test_next_business_day(day: str, expected: str) -> None:
    assert next_business_day(date.fromisoformat(day)) == date.fromisoformat(expected)


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        ("2024-06-03", 0, "2024-06-03"),
        ("2024-06-01", 0, "2024-06-03"),  # n=0 rolls to a business day
        ("2024-06-03", 1, "2024-06-04"),
        ("2024-06-07", 1, "2024-06-10"),  # Friday + 1 = Monday
        ("2024-06-07", 5, "2024-06-14"),
        ("2024-03-28", 1, "2024-04-02"),  # over Easter
        ("2024-03-27", 2, "2024-04-02"),
        ("2025-04-17", 1, "2025-04-22"),
        ("2024-12-24", 1, "2024-12-27"),
        ("2024-12-23", 3, "2024-12-30"),
        ("2026-12-24", 1, "2026-12-28"),
        ("2026-12-31", 1, "2027-01-04"),  # New Year on a Friday, then the weekend
        ("2026-04-30", 1, "2026-05-04"),  # 1 May 2026 is a Friday
        ("2024-06-01", 1, "2024-06-03"),  # from a Saturday: the first business day after it
    ],
)
def test_add_business_days(day: str, n: int, expected: str) -> None:
    assert add_business_days(date.fromisoformat(day), n) == date.fromisoformat(expected)


def test_add_business_days_refuses_negative_n() -> None:
    with pytest.raises(ValueError):
        add_business_days(date(2024, 6, 3), -1)


@pytest.mark.parametrize(
    ("created_on", "lead", "expected"),
    [
        ("2024-06-03", 1, "2024-06-04"),  # Monday, D-1
        ("2024-06-03", 2, "2024-06-05"),
        ("2024-06-03", 0, "2024-06-03"),
        ("2024-12-23", 2, "2024-12-27"),  # Tuesday 24th, then Friday 27th
        ("2025-04-17", 1, "2025-04-22"),  # over Easter 2025
        ("2027-03-25", 1, "2027-03-30"),  # over Easter 2027
        ("2024-06-01", 1, "2024-06-04"),  # created on a Saturday: counted from Monday
        ("2024-06-01", 0, "2024-06-03"),
        ("2025-12-24", 1, "2025-12-29"),
    ],
)
def test_collection_date(created_on: str, lead: int, expected: str) -> None:
    result = collection_date(date.fromisoformat(created_on), lead)
    assert result == date.fromisoformat(expected)
    assert is_business_day(result)
