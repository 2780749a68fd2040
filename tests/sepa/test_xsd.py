"""XSD validation: errors that name line, element and value; safe parsing; unknown namespaces explained."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sepa.pain001 import build_credit_transfers
from sepa.xsd import XsdError, message_type_of, supported_message_types, validate_document
from tests.sepa.samples import CREATED_AT, EXECUTION_DATE, PLATFORM, transfers

SHIPPED = ["pain.001.001.03", "pain.001.001.09", "pain.008.001.02", "pain.008.001.08"]


def good_file(version: str = "pain.001.001.03") -> bytes:
    return build_credit_transfers(PLATFORM, transfers(), msg_id="PO-2024W21-0001", payment_info_id="PO-2024W21-0001-1",
                                  execution_date=EXECUTION_DATE, version=version, created_at=CREATED_AT)  # fmt: skip


def line_of(data: bytes, needle: bytes, occurrence: int = 1) -> int:
    """The 1-based line on which `needle` occurs for the `occurrence`-th time."""
    at = -1
    for _ in range(occurrence):
        at = data.index(needle, at + 1)
    return data[:at].count(b"\n") + 1


def test_the_shipped_xsds_are_supported() -> None:
    assert set(SHIPPED) <= set(supported_message_types())


@pytest.mark.parametrize("version", ["pain.001.001.03", "pain.001.001.09"])
def test_an_emptied_iban_is_reported_with_line_element_and_value(version: str) -> None:
    data = good_file(version).replace(b"<IBAN>NL91ABNA0417164300</IBAN>", b"<IBAN></IBAN>")
    result = validate_document(data)
    assert not result.ok and result.message_type == version
    [error] = result.errors
    assert error.element == "/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[3]/CdtrAcct/Id/IBAN"
    assert error.value == ""
    assert error.line == line_of(data, b"<IBAN></IBAN>")
    assert "pattern" in error.message and "{urn:" not in error.message


def test_an_over_long_name_is_reported_with_its_length_and_value() -> None:
    long_name = "A" * 141  # the ISO XSD allows 140 (the EPC's 70 is a usage rule the XSD does not check)
    data = good_file().replace(b"<Nm>Zoe D'Angelo</Nm>", f"<Nm>{long_name}</Nm>".encode())
    [error] = validate_document(data).errors
    assert error.element == "/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[2]/Cdtr/Nm"
    assert error.value == long_name
    assert "141" in error.message and "140" in error.message
    assert error.line == line_of(data, long_name.encode())
    assert str(error).startswith(f"line {error.line}: /Document/")


def test_several_errors_each_point_at_their_element() -> None:
    data = (
        good_file()
        .replace(b'<InstdAmt Ccy="EUR">0.02</InstdAmt>', b'<InstdAmt Ccy="eur">0.02</InstdAmt>')
        .replace(b"<EndToEndId>RF00000000000000000004-PO</EndToEndId>", b"<EndToEndId></EndToEndId>")
        .replace(b"<ReqdExctnDt>2024-05-22</ReqdExctnDt>", b"<ReqdExctnDt>22.05.2024</ReqdExctnDt>")
    )
    errors = validate_document(data).errors
    by_element = {e.element: e for e in errors}
    ccy = by_element["/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[2]/Amt/InstdAmt/@Ccy"]
    assert ccy.value == "eur" and ccy.line == line_of(data, b'Ccy="eur"')
    e2e = by_element["/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[4]/PmtId/EndToEndId"]
    assert e2e.value == "" and "at least 1" in e2e.message
    when = by_element["/Document/CstmrCdtTrfInitn/PmtInf/ReqdExctnDt"]
    assert when.value == "22.05.2024" and "ISODate" in when.message
    assert len({e.line for e in errors}) == 3


def test_an_unexpected_element_names_what_was_expected() -> None:
    data = good_file().replace(b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>SLEV</ChrgBr><Surprise>1</Surprise>")
    [error] = validate_document(data).errors
    assert error.element.endswith("/PmtInf/Surprise")
    assert "not expected" in error.message and "CdtTrfTxInf" in error.message


@pytest.mark.parametrize("version", ["pain.001.001.03", "pain.001.001.09"])
@pytest.mark.parametrize(
    "old, new, valid",
    [
        (b"", b"", True),  # as written
        (b"<IBAN>NL91ABNA0417164300</IBAN>", b"<IBAN></IBAN>", False),
        (b"<Nm>Zoe D'Angelo</Nm>", b"<Nm>" + b"A" * 141 + b"</Nm>", False),
        (b"<Nm>Zoe D'Angelo</Nm>", b"<Nm> </Nm>", True),  # a blank text is a text (1 character), not indentation
        (b"<EndToEndId>RF00000000000000000004-PO</EndToEndId>", b"<EndToEndId>\n</EndToEndId>", True),
        (b"<EndToEndId>RF00000000000000000004-PO</EndToEndId>", b"<EndToEndId></EndToEndId>", False),
        (b'<InstdAmt Ccy="EUR">0.02</InstdAmt>', b'<InstdAmt Ccy="eur">0.02</InstdAmt>', False),
        (b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>SLEV</ChrgBr>\n      <Surprise>1</Surprise>", False),
    ],
)
def test_our_own_files_parsed_without_indentation_get_the_same_verdict(
    version: str, old: bytes, new: bytes, valid: bool
) -> None:
    data = good_file(version).replace(old, new) if old else good_file(version)
    as_read = validate_document(data)
    assert validate_document(data, indented_by_us=True) == as_read
    assert as_read.ok is valid


def test_a_doctype_with_an_external_entity_is_refused_unresolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    data = (
        good_file()
        .replace(
            b"<?xml version='1.0' encoding='UTF-8'?>",
            f'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file://{secret}">]>'.encode(),
        )
        .replace(b"<Nm>Zoe D'Angelo</Nm>", b"<Nm>&xxe;</Nm>")
    )
    result = validate_document(data)
    assert not result.ok
    assert any("DOCTYPE" in e.message for e in result.errors)
    assert "TOP-SECRET-MARKER" not in repr(result)


def test_entity_expansion_is_refused_quickly() -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    data = f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY l0 "lol">{lol}]><d>&l9;</d>'.encode()
    started = time.perf_counter()
    result = validate_document(data)
    assert time.perf_counter() - started < 1
    # Refused either for the DOCTYPE or, earlier, by libxml2's entity amplification limit: never expanded.
    assert not result.ok and ("DOCTYPE" in result.errors[0].message or "entity" in result.errors[0].message)


def test_an_unknown_namespace_is_explained() -> None:
    data = (
        b'<?xml version="1.0"?>\n<Document xmlns="http://www.six-interbank-clearing.com/de/pain.001.001.03.ch.02.xsd"/>'
    )
    result = validate_document(data)
    assert result.message_type is None
    [error] = result.errors
    assert "six-interbank-clearing" in error.message
    assert all(v in error.message for v in SHIPPED)
    assert error.line == 2


def test_no_namespace_is_explained() -> None:
    [error] = validate_document(b"<Document><CstmrPmtStsRpt/></Document>").errors
    assert "no namespace" in error.message


def test_an_iso_message_without_an_xsd_is_explained() -> None:
    data = b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.099.001.01"/>'
    result = validate_document(data)
    assert result.message_type == "camt.099.001.01"
    [error] = result.errors
    assert "no XSD" in error.message and "camt.099.001.01" in error.message


@pytest.mark.parametrize("data", [b"", b"not xml at all", b"<Document><Open></Document>", b"\xff\xfe<<"])
def test_malformed_input_gives_errors_not_exceptions(data: bytes) -> None:
    result = validate_document(data)
    assert not result.ok
    assert all(isinstance(e, XsdError) and e.line >= 1 and "well-formed" in e.message for e in result.errors)


def test_a_syntax_error_reports_its_line() -> None:
    data = good_file().replace(b"</Cdtr>", b"</Cdtor>", 1)
    result = validate_document(data)
    assert result.message_type == "pain.001.001.03"  # still known from the root element
    assert result.errors[0].line == line_of(data, b"</Cdtor>")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"><x/></Document>', "pain.008.001.08"),
        (b'<?xml version="1.0"?><!-- c --><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>',
         "camt.053.001.02"),
        (b'<Document xmlns="http://example.org/pain.001.001.03"/>', None),
        (b"<Document/>", None),
        (b"garbage", None),
        (b"", None),
    ],
)  # fmt: skip
def test_message_type_of(data: bytes, expected: str | None) -> None:
    assert message_type_of(data) == expected


def test_extra_xsd_folders_are_searched(tmp_path: Path) -> None:
    ns = "urn:iso:std:iso:20022:tech:xsd:test.001.001.01"
    (tmp_path / "vendor-test.001.001.01.xsd").write_text(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{ns}" elementFormDefault="qualified">'
        '<xs:element name="Document"><xs:simpleType><xs:restriction base="xs:string"><xs:maxLength value="3"/>'
        "</xs:restriction></xs:simpleType></xs:element></xs:schema>"
    )
    assert validate_document(f'<Document xmlns="{ns}">abc</Document>'.encode(), extra_xsd_dirs=[tmp_path]).ok
    [error] = validate_document(f'<Document xmlns="{ns}">abcd</Document>'.encode(), extra_xsd_dirs=[tmp_path]).errors
    assert error.element == "/Document" and error.value == "abcd"
    assert not validate_document(f'<Document xmlns="{ns}">abc</Document>'.encode()).ok  # not without the folder
