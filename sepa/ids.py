"""Deterministic, SEPA-safe identifiers for files (MsgId), payment blocks (PmtInfId) and payments (EndToEndId).

A safe identifier has 1 to 35 characters of `A-Z a-z 0-9 / - ? : ( ) . , ' +`, no space, does not start with
`/` and has no `//` (the EPC's restriction on references). The same inputs always give the same identifier,
so a re-run of a partition writes the same ids; different inputs give different ids.
"""

from __future__ import annotations

import hashlib
import re

import polars as pl

MAX_ID_LEN = 35

_SAFE_RE = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")
# Parts that are used as they are; anything else is replaced by a digest. A part kept as it is never contains
# a `.`, a digested one always does, so the two can never produce the same identifier.
_PLAIN_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_DIGEST_LEN = 12

_KIND_PREFIX = {"pain.001": "PO", "pain.008": "DD"}  # payouts and direct debits
_PURPOSE_SUFFIX = {"payout": "PO", "collection": "DD"}


def is_safe_id(text: str) -> bool:
    """True if `text` may be used as a MsgId, PmtInfId or EndToEndId."""
    return _SAFE_RE.fullmatch(text) is not None and not text.startswith("/") and "//" not in text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_LEN]


def fit_part(text: str, max_len: int) -> str:
    """`text` itself if it is plain (letters, digits, inner dashes) and at most `max_len` long; otherwise its
    letters and digits, shortened, plus `.` and a digest of the whole text, in at most `max_len` characters.

    Deterministic, and distinct inputs give distinct outputs (up to a 48-bit digest collision).
    """
    if max_len < _DIGEST_LEN + 1:
        raise ValueError(f"max_len must be at least {_DIGEST_LEN + 1}, got {max_len}")
    if _PLAIN_PART.fullmatch(text) and len(text) <= max_len:
        return text
    readable = re.sub(r"[^A-Za-z0-9]", "", text)[: max_len - _DIGEST_LEN - 1]
    return f"{readable}.{_digest(text)}"


def msg_id(kind: str, partition: str, seq: int) -> str:
    """The MsgId of file number `seq` of a run: `PO-2024W21-0001` for pain.001, `DD-2024W21-0001` for pain.008.

    `partition` is used as it is when it is plain (letters, digits, dashes), so `2024-W21` gives
    `PO-2024-W21-0001`; otherwise, or when it is too long, it is shortened with a digest.
    """
    if kind not in _KIND_PREFIX:
        raise ValueError(f"kind must be one of {sorted(_KIND_PREFIX)}, got {kind!r}")
    if seq < 0:
        raise ValueError(f"seq must not be negative, got {seq}")
    seq_text = f"{seq:04d}"
    prefix = _KIND_PREFIX[kind]
    # The sequence number is the part after the last dash and has none itself, so the split is unambiguous.
    return f"{prefix}-{fit_part(partition, MAX_ID_LEN - len(prefix) - len(seq_text) - 2)}-{seq_text}"


def payment_info_id(msg_id: str, n: int) -> str:
    """The PmtInfId of payment block `n` of the file `msg_id`: `PO-2024W21-0001-1`.

    It leaves room for a 5-character suffix (`-FRST`) that the direct-debit writer adds per sequence type.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    n_text = str(n)
    return f"{fit_part(msg_id, MAX_ID_LEN - 5 - len(n_text) - 1)}-{n_text}"


def with_suffix(base: str, suffix: str) -> str:
    """`base` + `-` + `suffix` in at most 35 characters, shortening `base` (never the suffix) when needed.

    A `base` that is already a safe id and leaves room for the suffix is kept as it is, so a PmtInfId
    `PO-2024W21-0001-1` becomes `PO-2024W21-0001-1-FRST`.
    """
    if not _PLAIN_PART.fullmatch(suffix) or len(suffix) > 20:
        raise ValueError(f"suffix must be a short plain identifier, got {suffix!r}")
    room = MAX_ID_LEN - len(suffix) - 1
    kept = base if is_safe_id(base) and len(base) <= room else fit_part(base, room)
    return f"{kept}-{suffix}"


def end_to_end_id(refund_id: str, purpose: str) -> str:
    """The EndToEndId of a refund's payout (`RF…-PO`) or of its collection from the merchant (`RF…-DD`).

    The customer sees it on the statement and a return quotes it back, so it leads with the refund id.
    """
    if purpose not in _PURPOSE_SUFFIX:
        raise ValueError(f"purpose must be one of {sorted(_PURPOSE_SUFFIX)}, got {purpose!r}")
    return with_suffix(refund_id, _PURPOSE_SUFFIX[purpose])


def end_to_end_ids(refund_ids: pl.Series, purpose: str) -> pl.Series:
    """`end_to_end_id` of every value of `refund_ids`, vectorised: ids that are plain and short enough (all
    the platform's own) get the suffix appended in one expression; only the others go one by one."""
    if purpose not in _PURPOSE_SUFFIX:
        raise ValueError(f"purpose must be one of {sorted(_PURPOSE_SUFFIX)}, got {purpose!r}")
    suffix = _PURPOSE_SUFFIX[purpose]
    room = MAX_ID_LEN - len(suffix) - 1
    plain = refund_ids.str.contains(r"^[A-Za-z0-9][A-Za-z0-9-]*$") & (refund_ids.str.len_chars() <= room)
    frame = pl.DataFrame({"id": refund_ids, "plain": plain})
    odd = frame.filter(~pl.col("plain"))["id"].unique()
    spelt = {value: end_to_end_id(value, purpose) for value in odd.to_list()}
    return frame.select(
        pl.when(pl.col("plain"))
        .then(pl.col("id") + f"-{suffix}")
        .otherwise(pl.col("id").replace_strict(spelt, default=None, return_dtype=pl.String))
        .alias("end_to_end_id")
    )["end_to_end_id"]
