"""Metadata a person can read: euros, counts, small Markdown tables."""

from __future__ import annotations

import polars as pl

from ledger.money import euros


def markdown_table(frame: pl.DataFrame, limit: int = 50) -> str:
    """A frame as a Markdown table (first `limit` rows), money columns shown in euros."""
    if frame.is_empty():
        return "_none_"
    shown = frame.head(limit).with_columns(
        [pl.col(c).map_elements(euros, return_dtype=pl.String) for c in frame.columns if c.endswith("_cents")]
    )
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    body = [
        "| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |"
        for row in shown.iter_rows()
    ]
    more = [f"\n_{frame.height - limit} more rows not shown_"] if frame.height > limit else []
    return "\n".join([header, rule, *body, *more])
