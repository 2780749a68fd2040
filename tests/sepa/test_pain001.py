"""pain.001 credit transfer files: valid, EPC-only, exact counts and sums, our ids, reproducible."""

from __future__ import annotations

import dataclasses
from datetime import date

import polars as pl
import pytest
import sepaxml.transfer

from sepa._pain import FileIntegrityError
from sepa.charset import is_epc
from sepa.pain001 import VERSIONS, build_credit_transfers, reference_credit_transfers
from sepa.parties import Party
from sepa.xsd import validate_document
from tests.sepa.samples import CREATED_AT, EXECUTION_DATE, PLATFORM, ROWS, TOTAL_CENTS, cents, parse, texts, transfers

MSG_ID = "PO-2024W21-0001"
PMT_INF_ID = "PO-2024W21-0001-1"


def build(
    version: str = "pain.001.001.03", frame: pl.DataFrame | None = None, debtor: Party = PLATFORM, **overrides: object
) -> bytes:
    args = {"msg_id": MSG_ID, "payment_info_id": PMT_INF_ID, "execution_date": EXECUTION_DATE,
            "version": version, "created_at": CREATED_AT} | overrides  # fmt: skip
    return build_credit_transfers(debtor, transfers() if frame is None else frame, **args)


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def test_file_is_valid_against_the_xsd(version: str) -> None:
    result = validate_document(build(version))
    assert result.message_type == version
    assert result.ok, [str(e) for e in result.errors]


def test_texts_are_transliterated_into_the_epc_set(version: str) -> None:
    root, ns = parse(build(version))
    names = texts(root, ns, "//p:Cdtr/p:Nm")
    assert names == ["Joerg Oesterle + Soehne", "Zoe D'Angelo", "Sean O Briain", "Asa Oberg"]
    assert texts(root, ns, "//p:Dbtr/p:Nm") == ["Kasse + Soehne Zahlungsdienste GmbH"]
    remittances = texts(root, ns, "//p:RmtInf/p:Ustrd")
    assert remittances[0] == "Erstattung Bestellung O1 - Ruecksendung"
    assert remittances[2] == "Refund 3 (at)shop"
    assert remittances[3] == "Rueckzahlung-4"
    every_text = [t for t in root.itertext() if t.strip()]
    assert all(is_epc(t) for t in every_text), [t for t in every_text if not is_epc(t)]


def test_counts_and_sums_are_exact(version: str) -> None:
    root, ns = parse(build(version))
    assert texts(root, ns, "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs") == ["4"]
    assert [cents(t) for t in texts(root, ns, "//p:GrpHdr/p:CtrlSum")] == [TOTAL_CENTS]
    assert [cents(t) for t in texts(root, ns, "//p:PmtInf/p:CtrlSum")] == [TOTAL_CENTS]
    assert texts(root, ns, "//p:PmtInf/p:NbOfTxs") == ["4"]
    assert [cents(t) for t in texts(root, ns, "//p:InstdAmt")] == ROWS["amount_cents"]
    assert texts(root, ns, "//p:InstdAmt/@Ccy") == ["EUR"] * 4


def test_small_amounts_are_written_exactly(version: str) -> None:
    frame = transfers().head(3)  # 1, 2 and 99999 cents
    root, ns = parse(build(version, frame))
    assert texts(root, ns, "//p:InstdAmt") == ["0.01", "0.02", "999.99"]
    assert texts(root, ns, "//p:GrpHdr/p:CtrlSum") == ["1000.02"]


def test_ids_dates_and_accounts_are_the_given_ones(version: str) -> None:
    root, ns = parse(build(version))
    assert texts(root, ns, "//p:GrpHdr/p:MsgId") == [MSG_ID]
    assert texts(root, ns, "//p:GrpHdr/p:CreDtTm") == ["2024-05-20T09:30:15"]
    assert texts(root, ns, "//p:PmtInf/p:PmtInfId") == [PMT_INF_ID]  # one block per file
    assert texts(root, ns, "//p:EndToEndId") == ROWS["end_to_end_id"]
    date_path = "//p:ReqdExctnDt" if version == "pain.001.001.03" else "//p:ReqdExctnDt/p:Dt"
    assert texts(root, ns, date_path) == ["2024-05-22"]
    assert texts(root, ns, "//p:DbtrAcct//p:IBAN") == ["DE89370400440532013000"]  # normalised
    assert texts(root, ns, "//p:CdtrAcct//p:IBAN")[1] == "FR7630006000011234567890189"
    bic = "p:BIC" if version == "pain.001.001.03" else "p:BICFI"
    assert texts(root, ns, f"//p:CdtTrfTxInf/p:CdtrAgt/p:FinInstnId/{bic}") == ["BNPAFRPPXXX", "BKAUATWW"]
    assert texts(root, ns, f"//p:DbtrAgt/p:FinInstnId/{bic}") == ["COBADEFFXXX"]


def test_building_twice_gives_the_same_bytes(version: str) -> None:
    assert build(version) == build(version)


def test_different_ids_give_different_files(version: str) -> None:
    assert build(version) != build(version, msg_id="PO-2024W21-0002")


def test_debtor_without_bic_is_written_as_notprovided(version: str) -> None:
    data = build(version, debtor=dataclasses.replace(PLATFORM, bic=None))
    assert validate_document(data).ok
    root, ns = parse(data)
    assert texts(root, ns, "//p:DbtrAgt/p:FinInstnId/p:Othr/p:Id") == ["NOTPROVIDED"]


def test_long_texts_are_cut_to_the_field_lengths(version: str) -> None:
    frame = transfers().with_columns(name=pl.lit("ä" * 50), remittance=pl.lit("ü" * 100))
    data = build(version, frame)
    assert validate_document(data).ok
    root, ns = parse(data)
    assert set(texts(root, ns, "//p:Cdtr/p:Nm")) == {"ae" * 35}
    assert set(texts(root, ns, "//p:Ustrd")) == {"ue" * 70}


def test_the_caller_s_frame_is_left_alone() -> None:
    frame = transfers()
    before = frame.clone()
    build("pain.001.001.03", frame)
    assert frame.equals(before)


def test_a_wrong_sum_from_sepaxml_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """If sepaxml wrote amounts that do not add up to what was asked for, the reference writer gives no file.
    (The streaming writer's own checks are in test_pain_streaming.)"""
    real = sepaxml.transfer.int_to_decimal_str
    monkeypatch.setattr(sepaxml.transfer, "int_to_decimal_str", lambda cents: real(cents + 1))
    args = {"msg_id": MSG_ID, "payment_info_id": PMT_INF_ID, "execution_date": EXECUTION_DATE,
            "version": "pain.001.001.03", "created_at": CREATED_AT}  # fmt: skip
    with pytest.raises(FileIntegrityError):
        reference_credit_transfers(PLATFORM, transfers(), **args)
    assert validate_document(build()).ok  # the streaming writer does not go through sepaxml


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"version": "pain.001.001.11"}, "version"),
        ({"execution_date": date(2024, 5, 25)}, "business day"),  # a Saturday
        ({"execution_date": date(2024, 12, 25)}, "business day"),
        ({"msg_id": "PO 2024 W21"}, "msg_id"),
        ({"payment_info_id": "x" * 36}, "payment_info_id"),
    ],
)
def test_bad_arguments_are_refused(change: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build(**({"version": "pain.001.001.03"} | change))


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (transfers().with_columns(amount_cents=pl.lit(0)), "amount_cents 0"),
        (transfers().with_columns(amount_cents=pl.col("amount_cents") / 100), "amount_cents is Float64"),
        (transfers().with_columns(end_to_end_id=pl.lit("RF1-PO")), "more than once"),
        (transfers().with_columns(end_to_end_id=pl.lit("RF 1")).head(1), "SEPA-safe"),
        (transfers().drop("remittance"), "missing columns: remittance"),
        (transfers().head(0), "no rows"),
        (transfers().with_columns(iban=pl.lit(None, dtype=pl.String)), "null values in: iban"),
        (transfers().with_columns(name=pl.lit("🙂")), "name"),
        (transfers().with_columns(currency=pl.Series(["EUR", "EUR", "CHF", None])), "2 invalid rows.*'CHF'.*None"),
    ],
    ids=["zero-amount", "float-amount", "duplicate-e2e", "unsafe-e2e", "missing-column", "empty", "null-iban",
         "untransliterable-name", "not-eur"],
)  # fmt: skip
def test_bad_rows_are_refused(frame: pl.DataFrame, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build("pain.001.001.03", frame)


def test_a_currency_column_of_eur_is_accepted() -> None:
    assert validate_document(build(frame=transfers().with_columns(currency=pl.lit("EUR")))).ok
