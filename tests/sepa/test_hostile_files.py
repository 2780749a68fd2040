"""Files nobody should send us: entities, bombs, deep nesting, truncation, bad money. Refused or contained."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sepa.bank_files import BankFile, BankFileError, read_bank_file
from tests.sepa.test_camt_reader import camt_document, entry

NS = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
PASSWD_MARKER = "root:"  # the first line of /etc/passwd on any Unix


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


def _with_doctype(doctype: str, body_entity: str = "&xxe;") -> bytes:
    document = camt_document([entry(refs=f"<AcctSvcrRef>{body_entity}</AcctSvcrRef>")]).decode()
    return document.replace("<Document", doctype + "\n<Document", 1).encode()


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE Document [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p; <!ENTITY xxe "x">]>',
        '<!DOCTYPE Document SYSTEM "file:///etc/passwd">',
        '<!DOCTYPE Document [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/secret">]>',
    ],
)
def test_external_entities_are_refused_and_never_read(doctype: str) -> None:
    if not Path("/etc/passwd").is_file() or PASSWD_MARKER not in Path("/etc/passwd").read_text(errors="replace"):
        pytest.skip("no /etc/passwd with a root: line to leak on this machine")
    started = time.perf_counter()
    outcome = _outcome(_with_doctype(doctype))
    assert isinstance(outcome, BankFileError), "a document with a DOCTYPE must be refused"
    assert "DOCTYPE" in str(outcome) or "entit" in str(outcome)
    assert PASSWD_MARKER not in _everything_said(outcome)
    assert time.perf_counter() - started < 1


def test_external_entity_in_a_status_report_too() -> None:
    doc = (
        b'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>&xxe;'
        b"</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"
    )
    outcome = _outcome(doc)
    assert isinstance(outcome, BankFileError) and PASSWD_MARKER not in _everything_said(outcome)


def _billion_laughs(where: str) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]  # 10^9 "lol"s if expanded
    prolog = '<?xml version="1.0"?>\n<!DOCTYPE Document [\n' + "\n".join(entities) + "\n]>\n"
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


def test_deeply_nested_elements_are_refused_fast() -> None:
    depth = 100_000
    doc = camt_document([entry()]).replace(b"<GrpHdr>", b"<GrpHdr>" + b"<x>" * depth + b"</x>" * depth, 1)
    started = time.perf_counter()
    with pytest.raises(BankFileError, match=r"line \d+: .*[Dd]epth"):
        read_bank_file(doc)
    assert time.perf_counter() - started < 1


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


def test_size_limit_is_checked_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"<not even xml" * 1000)
    with pytest.raises(BankFileError, match="over the limit of 1,000 bytes"):
        read_bank_file(path, max_bytes=1000)
    with pytest.raises(BankFileError, match="over the limit"):
        read_bank_file(camt_document([entry()]), max_bytes=100)
    assert len(read_bank_file(camt_document([entry()]), max_bytes=10_000).rows) == 1


def test_huge_text_node_is_refused() -> None:
    doc = camt_document([entry(details="<TxDtls><RmtInf><Ustrd>" + "A" * 11_000_000 + "</Ustrd></RmtInf></TxDtls>")])
    with pytest.raises(BankFileError):
        read_bank_file(doc)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01\x02garbage", b"%PDF-1.4 not a statement", b"<?xml version='1.0' encoding='UTF-9'?><Document/>",
     b"<Document xmlns='urn:x'/>", "<Document>\u00fc</Document>".encode("utf-16")[:9]],
)  # fmt: skip
def test_non_documents_are_refused(data: bytes) -> None:
    with pytest.raises(BankFileError):
        read_bank_file(data)


def test_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(BankFileError, match=r"nowhere\.xml"):
        read_bank_file(tmp_path / "nowhere.xml")


@pytest.mark.parametrize(
    "namespace", [None, "urn:iso:std:iso:20022:tech:xsd:camt.054.001.99", "urn:bank:own-dialect", ""]
)
def test_wrong_or_missing_namespace_is_read_by_element_names(namespace: str | None) -> None:
    bank_file = read_bank_file(camt_document([entry()], namespace=namespace))
    assert bank_file.message_type.startswith("camt.054")
    assert bank_file.rows["amount_cents"].to_list() == [1250]
    assert bank_file.notes  # the odd namespace is said


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


def test_duplicate_end_to_end_ids_are_kept() -> None:
    tx = "<TxDtls><Refs><EndToEndId>DUP-1</EndToEndId></Refs></TxDtls>"
    rows = read_bank_file(camt_document([entry(details=tx)] * 3)).rows
    assert rows["end_to_end_id"].to_list() == ["DUP-1"] * 3 and rows["amount_cents"].sum() == 3750
