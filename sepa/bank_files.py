"""Read what banks send back: camt.052/053/054 statements and notifications, pain.002 status reports.

    bank_file = read_bank_file("inbox/statement.xml")
    bank_file.message_type        # "camt.053.001.08" ("camt.053" when the file has no namespace)
    bank_file.rows                # Polars frame, one row per transaction, validated by BankLines

Files are read safely (no DTD or entities, no network, bounded size: see `sepa.safe_xml`) and streamed:
memory does not grow with the number of entries, only with the rows returned. A camt file of 64 MiB or more
is read by two processes, half each (`sepa.camt_split.SPLIT_MIN_BYTES`), with the same result. A file that cannot be
read at all raises `BankFileError` naming the file and line; a transaction that cannot be read exactly
(amount, currency, credit/debit) is a row with `row_problem` set and no amount, and the rest of the file
is still read.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sepa.bank_lines import COLUMNS, BankLines, RowBuffer, to_cents
from sepa.camt import Statement, read_camt
from sepa.pain002 import read_pain002
from sepa.safe_xml import DEFAULT_MAX_BYTES, BankFileError, Source, check_size, message_type_in, sniff, source_name

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_BYTES",
    "KINDS",
    "TESTED_MESSAGE_TYPES",
    "BankFile",
    "BankFileError",
    "BankLines",
    "Statement",
    "read_bank_file",
    "to_cents",
]

# Message element -> message kind. The element, not the namespace, decides: banks get namespaces wrong.
KINDS = {
    "BkToCstmrAcctRpt": "camt.052",
    "BkToCstmrStmt": "camt.053",
    "BkToCstmrDbtCdtNtfctn": "camt.054",
    "CstmrPmtStsRpt": "pain.002",
}
# The versions this reader was checked against (others are read too, with a note).
TESTED_MESSAGE_TYPES = frozenset({
    "camt.052.001.02", "camt.052.001.08",
    "camt.053.001.02", "camt.053.001.04", "camt.053.001.08",
    "camt.054.001.02", "camt.054.001.04", "camt.054.001.08", "camt.054.001.10",
    "pain.002.001.03", "pain.002.001.10", "pain.002.001.03.ch.02",
})  # fmt: skip


@dataclass(frozen=True)
class BankFile:
    """One bank file as read: what it is, its statements (camt) and its transactions as `rows`."""

    name: str
    message_type: str
    message_id: str | None
    account_iban: str | None
    statements: tuple[Statement, ...]
    rows: pl.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def version_known(self) -> bool:
        """False when the version could not be told (no namespace, or a namespace that does not fit)."""
        return self.message_type.count(".") >= 3


def _message_type(kind: str, namespace: str | None, notes: list[str]) -> str:
    declared = message_type_in(namespace)
    if declared and declared.startswith(kind):
        if declared not in TESTED_MESSAGE_TYPES:
            notes.append(f"{declared} is not one of the versions this reader was tested with; read as {kind}")
        return declared
    if namespace is None:
        notes.append(f"no namespace: read as {kind}, version unknown")
    else:
        notes.append(f"namespace {namespace[:120]!r} does not name a {kind} version: read as {kind}, version unknown")
    return kind


def read_bank_file(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> BankFile:
    """Read a camt.052/053/054 or pain.002 file (a path, or the document's bytes) safely and in bounded memory.

    Raises BankFileError (one line, naming the file and line where there is one) when the file is refused
    as a whole: larger than `max_bytes`, empty, a DOCTYPE or entity declarations, not well-formed or
    truncated, or not one of these messages.
    """
    name = source_name(source)
    check_size(source, max_bytes)
    sniffed = sniff(source)
    kind = KINDS.get(sniffed.message) or KINDS.get(sniffed.root)
    if kind is None:
        found = sniffed.message if sniffed.root == "Document" else sniffed.root
        raise BankFileError(
            f"{name}: line {sniffed.message_line}: <{found}> is not a camt.052/053/054 or pain.002 message"
        )
    notes: list[str] = []
    message_type = _message_type(kind, sniffed.namespace, notes)
    buffer = RowBuffer()
    statements: list[Statement] = []
    if kind == "pain.002":
        message_id = read_pain002(source, message_type, buffer)
    else:
        message_id, statements = read_camt(source, message_type, buffer, notes)
    rows = buffer.frame()
    if kind == "pain.002":
        own = rows.get_column("account_iban").drop_nulls()
        account = own[0] if len(own) else None
    else:
        account = next((s.account_iban for s in statements if s.account_iban), None)
    return BankFile(
        name=name, message_type=message_type, message_id=message_id, account_iban=account,
        statements=tuple(statements), rows=rows, notes=tuple(notes),
    )  # fmt: skip
