"""The sandbox bank's messages: our payment files read back, pain.002, camt.054 and camt.053 written, valid
against the XSDs, exact to the cent, batches, returns and balances right, large files streamed."""

from __future__ import annotations

import os
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from lxml import etree

from sepa.bank_messages import (
    CAMT053_VERSIONS,
    CAMT054_VERSIONS,
    ENTRY_COLUMNS,
    PAIN002_VERSIONS,
    build_camt053,
    build_camt054,
    build_pain002,
    read_payment_file,
    write_camt054,
)
from sepa.charset import to_epc
from sepa.iban import normalise_iban
from sepa.pain001 import VERSIONS as PAIN001_VERSIONS
from sepa.pain001 import build_credit_transfers
from sepa.pain008 import VERSIONS as PAIN008_VERSIONS
from sepa.pain008 import build_direct_debits, pmt_inf_id_for
from sepa.xsd import supported_message_types, validate_document
from tests.sepa.samples import CREATED_AT, EXECUTION_DATE, PLATFORM, ROWS, cents, debits, parse, texts, transfers

CORPUS = Path(os.environ.get("PAYOUTS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus"))
ACCOUNT = normalise_iban(PLATFORM.iban)
DAY = date(2024, 5, 22)
COLLECTION_DATE = date(2024, 5, 24)
PO_MSG, PO_PMT = "PO-2024W21-0001", "PO-2024W21-0001-1"
DD_MSG, DD_PMT = "DD-2024W21-0001", "DD-2024W21-0001-1"
CUSTOMER_IBAN = "DE02120300000000202051"
MERCHANT_IBAN = "FR7630006000011234567890189"


def assert_valid(data: bytes) -> None:
    """Valid against the XSD of its namespace: the package's, else the corpus's (pyiso20022-*.xsd)."""
    extra = [CORPUS / "xsd"] if (CORPUS / "xsd").is_dir() else []
    result = validate_document(data, extra_xsd_dirs=extra)
    if result.message_type not in supported_message_types(extra):
        message = f"no XSD for {result.message_type} in sepa/xsd or {CORPUS / 'xsd'}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert result.ok, [str(e) for e in result.errors]


def pain001(version: str = "pain.001.001.03") -> bytes:
    return build_credit_transfers(
        PLATFORM, transfers(), msg_id=PO_MSG, payment_info_id=PO_PMT, execution_date=EXECUTION_DATE,
        version=version, created_at=CREATED_AT,
    )  # fmt: skip


def pain008(version: str = "pain.008.001.02") -> bytes:
    return build_direct_debits(
        PLATFORM, debits(), msg_id=DD_MSG, payment_info_id=DD_PMT, collection_date=COLLECTION_DATE,
        version=version, created_at=CREATED_AT,
    )  # fmt: skip


def entry(**values: Any) -> dict[str, Any]:
    """One entries row: a payout of 10.00 EUR booked on DAY unless told otherwise."""
    row: dict[str, Any] = dict.fromkeys(ENTRY_COLUMNS)
    row.update(
        entry_ref="BK-1", booking_date=DAY, value_date=DAY, direction="DBIT", amount_cents=1000,
        bank_tx_code="PMNT/ICDT/ESCT", reversal=False, msg_id=PO_MSG, payment_info_id=PO_PMT,
        counterparty_name="Jörg Österle & Söhne", counterparty_iban=CUSTOMER_IBAN,
    )  # fmt: skip
    row.update(values)
    return row


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ENTRY_COLUMNS)


def mixed_entries() -> pl.DataFrame:
    """A payout batch of three, a returned payout with charges, a collection and a returned direct debit."""
    return frame([
        entry(entry_ref="BK-1", end_to_end_id="E2E-1", amount_cents=1, batch="PO", remittance="Erstattung O1"),
        entry(entry_ref="BK-1", end_to_end_id="E2E-2", amount_cents=99_999, batch="PO", counterparty_name="Zoé"),
        entry(entry_ref="BK-2", direction="CRDT", amount_cents=12_345, bank_tx_code="PMNT/IDDT/ESDD",
              msg_id=DD_MSG, payment_info_id=DD_PMT, end_to_end_id="E2E-DD-1", mandate_id="MNDT-M1",
              counterparty_name="Café Élise", counterparty_iban=MERCHANT_IBAN),
        entry(entry_ref="BK-1", end_to_end_id="E2E-3", amount_cents=12_345, batch="PO"),
        entry(entry_ref="BK-3", direction="CRDT", amount_cents=9_750, bank_tx_code="PMNT/ICDT/RRTN",
              end_to_end_id="E2E-2", return_reason="AC04", return_info="Konto aufgelöst",
              charges_cents=250, original_amount_cents=10_000),
        entry(entry_ref="BK-4", direction="DBIT", amount_cents=12_345, bank_tx_code="PMNT/IDDT/UPDD",
              reversal=True, msg_id=DD_MSG, payment_info_id=DD_PMT, end_to_end_id="E2E-DD-1",
              mandate_id="MNDT-M1", return_reason="AM04", counterparty_name="Café Élise",
              counterparty_iban=MERCHANT_IBAN),
    ])  # fmt: skip


def camt054(version: str = "camt.054.001.08", entries: pl.DataFrame | None = None) -> bytes:
    return build_camt054(
        msg_id="NTF-2024-05-22-1", created_at=CREATED_AT, account_iban=PLATFORM.iban,
        entries=mixed_entries() if entries is None else entries, version=version,
    )  # fmt: skip


def camt053(version: str = "camt.053.001.08", opening: int = 50_000, entries: pl.DataFrame | None = None) -> bytes:
    return build_camt053(
        msg_id="STM-2024-05-22", created_at=CREATED_AT, statement_id="STMT-2024-05-22", account_iban=PLATFORM.iban,
        opening_balance_cents=opening, entries=mixed_entries() if entries is None else entries, booking_date=DAY,
        version=version,
    )  # fmt: skip


# --- reading our payment files -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", PAIN001_VERSIONS)
def test_pain001_reads_back_row_for_row(version: str) -> None:
    content = read_payment_file(pain001(version))
    assert (content.message_type, content.msg_id, content.account_iban) == (version, PO_MSG, ACCOUNT)
    assert content.kind == "pain.001"
    rows = content.transactions
    assert rows["payment_info_id"].to_list() == [PO_PMT] * 4
    assert rows["end_to_end_id"].to_list() == ROWS["end_to_end_id"]
    assert rows["amount_cents"].to_list() == ROWS["amount_cents"]
    assert rows["requested_date"].to_list() == [EXECUTION_DATE] * 4
    assert rows["counterparty_iban"].to_list() == [normalise_iban(i) for i in ROWS["iban"]]
    assert rows["counterparty_name"].to_list() == [to_epc(n, 70) for n in ROWS["name"]]
    assert rows["counterparty_bic"].to_list() == ROWS["bic"]
    assert rows["remittance"].to_list() == [to_epc(r, 140) for r in ROWS["remittance"]]
    assert rows["mandate_id"].null_count() == rows["sequence_type"].null_count() == 4


@pytest.mark.parametrize("version", PAIN008_VERSIONS)
def test_pain008_reads_back_row_for_row(version: str) -> None:
    content = read_payment_file(pain008(version))
    assert (content.message_type, content.msg_id, content.account_iban) == (version, DD_MSG, ACCOUNT)
    expected = debits().with_columns(
        payment_info_id=pl.col("sequence_type").map_elements(lambda s: pmt_inf_id_for(DD_PMT, s), pl.String),
        iban=pl.col("iban").str.replace_all(" ", ""),
    )
    got = content.transactions.sort("end_to_end_id")
    expected = expected.sort("end_to_end_id")
    assert got["end_to_end_id"].to_list() == expected["end_to_end_id"].to_list()
    assert got["payment_info_id"].to_list() == expected["payment_info_id"].to_list()
    assert got["amount_cents"].to_list() == expected["amount_cents"].to_list()
    assert got["counterparty_iban"].to_list() == expected["iban"].to_list()
    assert got["mandate_id"].to_list() == expected["mandate_id"].to_list()
    assert got["mandate_signed_on"].to_list() == expected["mandate_signed_on"].to_list()
    assert got["sequence_type"].to_list() == expected["sequence_type"].to_list()
    assert got["requested_date"].to_list() == [COLLECTION_DATE] * 4


def test_payment_file_without_namespace_reads_the_same() -> None:
    for data in (pain001("pain.001.001.09"), pain008("pain.008.001.08")):
        bare = re.sub(rb'\sxmlns(:xsi)?="[^"]*"', b"", data, count=2)
        assert b"urn:iso" not in bare
        with_ns, without = read_payment_file(data), read_payment_file(bare)
        assert without.message_type == with_ns.message_type
        assert without.transactions.equals(with_ns.transactions)


def test_payment_file_refuses_doctype_other_messages_and_wrong_sums() -> None:
    data = pain001()
    with pytest.raises(ValueError, match="DOCTYPE"):
        read_payment_file(data.replace(b"?>", b'?>\n<!DOCTYPE x [<!ENTITY e "boom">]>', 1))
    with pytest.raises(ValueError, match=r"not a pain\.001 or pain\.008"):
        read_payment_file(camt054())
    with pytest.raises(ValueError, match="CtrlSum"):
        read_payment_file(data.replace(b">999.99<", b">999.98<"))
    with pytest.raises(ValueError, match="well-formed"):
        read_payment_file(data[:-40])


# --- pain.002 ----------------------------------------------------------------------------------------------


def rejections(content_rows: pl.DataFrame, codes: dict[str, str]) -> pl.DataFrame:
    return content_rows.filter(pl.col("end_to_end_id").is_in(list(codes))).select(
        "payment_info_id", "end_to_end_id", "amount_cents",
        reason_code=pl.col("end_to_end_id").replace_strict(codes, return_dtype=pl.String),
    )  # fmt: skip


@pytest.mark.parametrize("version", PAIN002_VERSIONS)
@pytest.mark.parametrize("with_original", [True, False])
def test_pain002_is_valid_and_says_what_was_rejected(version: str, with_original: bool) -> None:
    content = read_payment_file(pain008())
    e2e = ROWS["end_to_end_id"][1].replace("-PO", "-DD")  # 0.02 EUR in the FRST block
    rejected = rejections(content.transactions, {e2e: "AM04"})
    data = build_pain002(
        msg_id="STS-1", created_at=CREATED_AT, original_msg_id=content.msg_id,
        original_message_type=content.message_type, rejected=rejected, version=version,
        original=content.transactions if with_original else None,
    )  # fmt: skip
    assert_valid(data)
    root, ns = parse(data)
    assert texts(root, ns, "//p:OrgnlGrpInfAndSts/p:OrgnlMsgId") == [DD_MSG]
    assert texts(root, ns, "//p:OrgnlGrpInfAndSts/p:OrgnlMsgNmId") == ["pain.008.001.02"]
    assert texts(root, ns, "//p:GrpSts") == ["PART"]
    tx = root.xpath("//p:TxInfAndSts", namespaces=ns)
    assert len(tx) == 1
    assert texts(tx[0], ns, "p:OrgnlEndToEndId") == [e2e]
    assert texts(tx[0], ns, "p:TxSts") == ["RJCT"]
    assert texts(tx[0], ns, "p:StsRsnInf/p:Rsn/p:Cd") == ["AM04"]
    assert texts(tx[0], ns, "p:OrgnlTxRef/p:Amt/p:InstdAmt") == ["0.02"]
    assert texts(tx[0], ns, "p:OrgnlTxRef/p:Amt/p:InstdAmt/@Ccy") == ["EUR"]
    assert texts(tx[0], ns, "../p:OrgnlPmtInfId") == [pmt_inf_id_for(DD_PMT, "FRST")]
    if with_original:  # every block, with its counts and status
        assert texts(root, ns, "//p:OrgnlPmtInfAndSts/p:OrgnlPmtInfId") == [
            pmt_inf_id_for(DD_PMT, "FRST"), pmt_inf_id_for(DD_PMT, "RCUR")
        ]  # fmt: skip
        assert texts(root, ns, "//p:PmtInfSts") == ["PART", "ACCP"]
        assert texts(root, ns, "//p:OrgnlGrpInfAndSts/p:OrgnlNbOfTxs") == ["4"]
        assert cents(texts(root, ns, "//p:OrgnlGrpInfAndSts/p:OrgnlCtrlSum")[0]) == sum(ROWS["amount_cents"])
    else:
        assert texts(root, ns, "//p:OrgnlPmtInfAndSts/p:OrgnlPmtInfId") == [pmt_inf_id_for(DD_PMT, "FRST")]


@pytest.mark.parametrize("version", PAIN002_VERSIONS)
def test_pain002_group_status_accp_and_rjct(version: str) -> None:
    content = read_payment_file(pain001())
    none = rejections(content.transactions, {})
    everything = rejections(content.transactions, dict.fromkeys(ROWS["end_to_end_id"], "AC04"))
    for rejected, status, n_tx in ((none, "ACCP", 0), (everything, "RJCT", 4)):
        data = build_pain002(
            msg_id="STS-2", created_at=CREATED_AT, original_msg_id=PO_MSG, original_message_type=content.message_type,
            rejected=rejected, version=version, original=content.transactions,
        )  # fmt: skip
        assert_valid(data)
        root, ns = parse(data)
        assert texts(root, ns, "//p:GrpSts") == [status]
        assert texts(root, ns, "//p:PmtInfSts") == [status]
        assert len(root.xpath("//p:TxInfAndSts", namespaces=ns)) == n_tx
    assert b"<GrpSts>ACCP</GrpSts>" in build_pain002(
        msg_id="STS-3", created_at=CREATED_AT, original_msg_id=PO_MSG, original_message_type=content.message_type,
        rejected=none, version=version,
    )  # fmt: skip


def test_pain002_refuses_rejections_that_are_not_in_the_file() -> None:
    content = read_payment_file(pain001())
    rejected = pl.DataFrame(
        {"payment_info_id": [PO_PMT], "end_to_end_id": ["NOT-IN-FILE"], "amount_cents": [1], "reason_code": ["AC01"]}
    )
    args = {
        "msg_id": "S",
        "created_at": CREATED_AT,
        "original_msg_id": PO_MSG,
        "original_message_type": "pain.001.001.03",
    }
    with pytest.raises(ValueError, match="not in the original file"):
        build_pain002(**args, rejected=rejected, original=content.transactions)
    with pytest.raises(ValueError, match="reason_code"):
        build_pain002(**args, rejected=rejected.with_columns(reason_code=pl.lit("TOO-LONG")))
    with pytest.raises(ValueError, match="version"):
        build_pain002(**args, rejected=rejected, version="pain.002.001.99")


# --- camt.054 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", CAMT054_VERSIONS)
def test_camt054_is_valid_and_deterministic(version: str) -> None:
    data = camt054(version)
    assert_valid(data)
    assert camt054(version) == data
    root, ns = parse(data)
    assert len(root.xpath("//p:Ntfctn", namespaces=ns)) == 1
    assert texts(root, ns, "//p:Ntfctn/p:Acct/p:Id/p:IBAN") == [ACCOUNT]
    assert len(root.xpath("//p:Ntry", namespaces=ns)) == 4  # the batch of 3 is one entry
    status = "//p:Ntry/p:Sts/p:Cd" if version.endswith(".08") else "//p:Ntry/p:Sts"
    assert texts(root, ns, status) == ["BOOK"] * 4
    assert b"xmlns" not in data.split(b"\n", 2)[2]  # declared once, on Document


@pytest.mark.parametrize("version", CAMT054_VERSIONS)
def test_camt054_batch_is_one_entry_with_a_txdtls_per_transaction(version: str) -> None:
    root, ns = parse(camt054(version))
    batch = root.xpath("//p:Ntry[p:NtryDtls/p:Btch]", namespaces=ns)
    assert len(batch) == 1
    (ntry,) = batch
    assert cents(texts(ntry, ns, "p:Amt")[0]) == 1 + 99_999 + 12_345
    assert texts(ntry, ns, "p:CdtDbtInd") == ["DBIT"]
    assert texts(ntry, ns, "p:BkTxCd/p:Domn/p:Cd") + texts(ntry, ns, "p:BkTxCd/p:Domn/p:Fmly/*") == [
        "PMNT", "ICDT", "ESCT"
    ]  # fmt: skip
    assert texts(ntry, ns, "p:NtryDtls/p:Btch/p:NbOfTxs") == ["3"]
    assert texts(ntry, ns, "p:NtryDtls/p:Btch/p:MsgId") == [PO_MSG]
    assert texts(ntry, ns, "p:NtryDtls/p:Btch/p:PmtInfId") == [PO_PMT]
    assert cents(texts(ntry, ns, "p:NtryDtls/p:Btch/p:TtlAmt")[0]) == 1 + 99_999 + 12_345
    tx = ntry.xpath("p:NtryDtls/p:TxDtls", namespaces=ns)
    assert [texts(t, ns, "p:Refs/p:EndToEndId")[0] for t in tx] == ["E2E-1", "E2E-2", "E2E-3"]
    assert [cents(texts(t, ns, "p:AmtDtls/p:TxAmt/p:Amt")[0]) for t in tx] == [1, 99_999, 12_345]
    if version.endswith(".08"):
        assert [cents(texts(t, ns, "p:Amt")[0]) for t in tx] == [1, 99_999, 12_345]
        assert texts(ntry, ns, "p:NtryDtls/p:TxDtls/p:CdtDbtInd") == ["DBIT"] * 3
    names = "p:RltdPties/p:Cdtr/p:Pty/p:Nm" if version.endswith(".08") else "p:RltdPties/p:Cdtr/p:Nm"
    assert [texts(t, ns, names) for t in tx] == [["Jörg Österle & Söhne"], ["Zoé"], ["Jörg Österle & Söhne"]]
    assert texts(ntry, ns, "p:NtryDtls/p:TxDtls/p:RltdPties/p:CdtrAcct/p:Id/p:IBAN") == [CUSTOMER_IBAN] * 3
    assert texts(ntry, ns, "p:NtryDtls/p:TxDtls/p:RltdPties/p:DbtrAcct/p:Id/p:IBAN") == [ACCOUNT] * 3
    assert texts(ntry, ns, "p:NtryDtls/p:TxDtls/p:Refs/p:MsgId") == [PO_MSG] * 3
    assert texts(ntry, ns, "p:NtryDtls/p:TxDtls/p:RmtInf/p:Ustrd") == ["Erstattung O1"]


@pytest.mark.parametrize("version", CAMT054_VERSIONS)
def test_camt054_returns_carry_reason_charges_and_original_parties(version: str) -> None:
    root, ns = parse(camt054(version))
    v08 = version.endswith(".08")
    # A returned payout, credited back less 2.50 charges: the customer stays the creditor.
    (rrtn,) = root.xpath("//p:Ntry[p:BkTxCd/p:Domn/p:Fmly/p:SubFmlyCd='RRTN']", namespaces=ns)
    assert texts(rrtn, ns, "p:CdtDbtInd") == ["CRDT"] and cents(texts(rrtn, ns, "p:Amt")[0]) == 9_750
    (tx,) = rrtn.xpath("p:NtryDtls/p:TxDtls", namespaces=ns)
    assert texts(tx, ns, "p:RtrInf/p:Rsn/p:Cd") == ["AC04"]
    assert texts(tx, ns, "p:RtrInf/p:AddtlInf") == ["Konto aufgelöst"]
    assert cents(texts(tx, ns, "p:AmtDtls/p:InstdAmt/p:Amt")[0]) == 10_000
    assert cents(texts(tx, ns, "p:Chrgs/p:TtlChrgsAndTaxAmt")[0]) == 250
    assert cents(texts(tx, ns, "p:Chrgs/p:Rcrd/p:Amt" if v08 else "p:Chrgs/p:Amt")[0]) == 250
    assert texts(tx, ns, "p:RltdPties/p:CdtrAcct/p:Id/p:IBAN") == [CUSTOMER_IBAN]
    assert texts(tx, ns, "p:RltdPties/p:DbtrAcct/p:Id/p:IBAN") == [ACCOUNT]
    # A returned direct debit, reversed: the merchant stays the debtor.
    (updd,) = root.xpath("//p:Ntry[p:BkTxCd/p:Domn/p:Fmly/p:SubFmlyCd='UPDD']", namespaces=ns)
    assert texts(updd, ns, "p:CdtDbtInd") == ["DBIT"] and texts(updd, ns, "p:RvslInd") == ["true"]
    assert texts(updd, ns, ".//p:RtrInf/p:Rsn/p:Cd") == ["AM04"]
    assert texts(updd, ns, ".//p:Refs/p:MndtId") == ["MNDT-M1"]
    assert texts(updd, ns, ".//p:RltdPties/p:DbtrAcct/p:Id/p:IBAN") == [MERCHANT_IBAN]
    assert texts(updd, ns, ".//p:RltdPties/p:CdtrAcct/p:Id/p:IBAN") == [ACCOUNT]
    # An ordinary collection: the merchant is the debtor of a credit; no RtrInf anywhere else.
    (esdd,) = root.xpath("//p:Ntry[p:BkTxCd/p:Domn/p:Fmly/p:SubFmlyCd='ESDD']", namespaces=ns)
    assert texts(esdd, ns, ".//p:RltdPties/p:DbtrAcct/p:Id/p:IBAN") == [MERCHANT_IBAN]
    assert len(root.xpath("//p:RtrInf", namespaces=ns)) == 2


def test_writers_stream_to_a_path_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notification.xml"
    write_camt054(path, msg_id="NTF-2024-05-22-1", created_at=CREATED_AT, account_iban=PLATFORM.iban,
                  entries=mixed_entries())  # fmt: skip
    assert path.read_bytes() == camt054()


def test_camt054_refuses_batches_that_do_not_agree_and_bad_rows() -> None:
    rows = [entry(end_to_end_id="A", batch="B"), entry(end_to_end_id="B", batch="B", direction="CRDT")]
    with pytest.raises(ValueError, match="rows of a batch differ in direction"):
        camt054(entries=frame(rows))
    with pytest.raises(ValueError, match="amount_cents is not positive"):
        camt054(entries=frame([entry(amount_cents=0)]))
    with pytest.raises(ValueError, match="bank_tx_code"):
        camt054(entries=frame([entry(bank_tx_code="ESCT")]))
    with pytest.raises(ValueError, match="missing columns: entry_ref"):
        camt054(entries=frame([entry()]).drop("entry_ref"))


def test_camt054_optional_columns_may_be_left_out() -> None:
    minimal = frame([entry()]).select("entry_ref", "booking_date", "value_date", "direction", "amount_cents",
                                      "bank_tx_code")  # fmt: skip
    data = camt054(entries=minimal)
    assert_valid(data)
    root, ns = parse(data)
    assert texts(root, ns, "//p:TxDtls/p:Refs/p:EndToEndId") == ["NOTPROVIDED"]


# --- camt.053 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", CAMT053_VERSIONS)
@pytest.mark.parametrize("opening", [50_000, -200_000, 0])
def test_camt053_closing_balance_is_opening_plus_credits_minus_debits(version: str, opening: int) -> None:
    data = camt053(version, opening)
    assert_valid(data)
    root, ns = parse(data)
    credits = 12_345 + 9_750
    debits = (1 + 99_999 + 12_345) + 12_345
    closing = opening + credits - debits

    def balance(code: str) -> int:
        (bal,) = root.xpath(f"//p:Bal[p:Tp/p:CdOrPrtry/p:Cd='{code}']", namespaces=ns)
        amount = cents(texts(bal, ns, "p:Amt")[0])
        assert texts(bal, ns, "p:Dt/p:Dt") == [DAY.isoformat()]
        return amount if texts(bal, ns, "p:CdtDbtInd") == ["CRDT"] else -amount

    assert balance("OPBD") == opening
    assert balance("CLBD") == closing
    assert texts(root, ns, "//p:TxsSummry/p:TtlNtries/p:NbOfNtries") == ["4"]  # the batch of 3 is one
    assert texts(root, ns, "//p:TxsSummry/p:TtlCdtNtries/p:NbOfNtries") == ["2"]
    assert cents(texts(root, ns, "//p:TxsSummry/p:TtlCdtNtries/p:Sum")[0]) == credits
    assert cents(texts(root, ns, "//p:TxsSummry/p:TtlDbtNtries/p:Sum")[0]) == debits
    entry_sum = sum(
        cents(texts(n, ns, "p:Amt")[0]) * (1 if texts(n, ns, "p:CdtDbtInd") == ["CRDT"] else -1)
        for n in root.xpath("//p:Ntry", namespaces=ns)
    )
    assert opening + entry_sum == closing


def test_camt053_negative_balances_are_debit() -> None:
    root, ns = parse(camt053(opening=-1, entries=frame([entry(amount_cents=5)])))
    assert texts(root, ns, "//p:Bal/p:CdtDbtInd") == ["DBIT", "DBIT"]
    assert texts(root, ns, "//p:Bal/p:Amt") == ["0.01", "0.06"]
    root, ns = parse(camt053(opening=-1, entries=frame([entry(amount_cents=1, direction="CRDT")])))
    assert texts(root, ns, "//p:Bal/p:CdtDbtInd") == ["DBIT", "CRDT"]
    assert texts(root, ns, "//p:Bal/p:Amt") == ["0.01", "0.00"]


def test_camt053_without_entries_and_entries_of_another_day() -> None:
    data = camt053(opening=12_345, entries=frame([]))
    assert_valid(data)
    root, ns = parse(data)
    assert texts(root, ns, "//p:Bal/p:Amt") == ["123.45", "123.45"]
    with pytest.raises(ValueError, match="not booked on 2024-05-22"):
        camt053(entries=frame([entry(booking_date=date(2024, 5, 23))]))


# --- large files ---------------------------------------------------------------------------------------------


class _Sink:
    """A binary stream that writes through to a file and records the largest write call."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.largest = 0

    def write(self, chunk: bytes) -> int:
        self.largest = max(self.largest, len(chunk))
        return self.file.write(chunk)


def test_200000_transactions_are_streamed(tmp_path: Path) -> None:
    n = 200_000
    i = pl.int_range(0, n, eager=True)
    entries = pl.DataFrame({
        "entry_ref": "BK-" + i.cast(pl.String), "booking_date": [DAY] * n, "value_date": [DAY] * n,
        "direction": ["DBIT"] * n, "amount_cents": i % 100_000 + 1, "bank_tx_code": ["PMNT/ICDT/ESCT"] * n,
        "end_to_end_id": "RF" + i.cast(pl.String).str.zfill(20) + "-PO", "payment_info_id": [PO_PMT] * n,
        "msg_id": [PO_MSG] * n, "counterparty_name": ["Jörg Österle & Söhne"] * n,
        "counterparty_iban": [CUSTOMER_IBAN] * n, "remittance": "Erstattung Bestellung O" + i.cast(pl.String),
    })  # fmt: skip
    path = tmp_path / "camt054.xml"
    with path.open("wb") as file:
        sink = _Sink(file)
        started, cpu_started = time.perf_counter(), time.process_time()
        write_camt054(sink, msg_id="NTF-BIG", created_at=CREATED_AT, account_iban=ACCOUNT, entries=entries)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    size = path.stat().st_size
    print(
        f"\ncamt.054, {n:,} transactions, one entry each: {seconds:.1f} s ({cpu_seconds:.1f} s CPU), "
        f"{size / 1e6:.0f} MB"
    )
    assert sink.largest < 1_000_000  # written as it goes, never as one document
    tx_details = entries_seen = 0
    with path.open("rb") as handle:  # one element per line: counted line by line, in bounded memory
        head = handle.read(20_000).decode()
        handle.seek(0)
        for line in handle:
            tx_details += line.strip() == b"<TxDtls>"
            entries_seen += line.strip() == b"<Ntry>"
        assert line.strip() == b"</Document>"
    assert tx_details == entries_seen == n
    # The same shape, small, is valid; its first entry is the big file's first entry.
    small = camt054(entries=entries.head(3)).decode()
    assert_valid(small.encode())
    first = head[head.index("<Ntry>") : head.index("</Ntry>")]
    assert first == small[small.index("<Ntry>") : small.index("</Ntry>")]
    # About 6 s of CPU here (wall time doubles when the machine is shared): a guard against losing the
    # streaming, not a benchmark.
    assert cpu_seconds < 20, f"{cpu_seconds:.1f} s CPU"


# --- round trip through the bank-file reader -----------------------------------------------------------------


def test_round_trip_through_read_bank_file() -> None:
    bank_files = pytest.importorskip("sepa.bank_files")
    for version in CAMT054_VERSIONS + CAMT053_VERSIONS:
        data = camt054(version) if version.startswith("camt.054") else camt053(version, opening=-200_000)
        read = bank_files.read_bank_file(data)
        assert read.message_type == version and read.account_iban == ACCOUNT
        rows = read.rows.sort("entry_ref", "end_to_end_id")
        expected = mixed_entries().sort("entry_ref", "end_to_end_id")
        assert rows["end_to_end_id"].to_list() == expected["end_to_end_id"].to_list()
        assert rows["amount_cents"].to_list() == expected["amount_cents"].to_list()
        assert rows["direction"].to_list() == expected["direction"].to_list()
        assert rows["return_reason"].to_list() == expected["return_reason"].to_list()
        assert rows["charges_cents"].to_list() == expected["charges_cents"].to_list()
        assert rows["counterparty_iban"].to_list() == expected["counterparty_iban"].to_list()
        assert rows["reversal"].to_list() == expected["reversal"].to_list()
        assert rows["row_problem"].null_count() == rows.height
        if version.startswith("camt.053"):
            (statement,) = read.statements
            assert statement.opening_balance_cents == -200_000
            assert statement.closing_balance_cents == -200_000 + (12_345 + 9_750) - (1 + 99_999 + 12_345 + 12_345)

    content = read_payment_file(pain001())
    rejected = rejections(content.transactions, {ROWS["end_to_end_id"][2]: "AC04"})
    for version in PAIN002_VERSIONS:
        data = build_pain002(
            msg_id="STS-1", created_at=CREATED_AT, original_msg_id=PO_MSG, original_message_type=content.message_type,
            rejected=rejected, version=version, original=content.transactions,
        )  # fmt: skip
        rows = bank_files.read_bank_file(data).rows.filter(pl.col("status") == "RJCT")
        assert rows.select("end_to_end_id", "amount_cents", "return_reason", "payment_info_id").rows() == [
            (ROWS["end_to_end_id"][2], 99_999, "AC04", PO_PMT)
        ]  # fmt: skip


def test_documents_are_well_formed_utf8_with_one_element_per_line() -> None:
    data = camt054()
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<Document")
    assert etree.fromstring(data) is not None
    assert all(line.count(b"<") <= 2 for line in data.splitlines())
