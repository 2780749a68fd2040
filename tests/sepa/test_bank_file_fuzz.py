"""Bounded fuzzing of the bank-file readers: random byte edits and hostile money tokens in a valid camt.054,
camt.053 (with balances), camt.052 and pain.002. Whatever comes in, the reader either refuses the file
(`BankFileError`, one line naming it) or returns rows where a transaction whose amount, currency or direction
could not be read has a `row_problem` and no amount. Never another exception, never an amount that was not
written in the document (a zero, a rounding) standing for one that could not be read.

Each property runs a fixed number of examples (`max_examples`), so the whole module stays within seconds.
"""

from __future__ import annotations

import re

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sepa.bank_files import BankFile, BankFileError, BankLines, read_bank_file, to_cents
from sepa.bank_lines import CURRENCIES
from tests.reliability.figures import tally
from tests.sepa.test_camt_reader import balance, camt_document, domain, entry
from tests.sepa.test_pain002_reader import GROUP_SDD, pain002, payment, reason_block, tx

BATCH = (
    "<Btch><NbOfTxs>2</NbOfTxs></Btch>"
    '<TxDtls><Refs><EndToEndId>E-1</EndToEndId></Refs><Amt Ccy="EUR">7.25</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
    "<RltdPties><Dbtr><Nm>A</Nm></Dbtr><DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct></RltdPties>"
    "</TxDtls>"
    '<TxDtls><Refs><EndToEndId>E-2</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy="EUR">5.25</Amt></TxAmt></AmtDtls>'
    '<RtrInf><Rsn><Cd>AC01</Cd></Rsn></RtrInf><Chrgs><Amt Ccy="EUR">0.50</Amt></Chrgs></TxDtls>'
)
ENTRIES = [
    entry(),
    entry('<Amt Ccy="EUR">12.50</Amt>', "CRDT", details=BATCH, code=domain("ICDT", "RRTN")),
    entry('<Amt Ccy="EUR">0.01</Amt>', "DBIT", status="<Sts><Cd>PDNG</Cd></Sts>"),
]
# The camt.054 the fuzzing started with (also mutated by tests/sepa/test_camt_fast_paths.py).
VALID = camt_document(ENTRIES)
# A statement and an account report: the same entries between an opening and a closing balance that agree
# (100.00 + 12.50 + 12.50 booked, the pending 0.01 not).
BALANCES = balance("OPBD", "100.00", "CRDT") + balance("CLBD", "125.00", "CRDT")
CAMT053 = camt_document(ENTRIES, kind="camt.053", balances=BALANCES)
CAMT052 = camt_document(ENTRIES, kind="camt.052", balances=BALANCES)
_ORIGINAL = (
    '<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">{amount}</InstdAmt></Amt><MndtRltdInf><MndtId>MNDT-1</MndtId>'
    "</MndtRltdInf><Dbtr><Nm>Dora Debtor</Nm></Dbtr><DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id>"
    "</DbtrAcct></OrgnlTxRef>"
)
PAIN002 = pain002(
    GROUP_SDD + "<GrpSts>PART</GrpSts>",
    payment("PMT-1", tx("E-1", reason=reason_block("AM04", "Insufficient funds"), ref=_ORIGINAL.format(amount="65.43"))
            + tx("E-2", "ACCP", ref=_ORIGINAL.format(amount="0.99")))
    + payment("PMT-2", "", status="RJCT", reason=reason_block("MS03")),
)  # fmt: skip
DOCUMENTS = {"camt.054": VALID, "camt.053": CAMT053, "camt.052": CAMT052, "pain.002": PAIN002}

# Bytes a mutation writes: XML syntax, digits, letters that make tags and codes, and arbitrary bytes.
INTERESTING = st.sampled_from([*b"<>/&;\"'=!?-.0123456789 \nCDEIRTUabt", 0x00, 0x80, 0xC3, 0xFF])
BYTE = st.one_of(INTERESTING, st.integers(0, 255))
EDIT = st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, len(VALID) - 1), BYTE)
# Positions wrap around the document's length, so one strategy serves every document.
ANY_EDIT = st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, 1 << 20), BYTE)
# Whole runs of bytes moved: a slice (position, length) copied elsewhere or cut out (entries repeated,
# elements lost, a file cut short in the middle).
SPLICE = st.tuples(
    st.sampled_from(["copy", "cut"]), st.integers(0, 1 << 20), st.integers(1, 400), st.integers(0, 1 << 20)
)

# Hostile values for the texts that carry money: amounts, currencies, credit/debit indicators.
HOSTILE_AMOUNTS = [
    "1E3", "1e-2", "-0.01", "-12.50", "0.001", "12.505", "", " ", "NaN", "Infinity", "1,00", "0x10",
    "100000000000000000000.00", "92233720368547758.08", "9999999999999999999", "٣", "12.50.1", ".",
]  # fmt: skip
HOSTILE_CURRENCIES = ["XXX", "XTS", "QQQ", "EURO", "eur", "", " ", "E", "€", "EU R"]
HOSTILE_DIRECTIONS = ["", "crdt", "CRDTX", "DEBIT", "NONE"]
_AMOUNT_TEXT = re.compile(rb"(<(?:\w+:)?(?:Amt|InstdAmt|TtlAmt)\b[^>]*>)([^<]*)(</)")
_CURRENCY_ATTRIBUTE = re.compile(rb'Ccy="([^"]*)"')
_DIRECTION_TEXT = re.compile(rb"(<(?:\w+:)?CdtDbtInd>)([^<]*)(<)")
TOKEN_EDIT = st.one_of(
    st.tuples(st.just("amount"), st.integers(0, 50), st.sampled_from(HOSTILE_AMOUNTS)),
    st.tuples(st.just("currency"), st.integers(0, 50), st.sampled_from(HOSTILE_CURRENCIES)),
    st.tuples(st.just("direction"), st.integers(0, 50), st.sampled_from(HOSTILE_DIRECTIONS)),
)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    """Apply byte edits in order (positions wrap around the current length)."""
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


def splice(data: bytes, moves: list[tuple[str, int, int, int]]) -> bytes:
    """Apply slice moves in order: `copy` puts data[start:start+length] at `to`, `cut` removes it."""
    buffer = bytearray(data)
    for kind, start, length, to in moves:
        if not buffer:
            break
        at = start % len(buffer)
        piece = bytes(buffer[at : at + length])
        if kind == "copy":
            target = to % (len(buffer) + 1)
            buffer[target:target] = piece
        else:
            del buffer[at : at + length]
    return bytes(buffer)


def with_tokens(data: bytes, edits: list[tuple[str, int, str]]) -> bytes:
    """Replace the n-th (wrapping) amount text, Ccy attribute or CdtDbtInd text by a hostile value."""
    for kind, n, value in edits:
        pattern = {"amount": _AMOUNT_TEXT, "currency": _CURRENCY_ATTRIBUTE, "direction": _DIRECTION_TEXT}[kind]
        found = list(pattern.finditer(data))
        if not found:
            continue
        match = found[n % len(found)]
        text = value.encode()
        if kind == "currency":
            data = data[: match.start(1)] + text + data[match.end(1) :]
        else:
            data = data[: match.start(2)] + text + data[match.end(2) :]
    return data


_NUMBER_TEXT = re.compile(rb">\s*(\+?[0-9]*(?:\.[0-9]*)?)\s*<")


def written_amounts(data: bytes) -> set[int] | None:
    """The exact cents of every plain decimal written as an element's text; None when the document uses
    character references or CDATA (a number could then be written in another way)."""
    if b"&#" in data or b"CDATA" in data:
        return None
    amounts = set()
    for match in _NUMBER_TEXT.finditer(data):
        cents, _why = to_cents(match.group(1).decode())
        if cents is not None:
            amounts.add(cents)
    return amounts


def assert_refused_or_contained(data: bytes) -> BankFile | None:
    """The property: a one-line refusal naming the file, or rows where every amount given is one the
    document wrote, with an ISO currency (and, in camt, a direction), and every doubt said in row_problem."""
    try:
        bank_file = read_bank_file(data)
    except BankFileError as exc:
        message = str(exc)
        assert message.startswith("<bytes>: ") and len(message) > len("<bytes>: ") + 5 and "\n" not in message
        return None
    rows = bank_file.rows
    BankLines.validate(rows)  # the frame handed out always satisfies its own schema
    doubtful = rows.filter(pl.col("row_problem").is_not_null() & pl.col("amount_cents").is_not_null())
    assert doubtful.is_empty(), doubtful
    camt = pl.col("message_type").str.starts_with("camt")
    silent = rows.filter(camt & pl.col("amount_cents").is_null() & pl.col("row_problem").is_null())
    assert silent.is_empty(), silent  # a camt row without an amount says why
    with_amount = rows.filter(pl.col("amount_cents").is_not_null())
    assert set(with_amount["currency"].to_list()) <= CURRENCIES, with_amount  # never an amount without its currency
    undirected = with_amount.filter(camt & ~pl.col("direction").is_in(["CRDT", "DBIT"]).fill_null(False))
    assert undirected.is_empty(), undirected  # never a camt amount without its direction
    written = written_amounts(data)
    if written is not None:
        read = set(with_amount["amount_cents"].to_list()) | set(rows["original_amount_cents"].drop_nulls().to_list())
        assert read <= written, f"amounts {sorted(read - written)} are not written in the document"
    for statement in bank_file.statements:
        if statement.problems:
            assert all(p.startswith("line ") for p in statement.problems), statement.problems
    return bank_file


# --- the documents the fuzzing starts from -----------------------------------------------------------------------


def test_the_unmutated_documents_read() -> None:
    """Each starting document reads without a problem, so the mutations below start from a good file."""
    expected = {
        "camt.054": [1250, 725, 525, 1],
        "camt.053": [1250, 725, 525, 1],
        "camt.052": [1250, 725, 525, 1],
        "pain.002": [6543, 99, None],  # the rejected batch has no transactions: a status row without an amount
    }
    for kind, document in DOCUMENTS.items():
        bank_file = read_bank_file(document)
        assert bank_file.message_type.startswith(kind)
        assert bank_file.rows["amount_cents"].to_list() == expected[kind], kind
        assert bank_file.rows["row_problem"].null_count() == bank_file.rows.height, kind
    statement = read_bank_file(CAMT053).statements[0]
    assert (statement.opening_balance_cents, statement.closing_balance_cents) == (10000, 12500)


def test_the_property_catches_an_amount_not_in_the_document() -> None:
    """The check itself: an amount the document does not write would be caught."""
    assert written_amounts(VALID) is not None and 1250 in written_amounts(VALID)  # type: ignore[operator]
    assert 999 not in written_amounts(VALID)  # type: ignore[operator]
    assert with_tokens(VALID, [("currency", 0, "XXX")]).count(b'Ccy="XXX"') == 1


# --- the fuzzing --------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(EDIT, min_size=1, max_size=6))
def test_mutations_never_raise_anything_but_bank_file_error(edits: list[tuple[str, int, int]]) -> None:
    """Byte edits of the camt.054 (the original fuzz test)."""
    assert_refused_or_contained(mutate(VALID, edits))
    tally("bank files fuzzed")


@FUZZ
@given(st.sampled_from(sorted(DOCUMENTS)), st.lists(ANY_EDIT, min_size=1, max_size=8))
def test_byte_edits_of_every_kind_are_refused_or_contained(kind: str, edits: list[tuple[str, int, int]]) -> None:
    """Byte edits of camt.054, camt.053, camt.052 and pain.002."""
    assert_refused_or_contained(mutate(DOCUMENTS[kind], edits))
    tally("bank files fuzzed")


@FUZZ
@given(st.sampled_from(sorted(DOCUMENTS)), st.lists(SPLICE, min_size=1, max_size=3))
def test_moved_and_cut_runs_of_bytes_are_refused_or_contained(
    kind: str, moves: list[tuple[str, int, int, int]]
) -> None:
    """Runs of bytes copied or cut: repeated entries, lost elements, files cut short."""
    assert_refused_or_contained(splice(DOCUMENTS[kind], moves))
    tally("bank files fuzzed")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(DOCUMENTS)), st.lists(TOKEN_EDIT, min_size=1, max_size=4))
def test_hostile_money_is_never_read_as_money(kind: str, edits: list[tuple[str, int, str]]) -> None:
    """Amounts, currencies and credit/debit indicators replaced by hostile values: the file still reads
    (the XML is intact) and no row carries an amount the bank did not write plainly, in a currency, with a
    direction; a statement balance that cannot be read is None with its reason."""
    data = with_tokens(DOCUMENTS[kind], edits)
    bank_file = assert_refused_or_contained(data)
    assert bank_file is not None, "only texts and attributes changed: the document must still be read"
    hostile_amount = any(k == "amount" for k, _n, _v in edits)
    problems = bank_file.rows["row_problem"].drop_nulls().to_list()
    statement_problems = [p for s in bank_file.statements for p in s.problems]
    if hostile_amount:
        # Every amount text is read (entry, transaction, batch total, charges, balance or instructed amount):
        # a hostile one is said somewhere, as a problem of its row or of its statement, or in a note.
        assert problems or statement_problems or bank_file.notes
    tally("bank files fuzzed")
