"""camt.052/053/054 reading, field by field, on small documents written here."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from sepa.bank_files import COLUMNS, BankFile, BankFileError, read_bank_file, to_cents

OWN_IBAN = "DE89370400440532013000"
MESSAGE_ELEMENT = {"camt.052": "BkToCstmrAcctRpt", "camt.053": "BkToCstmrStmt", "camt.054": "BkToCstmrDbtCdtNtfctn"}
STATEMENT_ELEMENT = {"camt.052": "Rpt", "camt.053": "Stmt", "camt.054": "Ntfctn"}


def camt_document(
    entries: list[str],
    *,
    kind: str = "camt.054",
    version: str = "001.08",
    namespace: str | None = "iso",
    prefix: str = "",
    balances: str = "",
    account: str = f"<IBAN>{OWN_IBAN}</IBAN>",
    statement_id: str = "S-1",
) -> bytes:
    """A camt document around `entries` (Ntry XML written without prefix; `prefix` is added to every tag)."""
    ns_uri = f"urn:iso:std:iso:20022:tech:xsd:{kind}.{version}" if namespace == "iso" else namespace
    declaration = "" if ns_uri is None else f' xmlns{":" + prefix if prefix else ""}="{ns_uri}"'
    body = (
        f"<Document{declaration}><{MESSAGE_ELEMENT[kind]}><GrpHdr><MsgId>MSG-1</MsgId>"
        f"<CreDtTm>2024-05-22T10:00:00</CreDtTm></GrpHdr><{STATEMENT_ELEMENT[kind]}><Id>{statement_id}</Id>"
        f"<Acct><Id>{account}</Id></Acct>{balances}\n" + "\n".join(entries) +
        f"\n</{STATEMENT_ELEMENT[kind]}></{MESSAGE_ELEMENT[kind]}></Document>\n"
    )  # fmt: skip
    if prefix:
        body = _prefixed(body, prefix)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def _prefixed(xml: str, prefix: str) -> str:
    import re

    return re.sub(r"<(/?)([A-Za-z])", lambda m: f"<{m.group(1)}{prefix}:{m.group(2)}", xml)


def entry(
    amount: str | None = '<Amt Ccy="EUR">12.50</Amt>',
    direction: str | None = "CRDT",
    status: str = "<Sts>BOOK</Sts>",
    details: str = "",
    refs: str = "<AcctSvcrRef>BANKREF-1</AcctSvcrRef>",
    code: str = "",
    extra: str = "",
) -> str:
    """One Ntry; `details` is the content of NtryDtls (TxDtls, Btch), none when empty."""
    parts = [
        amount or "",
        f"<CdtDbtInd>{direction}</CdtDbtInd>" if direction else "",
        extra, status, "<BookgDt><Dt>2024-05-21</Dt></BookgDt><ValDt><Dt>2024-05-22</Dt></ValDt>", refs, code,
        f"<NtryDtls>{details}</NtryDtls>" if details else "",
    ]  # fmt: skip
    return "<Ntry>" + "".join(parts) + "</Ntry>"


def domain(family: str, sub: str) -> str:
    return f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn></BkTxCd>"


def read(data: bytes) -> BankFile:
    return read_bank_file(data)


def only_row(data: bytes) -> dict:
    rows = read(data).rows
    assert len(rows) == 1, rows
    return rows.row(0, named=True)


# --- amounts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cents"),
    [("12.5", 1250), ("0.01", 1), ("100", 10000), ("1.230", 123), (" 7.00 ", 700), ("0", 0), ("+3.10", 310),
     ("12.", 1200), (".5", 50), ("1234567890123.45", 123456789012345)],
)  # fmt: skip
def test_decimal_text_to_cents_exactly(text: str, cents: int) -> None:
    assert to_cents(text) == (cents, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [("1.234", "more than 2 decimals"), ("-5.00", "negative"), ("1e3", "not a number"), ("abc", "not a number"),
     ("", "empty"), ("1,50", "not a number"), ("\u0663", "not a number"), ("12345678901234567", "too large"),
     ("0.005", "more than 2 decimals"), (".", "not a number")],
)  # fmt: skip
def test_amounts_that_are_never_guessed(text: str, why: str) -> None:
    cents, problem = to_cents(text)
    assert cents is None
    assert why in problem


def test_rows_have_exactly_the_bank_lines_columns() -> None:
    rows = read(camt_document([entry()])).rows
    assert rows.columns == list(COLUMNS)
    assert dict(rows.schema) == {name: dtype() for name, dtype in COLUMNS.items()}
    assert rows.schema["amount_cents"] == pl.Int64 and rows.schema["booking_date"] == pl.Date


# --- entries -------------------------------------------------------------------------------------------------


def test_entry_without_details_is_one_row_with_the_entry_amount() -> None:
    row = only_row(camt_document([entry()]))
    assert row["amount_cents"] == 1250 and row["currency"] == "EUR" and row["direction"] == "CRDT"
    assert row["booking_date"] == date(2024, 5, 21) and row["value_date"] == date(2024, 5, 22)
    assert row["message_type"] == "camt.054.001.08" and row["message_id"] == "MSG-1"
    assert row["account_iban"] == OWN_IBAN and row["entry_ref"] == "BANKREF-1"
    assert row["row_problem"] is None and row["reversal"] is False


@pytest.mark.parametrize("status", ["<Sts>BOOK</Sts>", "<Sts><Cd>BOOK</Cd></Sts>", "<Sts>\n  <Cd>BOOK</Cd>\n</Sts>"])
def test_status_as_text_or_code(status: str) -> None:
    assert only_row(camt_document([entry(status=status)]))["status"] == "BOOK"


def test_pending_and_info_statuses() -> None:
    rows = read(camt_document([entry(status="<Sts>PDNG</Sts>"), entry(status="<Sts><Cd>INFO</Cd></Sts>")])).rows
    assert rows["status"].to_list() == ["PDNG", "INFO"]


def test_entry_ref_falls_back_to_a_deterministic_statement_number() -> None:
    data = camt_document([entry(refs="<NtryRef>NR-1</NtryRef><AcctSvcrRef>A-1</AcctSvcrRef>"), entry(refs=""),
                          entry(refs="<AcctSvcrRef>A-3</AcctSvcrRef>"), entry(refs="")])  # fmt: skip
    assert read(data).rows["entry_ref"].to_list() == ["NR-1", "S-1#2", "A-3", "S-1#4"]
    assert read(data).rows["entry_ref"].to_list() == ["NR-1", "S-1#2", "A-3", "S-1#4"]  # the same on every read


def test_booking_date_as_date_time() -> None:
    xml = entry().replace("<Dt>2024-05-21</Dt>", "<DtTm>2024-05-20T23:59:00+02:00</DtTm>")
    assert only_row(camt_document([xml]))["booking_date"] == date(2024, 5, 20)


def test_batch_gives_one_row_per_transaction_with_its_own_amount() -> None:
    details = "<Btch><NbOfTxs>3</NbOfTxs><PmtInfId>PI-7</PmtInfId></Btch>" + "".join(
        f'<TxDtls><Refs><EndToEndId>E2E-{i}</EndToEndId></Refs><Amt Ccy="EUR">{amt}</Amt>'
        f"<CdtDbtInd>DBIT</CdtDbtInd></TxDtls>"
        for i, amt in enumerate(["10.00", "0.01", "5.49"])
    )
    rows = read(camt_document([entry('<Amt Ccy="EUR">15.50</Amt>', "DBIT", details=details)])).rows
    assert rows["amount_cents"].to_list() == [1000, 1, 549]
    assert rows["amount_cents"].sum() == 1550
    assert rows["end_to_end_id"].to_list() == ["E2E-0", "E2E-1", "E2E-2"]
    assert rows["payment_info_id"].to_list() == ["PI-7"] * 3  # from the batch when the transaction has none
    assert rows["entry_ref"].unique().to_list() == ["BANKREF-1"]


def test_v02_batch_amounts_in_amount_details() -> None:
    details = "".join(
        f'<TxDtls><AmtDtls><InstdAmt><Amt Ccy="EUR">{amt}</Amt></InstdAmt><TxAmt><Amt Ccy="EUR">{amt}</Amt></TxAmt>'
        f"</AmtDtls></TxDtls>"
        for amt in ["564.05", "100.00"]
    )
    batch = entry('<Amt Ccy="EUR">664.05</Amt>', "DBIT", details=details)
    doc = camt_document([batch], kind="camt.053", version="001.02")
    rows = read(doc).rows
    assert rows["amount_cents"].to_list() == [56405, 10000]
    assert rows["original_amount_cents"].to_list() == [56405, 10000]
    assert rows["direction"].to_list() == ["DBIT", "DBIT"]  # from the entry


def test_single_transaction_without_amount_takes_the_entry_amount() -> None:
    row = only_row(camt_document([entry(details="<TxDtls><Refs><EndToEndId>E-1</EndToEndId></Refs></TxDtls>")]))
    assert row["amount_cents"] == 1250 and row["end_to_end_id"] == "E-1"


def test_several_transactions_without_amounts_are_not_split() -> None:
    details = "".join(f"<TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs></TxDtls>" for e2e in "AB")
    rows = read(camt_document([entry(details=details)])).rows
    assert rows["amount_cents"].to_list() == [None, None]
    assert all("has no amount" in p and "line" in p for p in rows["row_problem"].to_list())


def test_not_provided_references_are_null() -> None:
    details = (
        "<TxDtls><Refs><PmtInfId>NOTPROVIDED</PmtInfId><InstrId>NOTPROVIDED</InstrId>"
        "<EndToEndId>NOTPROVIDED</EndToEndId><MndtId>M-1</MndtId></Refs></TxDtls>"
    )
    row = only_row(camt_document([entry(details=details)]))
    assert row["end_to_end_id"] is None and row["payment_info_id"] is None and row["instruction_id"] is None
    assert row["mandate_id"] == "M-1"


def test_duplicate_end_to_end_ids_stay_separate_rows() -> None:
    tx = "<TxDtls><Refs><EndToEndId>SAME-E2E</EndToEndId></Refs></TxDtls>"
    rows = read(camt_document([entry(details=tx), entry(details=tx)])).rows
    assert rows["end_to_end_id"].to_list() == ["SAME-E2E", "SAME-E2E"]
    assert rows["amount_cents"].to_list() == [1250, 1250]


def test_bank_transaction_code_domain_only() -> None:
    proprietary = "<BkTxCd><Prtry><Cd>NTRF+166</Cd><Issr>DK</Issr></Prtry></BkTxCd>"
    rows = read(camt_document([entry(code=domain("ICDT", "RRTN")), entry(code=proprietary)])).rows
    assert rows["bank_tx_code"].to_list() == ["PMNT/ICDT/RRTN", None]


def test_return_reason_and_info() -> None:
    tx = (
        "<TxDtls><RtrInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>Konto</AddtlInf><AddtlInf>erloschen</AddtlInf></RtrInf>"
        "</TxDtls>"
    )
    row = only_row(camt_document([entry(code=domain("ICDT", "RRTN"), details=tx)]))
    assert row["return_reason"] == "AC04" and row["return_info"] == "Konto erloschen"


def test_proprietary_return_reason_when_no_code() -> None:
    tx = "<TxDtls><RtrInf><Rsn><Prtry>X99</Prtry></Rsn></RtrInf></TxDtls>"
    assert only_row(camt_document([entry(details=tx)]))["return_reason"] == "X99"


def test_return_without_rtrinf_keeps_the_entry_text() -> None:
    tx = '<TxDtls><Amt Ccy="EUR">1.00</Amt></TxDtls>'
    xml = entry(code=domain("ICDT", "RRTN"), details=tx, extra="<RvslInd>true</RvslInd>").replace(
        "</Ntry>", "<AddtlNtryInf>RETOURE GRUND: KONTO UNBEKANNT</AddtlNtryInf></Ntry>"
    )
    row = only_row(camt_document([xml]))
    assert row["reversal"] is True and row["return_reason"] is None
    assert row["return_info"] == "RETOURE GRUND: KONTO UNBEKANNT"


def test_charges_total_records_and_v02() -> None:
    total = '<Chrgs><TtlChrgsAndTaxAmt Ccy="EUR">0.70</TtlChrgsAndTaxAmt><Rcrd><Amt Ccy="EUR">0.70</Amt></Rcrd></Chrgs>'
    records = (
        '<Chrgs><Rcrd><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd></Rcrd>'
        '<Rcrd><Amt Ccy="EUR">0.25</Amt><CdtDbtInd>CRDT</CdtDbtInd></Rcrd></Chrgs>'
    )
    v02 = '<Chrgs><Amt Ccy="EUR">3.00</Amt></Chrgs><Chrgs><Amt Ccy="EUR">0.50</Amt></Chrgs>'
    rows = read(camt_document([entry(details=f"<TxDtls>{c}</TxDtls>") for c in (total, records, v02)])).rows
    assert rows["charges_cents"].to_list() == [70, 75, 350]


def test_instructed_amount_in_another_currency_is_not_an_original_amount() -> None:
    tx = (
        '<TxDtls><AmtDtls><InstdAmt><Amt Ccy="USD">15.00</Amt></InstdAmt><TxAmt><Amt Ccy="EUR">12.50</Amt></TxAmt>'
        "</AmtDtls></TxDtls>"
    )
    row = only_row(camt_document([entry(details=tx)]))
    assert row["amount_cents"] == 1250 and row["original_amount_cents"] is None


def test_remittance_unstructured_joined_or_structured_reference() -> None:
    ustrd = "<TxDtls><RmtInf><Ustrd>Refund </Ustrd><Ustrd>order 42</Ustrd></RmtInf></TxDtls>"
    strd = "<TxDtls><RmtInf><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd></RmtInf></TxDtls>"
    rows = read(camt_document([entry(details=ustrd), entry(details=strd)])).rows
    assert rows["remittance"].to_list() == ["Refund order 42", "RF18539007547034"]


# --- counterparty ----------------------------------------------------------------------------------------------

PARTIES = (
    "<RltdPties><Dbtr><Nm>Debbie Debtor</Nm></Dbtr><DbtrAcct><Id><IBAN>{debtor}</IBAN></Id></DbtrAcct>"
    "<Cdtr><Pty><Nm>Carl Creditor</Nm></Pty></Cdtr><CdtrAcct><Id><IBAN>{creditor}</IBAN></Id></CdtrAcct></RltdPties>"
)


@pytest.mark.parametrize(
    ("direction", "debtor", "creditor", "name", "iban"),
    [
        ("CRDT", "FR7630006000011234567890189", OWN_IBAN, "Debbie Debtor", "FR7630006000011234567890189"),
        ("DBIT", OWN_IBAN, "NL91ABNA0417164300", "Carl Creditor", "NL91ABNA0417164300"),
        # A returned credit transfer that keeps the original parties: the account holder is the debtor.
        ("CRDT", OWN_IBAN, "NL91ABNA0417164300", "Carl Creditor", "NL91ABNA0417164300"),
        ("DBIT", "FR7630006000011234567890189", "FR7630006000011234567890189", "Carl Creditor",
         "FR7630006000011234567890189"),
        ("CRDT", OWN_IBAN, OWN_IBAN, "Carl Creditor", None),  # never the own account
    ],
)  # fmt: skip
def test_counterparty_is_the_other_party(direction: str, debtor: str, creditor: str, name: str, iban: str) -> None:
    tx = "<TxDtls>" + PARTIES.format(debtor=debtor, creditor=creditor) + "</TxDtls>"
    row = only_row(camt_document([entry(direction=direction, details=tx)]))
    assert (row["counterparty_name"], row["counterparty_iban"]) == (name, iban)


def test_reversal_with_only_the_original_debtor() -> None:
    tx = (
        "<TxDtls><RltdPties><Dbtr><Nm>Maria</Nm></Dbtr>"
        "<DbtrAcct><Id><IBAN>CH3709000000250094580</IBAN></Id></DbtrAcct></RltdPties></TxDtls>"
    )
    row = only_row(camt_document([entry(direction="DBIT", details=tx, extra="<RvslInd>true</RvslInd>")]))
    assert (row["counterparty_name"], row["counterparty_iban"]) == ("Maria", "CH3709000000250094580")


# --- problems ----------------------------------------------------------------------------------------------------


def test_money_problems_are_rows_with_a_reason_and_no_amount() -> None:
    entries = [
        entry('<Amt Ccy="EUR">1.234</Amt>'),
        entry('<Amt Ccy="EUR">-5.00</Amt>'),
        entry("<Amt>5.00</Amt>"),
        entry(direction=None),
        entry(amount=None),
        entry(direction="CRDX"),
        entry('<Amt Ccy="eur">5.00</Amt>'),
        entry(),
    ]
    rows = read(camt_document(entries)).rows
    problems = rows["row_problem"].to_list()
    assert rows["amount_cents"].to_list() == [None] * 7 + [1250]
    expected = ["more than 2 decimals", "negative", "no currency", "no CdtDbtInd", "no Amt", "neither CRDT nor DBIT",
                "not an ISO currency code"]  # fmt: skip
    for problem, words, line in zip(problems, expected, range(3, 10), strict=False):
        assert words in problem and f"line {line}" in problem, problem
    assert problems[-1] is None


@pytest.mark.parametrize("day", ["21.05.2024", "2024-13-45", "2024-02-30"])
def test_bad_date_is_a_problem(day: str) -> None:
    xml = entry().replace("2024-05-21", day)
    row = only_row(camt_document([xml]))
    assert row["amount_cents"] is None and "BookgDt" in row["row_problem"] and "not a date" in row["row_problem"]


# --- statements, namespaces ----------------------------------------------------------------------------------


def balance(code: str, amount: str, sign: str | None) -> str:
    indicator = f"<CdtDbtInd>{sign}</CdtDbtInd>" if sign else ""
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount}</Amt>{indicator}'
        "<Dt><Dt>2024-05-21</Dt></Dt></Bal>"
    )


def test_statement_header_and_signed_balances() -> None:
    balances = balance("OPBD", "100.00", "DBIT") + balance("CLBD", "87.50", "CRDT")
    bank_file = read(camt_document([entry()], kind="camt.053", balances=balances))
    (statement,) = bank_file.statements
    assert (statement.id, statement.account_iban, statement.entries) == ("S-1", OWN_IBAN, 1)
    assert (statement.opening_balance_cents, statement.closing_balance_cents) == (-10000, 8750)
    assert statement.balance_sign_missing is False
    assert bank_file.account_iban == OWN_IBAN and bank_file.message_id == "MSG-1"


def test_balance_without_sign_is_positive_and_flagged() -> None:
    balances = balance("PRCD", "100.00", None) + balance("CLBD", "87.50", "CRDT")
    (statement,) = read(camt_document([entry()], kind="camt.053", balances=balances)).statements
    assert statement.opening_balance_cents == 10000 and statement.balance_sign_missing is True


def test_account_in_other_id_when_it_is_an_iban() -> None:
    doc = camt_document([entry()], account="<Othr><Id>LT625883379695428516</Id></Othr>")
    assert read(doc).statements[0].account_iban == "LT625883379695428516"
    doc = camt_document([entry()], account="<Othr><Id>12345678</Id></Othr>")
    assert read(doc).statements[0].account_iban is None


@pytest.mark.parametrize(
    ("kind", "version"),
    [("camt.053", "001.02"), ("camt.053", "001.04"), ("camt.053", "001.08"), ("camt.054", "001.02"),
     ("camt.054", "001.04"), ("camt.054", "001.08"), ("camt.054", "001.10"), ("camt.052", "001.02"),
     ("camt.052", "001.08")],
)  # fmt: skip
def test_message_type_from_the_namespace(kind: str, version: str) -> None:
    bank_file = read(camt_document([entry()], kind=kind, version=version))
    assert bank_file.message_type == f"{kind}.{version}" and bank_file.version_known
    assert bank_file.notes == ()
    assert bank_file.rows["amount_cents"].to_list() == [1250]


def test_prefix_does_not_matter() -> None:
    row = only_row(camt_document([entry(details='<TxDtls><Amt Ccy="EUR">12.50</Amt></TxDtls>')], prefix="c"))
    assert row["amount_cents"] == 1250 and row["message_type"] == "camt.054.001.08"


def test_no_namespace_reads_as_the_message_kind() -> None:
    bank_file = read(camt_document([entry()], kind="camt.053", namespace=None))
    assert bank_file.message_type == "camt.053" and not bank_file.version_known
    assert "no namespace" in bank_file.notes[0]
    assert bank_file.rows["amount_cents"].to_list() == [1250]


def test_wrong_namespace_is_read_by_its_elements() -> None:
    other_version = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
    bank_file = read(camt_document([entry()], kind="camt.054", namespace=other_version))
    assert bank_file.message_type == "camt.054" and "does not name a camt.054" in bank_file.notes[0]
    bank_file = read(camt_document([entry()], namespace="http://example.com/bank"))
    assert bank_file.message_type == "camt.054" and len(bank_file.rows) == 1


def test_two_statements_in_one_file() -> None:
    doc = camt_document([entry()], kind="camt.053").decode()
    second = "<Stmt><Id>S-2</Id><Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></Acct>" + entry() + "</Stmt>"
    doc = doc.replace("</Stmt>", "</Stmt>" + second, 1)
    bank_file = read(doc.encode())
    assert [s.id for s in bank_file.statements] == ["S-1", "S-2"]
    assert bank_file.rows["account_iban"].to_list() == [OWN_IBAN, "FR7630006000011234567890189"]


def test_not_a_bank_statement() -> None:
    with pytest.raises(BankFileError, match="CstmrCdtTrfInitn"):
        read_bank_file(
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn/></Document>'
        )


def test_a_path_is_read_like_bytes(tmp_path: Path) -> None:
    path = tmp_path / "statement.xml"
    path.write_bytes(camt_document([entry()]))
    bank_file = read_bank_file(path)
    assert bank_file.name == "statement.xml" and bank_file.rows["amount_cents"].to_list() == [1250]
    assert read_bank_file(str(path)).rows.equals(bank_file.rows)
