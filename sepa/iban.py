"""IBAN normalisation, validation (schwifty) and masking for logs and metadata."""

from __future__ import annotations

import re
from functools import lru_cache

import polars as pl
from schwifty import IBAN
from schwifty import exceptions as iban_errors
from schwifty.registry import get_iban_spec

# schwifty's messages quote the whole account number; ours name the problem and show a masked IBAN.
_PROBLEMS: list[tuple[type[Exception], str]] = [
    (iban_errors.InvalidCountryCode, "unknown country code"),
    (iban_errors.InvalidLength, "wrong length for its country"),
    (iban_errors.InvalidStructure, "does not follow its country's format"),
    (iban_errors.InvalidChecksumDigits, "check digits do not match"),
    (iban_errors.InvalidBBANChecksum, "national check digits do not match"),
    (iban_errors.InvalidBankCode, "unknown bank code"),
    (iban_errors.InvalidBranchCode, "unknown branch code"),
    (iban_errors.InvalidAccountCode, "invalid account number"),
]


def normalise_iban(text: str) -> str:
    """An IBAN as banks print it compactly: no spaces, upper case (`de89 3704 ...` -> `DE8937...`)."""
    return "".join(text.split()).upper()


@lru_cache(maxsize=65536)
def iban_problem(text: str) -> str | None:
    """Why `text` is not a valid IBAN (country, length, check digits, national format), or None if it is."""
    compact = normalise_iban(text)
    try:
        IBAN(compact)
    except iban_errors.SchwiftyException as exc:
        words = next((w for kind, w in _PROBLEMS if isinstance(exc, kind)), "not a valid IBAN")
        return f"invalid IBAN {mask_iban(compact)}: {words}"
    return None


def mask_iban(text: str | None) -> str:
    """An IBAN safe to show in logs: country, check digits and the last four, e.g. `DE89 **** 3000`."""
    if not text:
        return ""
    compact = normalise_iban(text)
    if len(compact) < 8:
        return "****"
    return f"{compact[:4]} **** {compact[-4:]}"


# Country, check digits, then 11 to 30 letters or digits: compact, or printed in groups of four.
_IBAN_IN_TEXT = re.compile(
    r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}"
    r"(?:[0-9A-Za-z]{11,30}|(?: [0-9A-Za-z]{4}){2,7}(?: [0-9A-Za-z]{1,4})?)(?![0-9A-Za-z])"
)


def find_ibans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds what looks like an IBAN, valid or not (a typo is still someone's account number), as
    (start, end) spans.

    An IBAN country with 15 to 34 characters, compact or grouped in fours; cut to its country's length, so a
    word after a grouped IBAN is not taken for its last group. A compact token with lower-case letters counts
    only if its check digits hold: lower-case hex ids (`de12...`) are not IBANs.
    """
    found = []
    for match in _IBAN_IN_TEXT.finditer(text):
        token = match.group()
        compact = normalise_iban(token)
        length = _iban_length(compact[:2].upper())
        if length is None or not 15 <= len(compact) <= 34:
            continue
        if " " not in token and not token.isupper() and not _check_digits_hold(compact):
            continue
        end = match.end()
        if len(compact) > length:
            kept = [n for n, c in enumerate(token) if c != " "][length - 1]
            end = match.start() + kept + 1
        found.append((match.start(), end))
    return found


@lru_cache(maxsize=256)
def _iban_length(country: str) -> int | None:
    """The length of the country's IBANs; None if the country has none (`RF`, `CL`: our ids start so)."""
    try:
        return get_iban_spec(country).iban_length
    except iban_errors.SchwiftyException:
        return None


def _check_digits_hold(compact: str) -> bool:
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


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
