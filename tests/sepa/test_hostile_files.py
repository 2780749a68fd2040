"""Files nobody should send us: entities, bombs, deep nesting, truncation, bad money. Refused or contained.

A file refused as a whole raises `BankFileError` with one line naming the file (and the line, where there is
one) and what is wrong; a transaction whose money cannot be read exactly is a row with `row_problem` naming the
line and the problem, and no amount. Every kind of bank file is checked: camt.052, camt.053, camt.054, pain.002.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from sepa.bank_files import BankFile, BankFileError, read_bank_file
from tests.reliability.figures import tally
from tests.sepa.test_camt_reader import balance, camt_document, entry
from tests.sepa.test_pain002_reader import GROUP_SCT, GROUP_SDD, pain002, payment, tx

NS = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
PASSWD_MARKER = "root:"  # the first line of /etc/passwd on any Unix
KINDS = ["camt.052", "camt.053", "camt.054", "pain.002"]


def _everything_said(outcome: BankFile | BaseException) -> str:
    """All text a caller could see: the error, or every cell, note and statement of the result."""
    if isinstance(outcome, BaseException):
        return str(outcome) + repr(outcome.args)
    return " ".join([outcome.rows.write_csv(), repr(outcome.notes), repr(outcome.statements), str(outcome.message_id)])


def _outcome(data: bytes | Path) -> BankFile | BankFileError:
    try:
        return read_bank_file(data)
    except BankFileError as exc:
        return exc


def refused(data: bytes | Path, pattern: str, name: str = "<bytes>") -> str:
    """The file is refused whole with one line that starts with its name and matches `pattern`; counted."""
    with pytest.raises(BankFileError) as caught:
        read_bank_file(data)
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and "\n" not in message, message
    assert re.search(pattern, message), message
    tally("hostile bank files refused")
    return message


def document(kind: str) -> bytes:
    """A small valid file of `kind` (GrpHdr/MsgId on line 2, for the entity attacks to use)."""
    if kind == "pain.002":
        ref = '<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">12.50</InstdAmt></Amt></OrgnlTxRef>'
        return pain002(GROUP_SCT, payment("PMT-1", "\n".join(tx(f"E-{i}", ref=ref) for i in range(6))))
    balances = balance("OPBD", "0.00", "CRDT") + balance("CLBD", "75.00", "CRDT") if kind != "camt.054" else ""
    return camt_document([entry() for _ in range(6)], kind=kind, balances=balances)


def _with_doctype(doctype: str, body_entity: str = "&xxe;") -> bytes:
    document = camt_document([entry(refs=f"<AcctSvcrRef>{body_entity}</AcctSvcrRef>")]).decode()
    return document.replace("<Document", doctype + "\n<Document", 1).encode()


def _with_doctype_in(kind: str, doctype: str, reference: str) -> bytes:
    """`document(kind)` with `doctype` before the root and `reference` as its MsgId."""
    text = document(kind).decode().replace("<Document", doctype + "\n<Document", 1)
    return re.sub(r"<MsgId>[^<]*</MsgId>", f"<MsgId>{reference}</MsgId>", text, count=1).encode()


ENTITY_ATTACKS = {
    "external file": ('<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"),
    "parameter entity": ('<!DOCTYPE Document [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p; <!ENTITY xxe "x">]>',
                         "&xxe;"),
    "external DTD": ('<!DOCTYPE Document SYSTEM "file:///etc/passwd">', "x"),
    "network": ('<!DOCTYPE Document [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/secret">]>', "&xxe;"),
}  # fmt: skip


@pytest.mark.parametrize("doctype", [doctype for doctype, _ in ENTITY_ATTACKS.values()], ids=list(ENTITY_ATTACKS))
def test_external_entities_are_refused_and_never_read(doctype: str) -> None:
    if not Path("/etc/passwd").is_file() or PASSWD_MARKER not in Path("/etc/passwd").read_text(errors="replace"):
        pytest.skip("no /etc/passwd with a root: line to leak on this machine")
    started = time.perf_counter()
    outcome = _outcome(_with_doctype(doctype))
    assert isinstance(outcome, BankFileError), "a document with a DOCTYPE must be refused"
    assert "DOCTYPE" in str(outcome) or "entit" in str(outcome)
    assert PASSWD_MARKER not in _everything_said(outcome)
    assert time.perf_counter() - started < 1
    tally("hostile bank files refused")


@pytest.mark.parametrize("attack", list(ENTITY_ATTACKS))
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_bank_file_refuses_entities_naming_the_line(kind: str, attack: str) -> None:
    """camt.052/053/054 and pain.002 alike: a DOCTYPE is refused at the root element, on its line, and nothing
    of /etc/passwd (or of the network) is ever read."""
    doctype, reference = ENTITY_ATTACKS[attack]
    message = refused(
        _with_doctype_in(kind, doctype, reference),
        r"^<bytes>: line 3: refused: the document has a DOCTYPE \(DTDs and entity declarations are not allowed",
    )
    assert PASSWD_MARKER not in message


def test_external_entity_in_a_status_report_too() -> None:
    doc = (
        b'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>&xxe;'
        b"</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"
    )
    outcome = _outcome(doc)
    assert isinstance(outcome, BankFileError) and PASSWD_MARKER not in _everything_said(outcome)
    tally("hostile bank files refused")


def _billion_laughs(where: str, kind: str = "camt.054") -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]  # 10^9 "lol"s if expanded
    doctype = "<!DOCTYPE Document [\n" + "\n".join(entities) + "\n]>"
    if kind != "camt.054":
        return _with_doctype_in(kind, doctype, "&lol9;")
    prolog = '<?xml version="1.0"?>\n' + doctype + "\n"
    if where == "attribute":
        return (prolog + f'<Document xmlns="{NS}" a="&lol9;"><BkToCstmrDbtCdtNtfctn/></Document>').encode()
    return (prolog + f'<Document xmlns="{NS}"><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>&lol9;</MsgId>'
            "</GrpHdr></BkToCstmrDbtCdtNtfctn></Document>").encode()  # fmt: skip


@pytest.mark.parametrize("where", ["element", "attribute"])
def test_billion_laughs_is_refused_in_well_under_a_second(where: str) -> None:
    started = time.perf_counter()
    with pytest.raises(BankFileError, match=r"DOCTYPE|entit") as caught:
        read_bank_file(_billion_laughs(where))
    elapsed = time.perf_counter() - started
    assert elapsed < 1, f"took {elapsed:.2f} s"
    assert "lollol" not in str(caught.value)
    tally("hostile bank files refused")


@pytest.mark.parametrize("kind", ["camt.052", "camt.053", "pain.002"])
def test_billion_laughs_in_statements_and_status_reports_too(kind: str) -> None:
    started = time.perf_counter()
    message = refused(_billion_laughs("element", kind), r"^<bytes>: line \d+: refused: the document has a DOCTYPE")
    assert time.perf_counter() - started < 1 and "lollol" not in message


def test_deeply_nested_elements_are_refused_fast() -> None:
    depth = 100_000
    doc = camt_document([entry()]).replace(b"<GrpHdr>", b"<GrpHdr>" + b"<x>" * depth + b"</x>" * depth, 1)
    started = time.perf_counter()
    with pytest.raises(BankFileError, match=r"line \d+: .*[Dd]epth"):
        read_bank_file(doc)
    assert time.perf_counter() - started < 1
    tally("hostile bank files refused")


def test_deeply_nested_status_report_is_refused_too() -> None:
    depth = 100_000
    doc = document("pain.002").replace(b"<GrpHdr>", b"<GrpHdr>" + b"<x>" * depth + b"</x>" * depth, 1)
    refused(doc, r"^<bytes>: line 2: not well-formed or truncated XML \(.*[Dd]epth")


def test_nesting_inside_an_entry_under_the_parser_limit_is_read() -> None:
    # 200 levels inside a transaction: within libxml2's limit of 256, and no recursion error in the reader.
    deep = "<TxDtls><AddtlTxInf>" + "<x>" * 200 + "deep" + "</x>" * 200 + "</AddtlTxInf></TxDtls>"
    rows = read_bank_file(camt_document([entry(details=deep), entry()])).rows
    assert rows["amount_cents"].to_list() == [1250, 1250]


@pytest.mark.parametrize("cut", [-40, -200, -3])
def test_truncated_file_is_refused_naming_file_and_line(tmp_path: Path, cut: int) -> None:
    whole = camt_document([entry() for _ in range(8)])
    path = tmp_path / "cut-off.xml"
    path.write_bytes(whole[:cut])
    last_line = whole[:cut].count(b"\n") + 1
    with pytest.raises(BankFileError) as caught:
        read_bank_file(path)
    message = str(caught.value)
    assert message.startswith("cut-off.xml: line ") and "\n" not in message
    line = int(message.split("line ", 1)[1].split(":", 1)[0])
    assert last_line - 1 <= line <= last_line
    assert "truncated" in message
    tally("hostile bank files refused")


@pytest.mark.parametrize("share", [0.3, 0.6, 0.95])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_cut_short_is_refused_whole(tmp_path: Path, kind: str, share: float) -> None:
    """A statement, report or status report cut anywhere is refused whole, naming the file and a line at the
    cut: none of the transactions before the cut is handed out."""
    whole = document(kind)
    part = whole[: int(len(whole) * share)]
    path = tmp_path / f"{kind}-cut.xml"
    path.write_bytes(part)
    message = refused(path, r"truncated", name=path.name)
    line = int(re.match(rf"^{re.escape(path.name)}: line (\d+):", message).group(1))  # type: ignore[union-attr]
    assert line in (part.count(b"\n"), part.count(b"\n") + 1)


def test_size_limit_is_checked_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"<not even xml" * 1000)
    with pytest.raises(BankFileError, match="over the limit of 1,000 bytes"):
        read_bank_file(path, max_bytes=1000)
    tally("hostile bank files refused")
    with pytest.raises(BankFileError, match="over the limit"):
        read_bank_file(camt_document([entry()]), max_bytes=100)
    tally("hostile bank files refused")
    assert len(read_bank_file(camt_document([entry()]), max_bytes=10_000).rows) == 1


def test_huge_text_node_is_refused() -> None:
    doc = camt_document([entry(details="<TxDtls><RmtInf><Ustrd>" + "A" * 11_000_000 + "</Ustrd></RmtInf></TxDtls>")])
    with pytest.raises(
        BankFileError, match=r"^<bytes>: line 3: not well-formed or truncated XML \(.*Text node too long"
    ):
        read_bank_file(doc)
    tally("hostile bank files refused")


PAIN001 = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'>"
    b"<CstmrCdtTrfInitn><GrpHdr><MsgId>PAY-1</MsgId></GrpHdr></CstmrCdtTrfInitn></Document>"
)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"", r"^<bytes>: the file is empty$"),
        (b"\x00\x01\x02garbage", r"^<bytes>: line 1: not well-formed or truncated XML \(Start tag expected"),
        (b"%PDF-1.4 not a statement", r"^<bytes>: line 1: not well-formed or truncated XML \(Start tag expected"),
        (b"<?xml version='1.0' encoding='UTF-9'?><Document/>", r"^<bytes>: line 1: .*Unsupported encoding: UTF-9"),
        (b"<Document xmlns='urn:x'/>", r"^<bytes>: line 1: <Document> is not a camt\.052/053/054 or pain\.002 message"),
        ("<Document>\u00fc</Document>".encode("utf-16")[:9], r"^<bytes>: line 1: not well-formed or truncated XML"),
        (PAIN001, r"^<bytes>: line 2: <CstmrCdtTrfInitn> is not a camt\.052/053/054 or pain\.002 message"),
        (b"<html><body>camt.053</body></html>", r"^<bytes>: line 1: <html> is not a camt\.052/053/054 or pain\.002"),
        (b"<Document/><Document/>", r"^<bytes>: line 1: not well-formed or truncated XML \(Extra content"),
    ],
    ids=["empty", "binary", "pdf", "unknown encoding", "empty document", "utf-16 cut", "our own pain.001",
         "html", "two roots"],
)  # fmt: skip
def test_non_documents_are_refused(data: bytes, pattern: str) -> None:
    """Not a bank file at all, or the wrong message (a payment file of ours put in the bank inbox): refused
    whole, saying what was found."""
    refused(data, pattern)


def test_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(BankFileError, match=r"nowhere\.xml"):
        read_bank_file(tmp_path / "nowhere.xml")


@pytest.mark.parametrize(
    ("namespace", "note"),
    [
        (None, "no namespace: read as camt.054, version unknown"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.054.001.99",
         "camt.054.001.99 is not one of the versions this reader was tested with; read as camt.054"),
        ("urn:bank:own-dialect",
         "namespace 'urn:bank:own-dialect' does not name a camt.054 version: read as camt.054, version unknown"),
        ("", "no namespace: read as camt.054, version unknown"),
        ("urn:iso:std:iso:20022:tech:xsd:pain.002.001.03", "namespace 'urn:iso:std:iso:20022:tech:xsd:pain.002.001.03' "
         "does not name a camt.054 version: read as camt.054, version unknown"),
    ],
)  # fmt: skip
def test_wrong_or_missing_namespace_is_read_by_element_names(namespace: str | None, note: str) -> None:
    """Banks get namespaces wrong: the message element decides, and the odd namespace is said in a note."""
    bank_file = read_bank_file(camt_document([entry()], namespace=namespace))
    assert bank_file.message_type.startswith("camt.054")
    assert bank_file.rows["amount_cents"].to_list() == [1250]
    assert bank_file.notes == (note,)


def test_bad_money_is_contained_in_its_row() -> None:
    entries = [
        entry('<Amt Ccy="EUR">10.005</Amt>'),
        entry('<Amt Ccy="EUR">-10.00</Amt>'),
        entry("<Amt>10.00</Amt>"),
        entry(direction=None),
        entry('<Amt Ccy="EUR">1.00</Amt>'),
        entry('<Amt Ccy="EUR">2.00</Amt>', direction="DBIT"),
    ]
    rows = read_bank_file(camt_document(entries)).rows
    assert rows["amount_cents"].to_list() == [None, None, None, None, 100, 200]
    problems = rows["row_problem"].to_list()
    assert "more than 2 decimals" in problems[0] and "negative" in problems[1]
    assert "no currency" in problems[2] and "CdtDbtInd" in problems[3]
    assert problems[4:] == [None, None]
    assert all(p.startswith("line ") for p in problems[:4])
    assert rows.filter(rows["row_problem"].is_not_null())["amount_cents"].null_count() == 4  # never a zero


# What an amount or currency may be, and what is said of it when it cannot be money.
BAD_MONEY = [
    ('Ccy="XXX">10.00', "currency 'XXX' is ISO 4217's code for no currency, not money"),
    ('Ccy="XTS">10.00', "currency 'XTS' is ISO 4217's code for testing, not money"),
    ('Ccy="QQQ">10.00', "currency 'QQQ' is not an ISO 4217 currency code"),
    ('Ccy="EURO">10.00', "currency 'EURO' is not an ISO currency code"),
    ('Ccy="eur">10.00', "currency 'eur' is not an ISO currency code"),
    ('Ccy="">10.00', "has no currency (Ccy)"),
    ('Ccy="EUR">-10.00', "'-10.00' is negative"),
    ('Ccy="EUR">-0.00', "'-0.00' is negative"),
    ('Ccy="EUR">10.005', "'10.005' has more than 2 decimals"),
    ('Ccy="EUR">0.0001', "'0.0001' has more than 2 decimals"),
    ('Ccy="EUR">1E3', "'1E3' is not a number"),
    ('Ccy="EUR">1e-2', "'1e-2' is not a number"),
    ('Ccy="EUR">100000000000000000000.00', "'100000000000000000000.00' is too large"),  # 10^20 EUR
    ('Ccy="EUR">92233720368547758.08', "'92233720368547758.08' is too large"),  # one cent over int64
    ('Ccy="EUR">NaN', "'NaN' is not a number"),
    ('Ccy="EUR">Infinity', "'Infinity' is not a number"),
    ('Ccy="EUR">10,00', "'10,00' is not a number"),
    ('Ccy="EUR">١٢', "'١٢' is not a number"),  # Arabic-Indic digits: int() would read them
    ('Ccy="EUR">', "is empty"),
]
MONEY_IDS = [amount.replace('"', "").replace(">", " ").strip() for amount, _ in BAD_MONEY]


@pytest.mark.parametrize(("amount", "problem"), BAD_MONEY, ids=MONEY_IDS)
def test_each_bad_amount_or_currency_is_an_exception_of_its_row(amount: str, problem: str) -> None:
    """Unknown currency, negative, too many decimals, exponent, absurdly large, not a number: the row has no
    amount (never a zero, never rounded) and says line, element and problem; the row beside it is read."""
    bad = entry(f"<Amt {amount}</Amt>")
    rows = read_bank_file(camt_document([bad, entry()])).rows
    assert rows["amount_cents"].to_list() == [None, 1250]
    assert rows["row_problem"].to_list() == [f"line 3: Ntry/Amt {problem}", None]


@pytest.mark.parametrize(("amount", "problem"), BAD_MONEY[::3], ids=MONEY_IDS[::3])
def test_bad_money_in_one_transaction_of_a_batch_is_that_transaction_only(amount: str, problem: str) -> None:
    """A batch entry of three: the middle TxDtls has bad money; the two others keep their own amounts."""
    details = "".join(
        f"<TxDtls><Refs><EndToEndId>E-{n}</EndToEndId></Refs><Amt {a}</Amt></TxDtls>"
        for n, a in enumerate(['Ccy="EUR">5.00', amount, 'Ccy="EUR">2.50'], start=1)
    )
    rows = read_bank_file(camt_document([entry(details=details)])).rows
    assert rows["end_to_end_id"].to_list() == ["E-1", "E-2", "E-3"]
    assert rows["amount_cents"].to_list() == [500, None, 250]
    assert rows["row_problem"].to_list() == [None, f"line 3: Amt {problem}", None]


@pytest.mark.parametrize(("amount", "problem"), BAD_MONEY[::2], ids=MONEY_IDS[::2])
def test_bad_instructed_amount_in_a_status_report_is_an_exception_of_its_row(amount: str, problem: str) -> None:
    """pain.002: the amount a status is about is the one we instructed; unreadable, the row has no amount
    and says why, and its status and references are still read."""
    bad = f"<OrgnlTxRef><Amt><InstdAmt {amount}</InstdAmt></Amt></OrgnlTxRef>"
    good = '<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">65.43</InstdAmt></Amt></OrgnlTxRef>'
    rows = read_bank_file(pain002(GROUP_SDD, payment("P", tx("E-1", ref=bad) + tx("E-2", ref=good)))).rows
    assert rows.select("end_to_end_id", "status", "amount_cents").rows() == [
        ("E-1", "RJCT", None),
        ("E-2", "RJCT", 6543),
    ]
    assert rows["row_problem"].to_list() == [f"line 4: OrgnlTxRef/Amt/InstdAmt {problem}", None]


def test_unreadable_statement_balances_are_none_with_their_reason() -> None:
    """camt.053: a balance in no currency, negative, or with a wrong sign is not read as a number; the
    statement says which balance, on which line, and why; the entries are still read."""
    balances = (
        balance("OPBD", "10.00", "CRDT").replace('Ccy="EUR"', 'Ccy="XXX"')
        + balance("CLBD", "-12.50", "CRDT")
        + balance("CLAV", "5.00", "crdt")
    )
    bank_file = read_bank_file(camt_document([entry()], kind="camt.053", balances=balances))
    (statement,) = bank_file.statements
    assert (statement.opening_balance_cents, statement.closing_balance_cents) == (None, None)
    assert statement.problems == (
        "line 2: Stmt/Bal OPBD Amt currency 'XXX' is ISO 4217's code for no currency, not money",
        "line 2: Stmt/Bal CLBD Amt '-12.50' is negative",
    )
    assert bank_file.rows["amount_cents"].to_list() == [1250]
    wrong_sign = balance("OPBD", "10.00", "CRDT") + balance("CLBD", "22.50", "credit")
    (statement,) = read_bank_file(camt_document([entry()], kind="camt.053", balances=wrong_sign)).statements
    assert statement.closing_balance_cents is None
    assert statement.problems == ("line 2: Stmt/Bal CLBD CdtDbtInd 'credit' is neither CRDT nor DBIT",)


def test_unreadable_batch_total_is_said_in_a_note() -> None:
    """A batch whose own total cannot be read: each transaction keeps its exact amount, and a note says the
    total could not be checked."""
    details = "".join(
        f'<TxDtls><Refs><EndToEndId>E-{n}</EndToEndId></Refs><Amt Ccy="EUR">{a}</Amt></TxDtls>'
        for n, a in enumerate(["5.00", "2.50"], start=1)
    )
    bank_file = read_bank_file(camt_document([entry('<Amt Ccy="EUR">7.5E0</Amt>', details=details)]))
    assert bank_file.rows["amount_cents"].to_list() == [500, 250]
    assert bank_file.notes == (
        "line 3: the entry's Amt cannot be read (line 3: Amt '7.5E0' is not a number); its 2 transactions were "
        "read one by one",
    )


def test_duplicate_end_to_end_ids_are_kept() -> None:
    """The reader hands out every transaction, repeated or not: telling a repeat from a second booking is the
    ledger's job (tests/assets/test_hostile_bank_files.py)."""
    tx_details = "<TxDtls><Refs><EndToEndId>DUP-1</EndToEndId></Refs></TxDtls>"
    rows = read_bank_file(camt_document([entry(details=tx_details)] * 3)).rows
    assert rows["end_to_end_id"].to_list() == ["DUP-1"] * 3 and rows["amount_cents"].sum() == 3750
