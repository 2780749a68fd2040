"""Random byte mutations of a valid camt.054: the reader refuses (BankFileError) or reads, nothing else,
and never gives an amount on a row it has doubts about."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sepa.bank_files import BankFileError, BankLines, read_bank_file
from tests.sepa.test_camt_reader import camt_document, domain, entry

BATCH = (
    "<Btch><NbOfTxs>2</NbOfTxs></Btch>"
    '<TxDtls><Refs><EndToEndId>E-1</EndToEndId></Refs><Amt Ccy="EUR">7.25</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
    "<RltdPties><Dbtr><Nm>A</Nm></Dbtr><DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct></RltdPties>"
    "</TxDtls>"
    '<TxDtls><Refs><EndToEndId>E-2</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy="EUR">5.25</Amt></TxAmt></AmtDtls>'
    '<RtrInf><Rsn><Cd>AC01</Cd></Rsn></RtrInf><Chrgs><Amt Ccy="EUR">0.50</Amt></Chrgs></TxDtls>'
)
VALID = camt_document(
    [entry(), entry('<Amt Ccy="EUR">12.50</Amt>', "CRDT", details=BATCH, code=domain("ICDT", "RRTN")),
     entry('<Amt Ccy="EUR">0.01</Amt>', "DBIT", status="<Sts><Cd>PDNG</Cd></Sts>")]
)  # fmt: skip

# Bytes a mutation writes: XML syntax, digits, letters that make tags and codes, and arbitrary bytes.
INTERESTING = st.sampled_from([*b"<>/&;\"'=!?-.0123456789 \nCDEIRTUabt", 0x00, 0x80, 0xC3, 0xFF])
BYTE = st.one_of(INTERESTING, st.integers(0, 255))
EDIT = st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, len(VALID) - 1), BYTE)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    """Apply edits in order (positions wrap around the current length)."""
    buffer = bytearray(data)
    for kind, position, value in edits:
        if not buffer:
            break
        at = position % len(buffer)
        if kind == "replace":
            buffer[at] = value
        elif kind == "insert":
            buffer.insert(at, value)
        else:
            del buffer[at]
    return bytes(buffer)


def test_the_unmutated_document_reads() -> None:
    rows = read_bank_file(VALID).rows
    assert rows["amount_cents"].to_list() == [1250, 725, 525, 1]
    assert rows["row_problem"].null_count() == len(rows)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDIT, min_size=1, max_size=6))
def test_mutations_never_raise_anything_but_bank_file_error(edits: list[tuple[str, int, int]]) -> None:
    data = mutate(VALID, edits)
    try:
        bank_file = read_bank_file(data)
    except BankFileError as exc:
        message = str(exc)
        assert message.startswith("<bytes>: ") and "\n" not in message
        return
    rows = bank_file.rows
    BankLines.validate(rows)  # the frame handed out always satisfies its own schema
    doubtful = rows.filter(pl.col("row_problem").is_not_null() & pl.col("amount_cents").is_not_null())
    assert doubtful.is_empty(), doubtful
    silent = rows.filter(pl.col("amount_cents").is_null() & pl.col("row_problem").is_null())
    assert silent.is_empty(), silent  # a camt row without an amount says why
