"""The reliability report's figures: tests that try to break the pipeline count what they tried and what
they found, and the suite prints the totals at its end (`pytest_terminal_summary` in tests/conftest.py).

Every figure is counted by the test that did the thing, from what it measured: a test that finds money
lost or a refund paid twice both counts it here and fails.
"""

from __future__ import annotations

from collections import Counter

# The figures in the order the report prints them; those that must stay zero are marked.
ORDER = [
    "crash points tried",
    "random kills",
    "re-runs after a crash",
    "concurrent runs",
    "bank files fuzzed",
    "hostile bank files refused",
    "hostile shop rows refused",
    "duplicates refused",
    "money lost (cents)",
    "paid twice",
]
MUST_BE_ZERO = {"money lost (cents)", "paid twice"}

FIGURES: Counter[str] = Counter()


def tally(figure: str, n: int = 1) -> None:
    """Add `n` to one of the report's figures."""
    if figure not in ORDER:
        raise KeyError(f"not a figure of the reliability report: {figure!r}")
    FIGURES[figure] += n


def report_lines() -> list[str]:
    """The report as lines of text; empty when no test of reliability ran."""
    if not FIGURES:
        return []
    width = max(len(name) for name in ORDER)
    return [f"{name:<{width}}  {FIGURES[name]:>8,}" for name in ORDER]
