"""The reader against the shared corpus of real bank files ($PAYOUTS_CORPUS, default ../shared/corpus).

Every camt.052/053/054 and pain.002 file is read without an exception; for each file in SOURCES.md's
"Returns and reason codes at a glance" table the returns, rejects and reason codes it lists are found;
batch transactions add up to what the file says; a counterparty is never the statement's own account.
Without the corpus these tests skip, except on CI (CI=true), where a missing corpus is a failure.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from decimal import Decimal
from functools import cache
from typing import Any

import polars as pl
import pytest
from lxml import etree

from sepa.bank_files import BankFile, BankLines, read_bank_file
from sepa.iban import normalise_iban
from tests.conftest import corpus_dir

CORPUS = corpus_dir()
INCOMING = ("camt052", "camt053", "camt054", "pain002")
GLANCE_HEADING = "## Returns and reason codes at a glance"


def _require_corpus() -> None:
    if (CORPUS / "SOURCES.md").is_file():
        return
    reason = f"no bank file corpus at {CORPUS} (set $PAYOUTS_CORPUS to its folder)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + ": on CI the corpus is required")
    pytest.skip(reason)


def _incoming_files() -> list[str]:
    return sorted(f"{folder}/{p.name}" for folder in INCOMING for p in (CORPUS / folder).glob("*.xml"))


def _glance_rows() -> list[dict[str, str]]:
    """The 'at a glance' table of SOURCES.md: file, message/version, return or reject, reason codes."""
    sources = CORPUS / "SOURCES.md"
    if not sources.is_file():
        return []
    rows, inside = [], False
    for line in sources.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line.strip() == GLANCE_HEADING
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if inside and len(cells) == 4 and cells[0].endswith(".xml"):
            row = dict(zip(("file", "message", "returns", "reasons"), cells, strict=True))
            row["file"] = _resolve(row["file"])
            rows.append(row)
    return rows


def _resolve(listed: str) -> str:
    """The table shortens long names with `…`: the one corpus file that fits, else the name as listed."""
    if "…" not in listed:
        return listed
    folder, _, pattern = listed.partition("/")
    found = sorted((CORPUS / folder).glob(pattern.replace("…", "*")))
    return f"{folder}/{found[0].name}" if len(found) == 1 else listed


@cache
def _read(name: str) -> BankFile:
    return read_bank_file(CORPUS / name)


GLANCE = _glance_rows()

# What each file of the glance table must show: one dict per expected row (a different row each), with the
# values its columns must have. Written from the files themselves; where SOURCES.md counts otherwise, it says.
RRTN, UPDD = "PMNT/ICDT/RRTN", "PMNT/IDDT/UPDD"
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "camt053/libeufin-de.camt.053.001.02.xml": [
        {"bank_tx_code": RRTN, "return_reason": "AC01", "direction": "CRDT", "amount_cents": 112,
         "end_to_end_id": None, "counterparty_name": "Nonexistent Creditor",
         "counterparty_iban": "DE24500105177398216438", "return_info": "IBAN fehlerhaft und ungültig"},
    ],
    "camt053/libeufin-gls_camt053.xml": [
        {"bank_tx_code": RRTN, "return_reason": "AC01", "direction": "CRDT", "amount_cents": 110,
         "end_to_end_id": "G27KNKZAR5DV7HRB085YMA9GB4"},
    ],
    "camt053/iso20022js-ing-example_camt.xml": [
        {"bank_tx_code": "PMNT/RCDT/RRTN", "return_reason": "AC04", "direction": "CRDT"},  # RCDT, not ICDT
        {"bank_tx_code": UPDD, "return_reason": "MD06", "direction": "DBIT", "reversal": True},
    ],
    # SOURCES.md says "4× IDDT/UPDD": the file has two such entries (MS03 appears twice more, in their texts).
    "camt053/iso20022js-abnamro-example_camt.xml": [
        {"bank_tx_code": UPDD, "return_reason": "MS03", "reversal": True, "amount_cents": 100,
         "mandate_id": "123456789XXmandaat"},
        {"bank_tx_code": UPDD, "return_reason": "MS03", "reversal": True, "amount_cents": 92100},
    ],
    "camt053/oca-test-camt053.xml": [
        {"bank_tx_code": UPDD, "return_reason": "AC06", "reversal": True, "amount_cents": 56405,
         "end_to_end_id": "TESTBANK/NL/20141229/01206408", "payment_info_id": "2018/125-20141229-NORM"},
        {"bank_tx_code": UPDD, "return_reason": "AC06", "reversal": True, "amount_cents": 10000,
         "end_to_end_id": "TESTBANK/NL/20141229/01206407"},
    ],
    "camt053/camtparser-valid_example_v4.xml": [
        {"bank_tx_code": RRTN, "return_reason": "NARR", "amount_cents": cents, "direction": "CRDT"}
        for cents in (2000, 4000, 5000)
    ] + [
        {"bank_tx_code": "PMNT/IDDT/PRDD", "return_reason": "MD06", "reversal": True, "amount_cents": 600,
         "charges_cents": 70, "counterparty_iban": "CH3709000000250094580"},
        {"bank_tx_code": "PMNT/RDDT/PRDD", "return_reason": "MD06", "reversal": True, "amount_cents": 1553},
    ],
    "camt053/libeufin-postfinance_camt053.xml": [
        {"bank_tx_code": RRTN, "return_reason": "BE01", "reversal": True, "currency": "CHF", "amount_cents": 100},
        {"bank_tx_code": RRTN, "return_reason": "RR03", "reversal": True, "currency": "CHF", "amount_cents": 100},
    ],
    "camt054/moov-FI_camt_054_sample.xml": [
        {"bank_tx_code": "PMNT/RDDT/PMDD", "return_reason": "AC01", "reversal": True, "amount_cents": 4000,
         "status": "INFO"},
        {"bank_tx_code": "PMNT/RDDT/PMDD", "return_reason": "CUST", "reversal": True, "amount_cents": 6000},
    ],
    "camt054/camtparser-054-valid_example.xml": [
        {"bank_tx_code": "PMNT/IDDT/PRDD", "return_reason": "MD06", "reversal": True, "direction": "DBIT"},
        {"bank_tx_code": "PMNT/RDDT/PRDD", "return_reason": "MD06", "reversal": True, "direction": "DBIT"},
    ],
    "camt054/libeufin-9_camt054_Return_Detailavisierung_mit_Sammelbuchung_ISO2019_v2019.xml": [
        {"bank_tx_code": RRTN, "return_reason": "AC01", "return_info": "Kontonummer falsch", "amount_cents": 40000},
    ],
    "camt054/libeufin-postfinance_camt054.xml": [
        {"bank_tx_code": RRTN, "reversal": True, "return_reason": None, "amount_cents": 100,
         "return_info": "RETOURE IHRER ZAHLUNG VOM 15.01.2024 ... GRUND: KEINE UEBEREINSTIMMUNG VON KONTONUMMER "
                        "UND KONTOINHABER"},
    ],
    "camt052/hbci4java-test-camt-ruecklastschrift.xml": [
        {"return_reason": "MS03", "direction": "DBIT", "amount_cents": 5300, "original_amount_cents": 5000,
         "charges_cents": 300, "mandate_id": "TEST1234"},
    ],
    "camt052/hbci4java-test-camt-parse-05200108.xml": [
        {"bank_tx_code": "PMNT/RDDT/ESDD", "direction": "DBIT", "return_reason": None, "amount_cents": 3400},
    ],
    "pain002/iso20022js-nordea-pain_002_v3_txn_reject.xml": [
        {"status": "RJCT", "return_reason": "NARR", "message_id": "MSGID-950-TEST2-2807-01",
         "payment_info_id": "PMTINFID-950-TEST2-2807-01", "end_to_end_id": f"ENDTOENDID-950-TEST2-2807-0{n}",
         "instruction_id": f"INSTRID-950-TEST2-2807-0{n}"}
        for n in (1, 2)
    ],
    "pain002/iso20022js-nordea-pain_002_v3_group_reject.xml": [
        {"status": "RJCT", "return_reason": "DU01", "message_id": "MSGID-PS-TEST-0708-01", "end_to_end_id": None,
         "return_info": "ISO Duplicate Message ID"},
    ],
    "pain002/sfp-pain002-valid_example.xml": [
        {"status": "RJCT", "return_reason": "AC01", "end_to_end_id": "Source1234", "message_id": "Message-ID-12345",
         "original_amount_cents": 654314, "mandate_id": "Mandate-Id", "direction": "CRDT",
         "counterparty_name": "Debtor Name", "counterparty_iban": "DE89370400440532013000"},
    ],
    "pain002/sfp-pain002-valid_example_001.10.xml": [
        {"status": "RJCT", "return_reason": "AC01", "end_to_end_id": "OriginatorID1234",
         "payment_info_id": "Sammlerreferenz-4710", "original_amount_cents": 654314,
         "counterparty_iban": "DE87200500001234567890"},
    ],
    "pain002/libeufin-3_pain002_B-Level_und_C-Level_RJCT_v2009.xml": [
        {"status": "RJCT", "return_reason": "AC01", "end_to_end_id": "EndToEndId-001-03-04",
         "payment_info_id": "PmtInfId-001-03", "message_id": "MsgId-001"},
    ],
    "pain002/iso20022js-crossriver-pain_002_debit_accepted.xml": [
        {"status": "ACSP", "return_reason": None, "end_to_end_id": f"DD1-{n}", "message_id": "DD1"}
        for n in (1, 2, 3)
    ],
    "pain002/hbci4java-test-pain-parse-0020110-02.xml": [
        {"status": "RVNM", "direction": "DBIT", "counterparty_name": "Max Mustermann",
         "counterparty_iban": "DE12345678901234567890"},
    ],
}  # fmt: skip
EXACT_ROW_COUNTS = {
    "pain002/iso20022js-nordea-pain_002_v3_group_reject.xml": 1,
    "pain002/iso20022js-nordea-pain_002_v3_txn_reject.xml": 2,
    "pain002/iso20022js-crossriver-pain_002_debit_accepted.xml": 3,
    "camt053/oca-test-camt053.xml": 4,
    "camt053/camtparser-valid_example_v4.xml": 32,
}


def test_the_corpus_is_there() -> None:
    _require_corpus()
    assert _incoming_files(), f"{CORPUS} has no camt or pain.002 files"
    assert GLANCE, f"{CORPUS / 'SOURCES.md'} has no '{GLANCE_HEADING}' table"


@pytest.mark.parametrize("name", _incoming_files())
def test_every_incoming_file_is_read(name: str) -> None:
    _require_corpus()
    bank_file = _read(name)
    folder = name.split("/")[0]
    assert bank_file.message_type.replace(".", "").startswith(folder), bank_file.message_type
    assert len(bank_file.rows) > 0
    BankLines.validate(bank_file.rows)
    own = {s.account_iban for s in bank_file.statements if s.account_iban} | set(
        bank_file.rows["account_iban"].drop_nulls().to_list()
    )
    counterparties = set(bank_file.rows["counterparty_iban"].drop_nulls().to_list())
    assert not own & counterparties, f"{name}: own account given as counterparty"
    assert all(iban == normalise_iban(iban) for iban in own | counterparties)


def test_every_glance_file_has_expectations() -> None:
    _require_corpus()
    listed = {row["file"] for row in GLANCE}
    assert listed == set(EXPECTED), "SOURCES.md's table and this test's expectations differ"
    assert all((CORPUS / name).is_file() for name in listed)


def _matches(row: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(row[column] == value for column, value in expected.items())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_returns_and_rejects_listed_in_sources(name: str) -> None:
    _require_corpus()
    rows = _read(name).rows.to_dicts()
    unused = list(range(len(rows)))
    for expected in EXPECTED[name]:
        found = next((i for i in unused if _matches(rows[i], expected)), None)
        assert found is not None, f"{name}: no row {expected}; rows: {[{k: r[k] for k in expected} for r in rows]}"
        unused.remove(found)
    if name in EXACT_ROW_COUNTS:
        assert len(rows) == EXACT_ROW_COUNTS[name]


@pytest.mark.parametrize("glance", GLANCE, ids=[row["file"] for row in GLANCE])
def test_reason_codes_and_message_type_as_in_the_table(glance: dict[str, str]) -> None:
    _require_corpus()
    bank_file = _read(glance["file"])
    codes = Counter(bank_file.rows["return_reason"].drop_nulls().to_list())
    wanted = Counter()
    for match in re.finditer(r"\b([A-Z]{2}\d{2}|[A-Z]{4})\b(?:\s*×(\d+))?", glance["reasons"]):
        wanted[match.group(1)] += int(match.group(2) or 1)
    if glance["reasons"].lower().startswith("none"):
        assert not codes, f"the table says no reason code, the file gives {codes}"
    for code, count in wanted.items():
        assert codes[code] >= count, f"{code} ×{count} expected, found {codes}"
    declared = re.match(r"(?:camt|pain)\.\d{3}\.\d{3}\.\d{2}(?:\.ch\.\d{2})?", glance["message"])
    assert declared, glance["message"]
    if "no ns" in glance["message"]:
        assert bank_file.message_type == declared.group(0)[:8] and not bank_file.version_known
    else:
        assert bank_file.message_type == declared.group(0)


def _cents(text: str | None) -> int | None:
    if text is None:
        return None
    value = Decimal(text.strip()) * 100
    return int(value) if value == value.to_integral_value() else None


def _batch_checks() -> list[tuple[str, int, int, int]]:
    """(file, line, transactions' net sum, what the file says) for every entry with several TxDtls that all
    carry an amount; computed from the XML independently of the reader, then compared with its rows."""
    checks = []
    for name in _incoming_files():
        if not name.startswith("camt"):
            continue
        rows = _read(name).rows
        position = 0
        for ntry in etree.parse(str(CORPUS / name)).iter("{*}Ntry"):
            details = ntry.findall("{*}NtryDtls/{*}TxDtls")
            count = max(1, len(details))
            mine = rows.slice(position, count)
            position += count
            said = _cents(ntry.findtext("{*}NtryDtls/{*}Btch/{*}TtlAmt")) or _cents(ntry.findtext("{*}Amt"))
            if len(details) < 2 or said is None or mine["amount_cents"].null_count():
                continue
            sign = pl.when(pl.col("direction") == ntry.findtext("{*}CdtDbtInd")).then(1).otherwise(-1)
            net = mine.select((pl.col("amount_cents") * sign).sum()).item()
            checks.append((name, ntry.sourceline, net, said))
        assert position == len(rows), f"{name}: {len(rows)} rows for {position} transactions"
    return checks


def test_batch_transactions_add_up_to_what_the_file_says() -> None:
    _require_corpus()
    checks = _batch_checks()
    assert len(checks) >= 10, "the corpus has batches; the check must have found them"
    wrong = [c for c in checks if c[2] != c[3]]
    assert not wrong, wrong
    oca = [c for c in checks if c[0] == "camt053/oca-test-camt053.xml"]
    assert oca == [("camt053/oca-test-camt053.xml", 113, 66405, 66405)]


def test_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints what was read (run with -s to see it); fails only if a file gives no rows."""
    _require_corpus()
    lines = []
    for name in _incoming_files():
        bank_file = _read(name)
        rows = bank_file.rows
        returns = rows.filter(pl.col("return_reason").is_not_null())["return_reason"].to_list()
        problems = rows["row_problem"].drop_nulls().len()
        lines.append(f"{name}: {bank_file.message_type}, {len(rows)} rows, reasons {returns}, {problems} problem rows")
        assert len(rows)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
