"""SEPA creditor identifiers (AT-02), checked with python-stdnum."""

from __future__ import annotations

import re

from stdnum.eu import at_02
from stdnum.exceptions import ValidationError

# Country code, two check digits, a three-character business code (often ZZZ), then the national identifier.
# stdnum checks only the mod-97 check digits, so the shape is checked here.
_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{3}[A-Z0-9]{1,28}")


def normalise_creditor_id(cid: str) -> str:
    """A creditor identifier without spaces, in upper case (`de98 zzz0 9999 9999 99` -> `DE98ZZZ09999999999`)."""
    return "".join(cid.split()).upper()


def creditor_id_problem(cid: str) -> str | None:
    """Why `cid` is not a valid SEPA creditor identifier, or None if it is (spaces and case are ignored)."""
    compact = normalise_creditor_id(cid)
    if not compact:
        return "creditor identifier is empty"
    if not _SHAPE.fullmatch(compact):
        return f"creditor identifier {compact!r} is not country code + 2 check digits + business code + national id"
    try:
        at_02.validate(compact)
    except ValidationError:
        return f"creditor identifier {compact!r}: check digits do not match"
    return None
