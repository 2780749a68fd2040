"""pain.002 payment status reports: original references, statuses at every level, reasons, direction."""

from __future__ import annotations

import pytest

from sepa.bank_files import read_bank_file

NS = {
    "pain.002.001.03": "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03",
    "pain.002.001.10": "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10",
    "pain.002.001.03.ch.02": "http://www.six-interbank-clearing.com/de/pain.002.001.03.ch.02.xsd",
}


def pain002(group: str, payments: str = "", version: str = "pain.002.001.03", namespace: bool = True) -> bytes:
    xmlns = f' xmlns="{NS[version]}"' if namespace else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document{xmlns}><CstmrPmtStsRpt>'
        f"<GrpHdr><MsgId>STS-1</MsgId><CreDtTm>2024-05-22T09:00:00</CreDtTm></GrpHdr>\n"
        f"<OrgnlGrpInfAndSts>{group}</OrgnlGrpInfAndSts>\n{payments}</CstmrPmtStsRpt></Document>"
    ).encode()


def reason_block(code: str, info: str = "", tag: str = "Cd") -> str:
    return f"<StsRsnInf><Rsn><{tag}>{code}</{tag}></Rsn>{f'<AddtlInf>{info}</AddtlInf>' if info else ''}</StsRsnInf>"


def tx(e2e: str, status: str | None = "RJCT", reason: str = "", ref: str = "") -> str:
    status_xml = f"<TxSts>{status}</TxSts>" if status else ""
    return (
        f"<TxInfAndSts><OrgnlInstrId>I-{e2e}</OrgnlInstrId><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId>"
        f"{status_xml}{reason}{ref}</TxInfAndSts>"
    )


def payment(pmt_id: str, content: str, status: str | None = None, reason: str = "") -> str:
    status_xml = f"<PmtInfSts>{status}</PmtInfSts>" if status else ""
    return (
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{pmt_id}</OrgnlPmtInfId>{status_xml}{reason}{content}</OrgnlPmtInfAndSts>\n"
    )


GROUP_SCT = "<OrgnlMsgId>PAY-2024-05-22-1</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId>"
GROUP_SDD = "<OrgnlMsgId>COL-2024-05-22-1</OrgnlMsgId><OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId>"


def test_group_reject_without_details_is_one_row() -> None:
    bank_file = read_bank_file(pain002(GROUP_SCT + "<GrpSts>RJCT</GrpSts>" + reason_block("DU01", "Duplicate")))
    assert bank_file.message_type == "pain.002.001.03" and bank_file.message_id == "STS-1"
    (row,) = bank_file.rows.iter_rows(named=True)
    assert (row["status"], row["return_reason"], row["return_info"]) == ("RJCT", "DU01", "Duplicate")
    assert row["message_id"] == "PAY-2024-05-22-1"  # the ORIGINAL message
    assert row["end_to_end_id"] is None and row["amount_cents"] is None and row["row_problem"] is None


def test_group_accepted_without_details_is_one_row_too() -> None:
    rows = read_bank_file(pain002(GROUP_SCT + "<GrpSts>ACTC</GrpSts>")).rows
    assert rows["status"].to_list() == ["ACTC"]


def test_payment_information_reject_without_transactions() -> None:
    doc = pain002(GROUP_SCT, payment("PMT-1", "", "RJCT", reason_block("AM10")) + payment("PMT-2", tx("E-3", "ACCP")))
    rows = read_bank_file(doc).rows
    assert rows.select("payment_info_id", "status", "return_reason", "end_to_end_id").rows() == [
        ("PMT-1", "RJCT", "AM10", None),
        ("PMT-2", "ACCP", None, "E-3"),
    ]


def test_transactions_with_original_references() -> None:
    doc = pain002(
        GROUP_SCT, payment("PMT-1", tx("E-1", reason=reason_block("AC04", "closed")) + tx("E-2", "ACSC"), "PART")
    )
    rows = read_bank_file(doc).rows
    assert rows.select("message_id", "payment_info_id", "instruction_id", "end_to_end_id", "status", "return_reason",
                       "return_info").rows() == [
        ("PAY-2024-05-22-1", "PMT-1", "I-E-1", "E-1", "RJCT", "AC04", "closed"),
        ("PAY-2024-05-22-1", "PMT-1", "I-E-2", "E-2", "ACSC", None, None),
    ]  # fmt: skip
    assert rows["direction"].to_list() == ["DBIT", "DBIT"]  # our credit transfers: money going out


def test_transaction_without_status_takes_the_batch_status_and_reason() -> None:
    doc = pain002(GROUP_SCT, payment("PMT-1", tx("E-1", None) + tx("E-2", None), "RJCT", reason_block("FF01")))
    rows = read_bank_file(doc).rows
    assert rows.select("status", "return_reason").rows() == [("RJCT", "FF01"), ("RJCT", "FF01")]


def test_partial_status_is_not_passed_down() -> None:
    doc = pain002(GROUP_SCT + "<GrpSts>ACCP</GrpSts>", payment("PMT-1", tx("E-1", None), "PART"))
    assert read_bank_file(doc).rows["status"].to_list() == [None]


def test_direct_debit_reject_names_the_debtor_and_the_instructed_amount() -> None:
    ref = (
        '<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">6543.14</InstdAmt></Amt><MndtRltdInf><MndtId>MNDT-1</MndtId>'
        "</MndtRltdInf><RmtInf><Ustrd>Invoice 9</Ustrd></RmtInf><Dbtr><Pty><Nm>Dora Debtor</Nm></Pty></Dbtr>"
        "<DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id></DbtrAcct><Cdtr><Pty><Nm>Us</Nm></Pty></Cdtr>"
        "<CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct></OrgnlTxRef>"
    )
    doc = pain002(GROUP_SDD, payment("PMT-1", tx("E-1", reason=reason_block("MD01"), ref=ref)), "pain.002.001.10")
    bank_file = read_bank_file(doc)
    row = bank_file.rows.row(0, named=True)
    assert bank_file.message_type == "pain.002.001.10"
    assert (row["direction"], row["amount_cents"], row["original_amount_cents"], row["currency"]) == (
        "CRDT", 654314, 654314, "EUR")  # fmt: skip
    assert (row["counterparty_name"], row["counterparty_iban"]) == ("Dora Debtor", "DE02120300000000202051")
    assert row["account_iban"] == "DE89370400440532013000" and bank_file.account_iban == "DE89370400440532013000"
    assert (row["mandate_id"], row["remittance"], row["return_reason"]) == ("MNDT-1", "Invoice 9", "MD01")


def test_credit_transfer_reject_names_the_creditor() -> None:
    ref = (
        "<OrgnlTxRef><Dbtr><Nm>Us</Nm></Dbtr><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct>"
        "<Cdtr><Nm>Chris Customer</Nm></Cdtr><CdtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></CdtrAcct>"
        "</OrgnlTxRef>"
    )
    row = read_bank_file(pain002(GROUP_SCT, payment("P", tx("E", ref=ref)))).rows.row(0, named=True)
    assert (row["counterparty_name"], row["counterparty_iban"], row["direction"]) == (
        "Chris Customer", "NL91ABNA0417164300", "DBIT")  # fmt: skip


def test_unreadable_instructed_amount_is_a_problem() -> None:
    ref = '<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">12.345</InstdAmt></Amt></OrgnlTxRef>'
    row = read_bank_file(pain002(GROUP_SDD, payment("P", tx("E", ref=ref)))).rows.row(0, named=True)
    assert row["amount_cents"] is None and "more than 2 decimals" in row["row_problem"]


def test_proprietary_reason_and_not_provided_e2e() -> None:
    doc = pain002(GROUP_SCT, payment("P", tx("NOTPROVIDED", reason=reason_block("X1", tag="Prtry"))))
    row = read_bank_file(doc).rows.row(0, named=True)
    assert row["end_to_end_id"] is None and row["return_reason"] == "X1"


@pytest.mark.parametrize("version", list(NS))
def test_versions_by_namespace(version: str) -> None:
    bank_file = read_bank_file(pain002(GROUP_SCT, payment("P", tx("E")), version))
    assert bank_file.message_type == version and bank_file.rows["status"].to_list() == ["RJCT"]


def test_no_namespace() -> None:
    bank_file = read_bank_file(pain002(GROUP_SDD, payment("P", tx("E", "ACSP")), namespace=False))
    assert bank_file.message_type == "pain.002" and not bank_file.version_known
    assert bank_file.rows["status"].to_list() == ["ACSP"]
