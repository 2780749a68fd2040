"""Formatting integer cents for people. Arithmetic stays in integer cents everywhere."""

from __future__ import annotations


def euros(cents: int) -> str:
    """`12345` -> `EUR 123.45`; negative amounts keep their sign."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}EUR {whole:,}.{part:02d}"
