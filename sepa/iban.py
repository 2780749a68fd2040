"""IBAN normalisation, validation (schwifty) and masking for logs and metadata."""

from __future__ import annotations

from functools import lru_cache

import polars as pl
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException


def normalise_iban(text: str) -> str:
    """An IBAN as banks print it compactly: no spaces, upper case (`de89 3704 ...` -> `DE8937...`)."""
    return "".join(text.split()).upper()


@lru_cache(maxsize=65536)
def iban_problem(text: str) -> str | None:
    """Why `text` is not a valid IBAN (country, length, check digits, national format), or None if it is."""
    compact = normalise_iban(text)
    try:
        IBAN(compact)
    except SchwiftyException as exc:
        return f"invalid IBAN {mask_iban(compact)}: {exc}"
    return None


def mask_iban(text: str | None) -> str:
    """An IBAN safe to show in logs: country, check digits and the last four, e.g. `DE89 **** 3000`."""
    if not text:
        return ""
    compact = normalise_iban(text)
    if len(compact) < 8:
        return "****"
    return f"{compact[:4]} **** {compact[-4:]}"


def check_iban_column(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Normalise `column` in place and add `<column>_problem` (null where the IBAN is valid or empty).

    Each distinct IBAN is checked once, so a frame of repeat customers costs one check per account.
    """
    normalised = frame.with_columns(pl.col(column).str.replace_all(r"\s+", "").str.to_uppercase().alias(column))
    distinct = normalised.select(pl.col(column).drop_nulls().unique())
    problems = distinct.with_columns(
        pl.col(column).map_elements(iban_problem, return_dtype=pl.String).alias(f"{column}_problem")
    )
    return normalised.join(problems, on=column, how="left", nulls_equal=False)
