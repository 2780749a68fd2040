"""Metadata a person can read: euros, counts, small Markdown tables; IBANs only masked (they are personal data)."""

import polars as pl

from ledger.money import euros
from sepa.iban import find_ibans, mask_iban


def masked(text: str) -> str:
    """`text` with every IBAN in it masked (`DE89 **** 3000`): for log lines, failures and metadata."""
    if not text:
        return text
    parts, end = [], 0
    for start, stop in find_ibans(text):
        parts += [text[end:start], mask_iban(text[start:stop])]
        end = stop
    return "".join(parts) + text[end:]


def masked_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame safe to show: columns named `...iban` masked whatever they hold, IBANs in other text masked."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    return frame.with_columns(
        pl.col(c).map_elements(mask_iban if c.endswith("iban") else masked, return_dtype=pl.String) for c in text
    )


def markdown_table(frame: pl.DataFrame, limit: int = 50) -> str:
    """A frame as a Markdown table (first `limit` rows), money columns shown in euros, IBANs masked."""
    if frame.is_empty():
        return "_none_"
    shown = masked_frame(frame.head(limit)).with_columns(
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
