"""pain.008 direct debit files: valid, EPC-only, one block per sequence type, exact sums, our ids."""

from __future__ import annotations

import dataclasses
from datetime import date

import polars as pl
import pytest
import sepaxml.debit

from sepa._pain import FileIntegrityError
from sepa.charset import is_epc
from sepa.pain008 import VERSIONS, build_direct_debits, pmt_inf_id_for, reference_direct_debits
from sepa.parties import Party
from sepa.xsd import validate_document
from tests.sepa.samples import CREATED_AT, PLATFORM, ROWS, TOTAL_CENTS, cents, debits, parse, texts

MSG_ID = "DD-2024W21-0001"
PMT_INF_ID = "DD-2024W21-0001-1"
COLLECTION_DATE = date(2024, 5, 24)  # a Friday


def build(
    version: str = "pain.008.001.02", frame: pl.DataFrame | None = None, creditor: Party = PLATFORM, **overrides: object
) -> bytes:
    args = {
        "msg_id": MSG_ID,
        "payment_info_id": PMT_INF_ID,
        "collection_date": COLLECTION_DATE,
        "version": version,
        "created_at": CREATED_AT,
    } | overrides
    return build_direct_debits(creditor, debits() if frame is None else frame, **args)


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def test_file_is_valid_against_the_xsd(version: str) -> None:
    result = validate_document(build(version))
    assert result.message_type == version
    assert result.ok, [str(e) for e in result.errors]


def test_frst_and_rcur_are_separate_blocks_with_deterministic_ids(version: str) -> None:
    root, ns = parse(build(version))
    blocks = root.xpath("//p:PmtInf", namespaces=ns)
    assert [b.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns) for b in blocks] == ["FRST", "RCUR"]
    assert [b.findtext("p:PmtInfId", namespaces=ns) for b in blocks] == [f"{PMT_INF_ID}-FRST", f"{PMT_INF_ID}-RCUR"]
    frst, rcur = blocks
    e2e = ROWS["end_to_end_id"]
    assert texts(frst, ns, ".//p:EndToEndId") == [e2e[1].replace("-PO", "-DD"), e2e[3].replace("-PO", "-DD")]
    assert texts(rcur, ns, ".//p:EndToEndId") == [e2e[0].replace("-PO", "-DD"), e2e[2].replace("-PO", "-DD")]
    assert texts(frst, ns, "p:NbOfTxs") == ["2"] and texts(rcur, ns, "p:NbOfTxs") == ["2"]
    assert cents(frst.findtext("p:CtrlSum", namespaces=ns)) == 2 + 12_345
    assert cents(rcur.findtext("p:CtrlSum", namespaces=ns)) == 1 + 99_999
    assert texts(frst, ns, ".//p:MndtId") == ["MNDT-M2", "MNDT-M4"]
    assert texts(frst, ns, ".//p:DtOfSgntr") == ["2024-05-01", "2024-05-20"]


def test_header_counts_sums_ids_and_dates(version: str) -> None:
    root, ns = parse(build(version))
    assert texts(root, ns, "//p:GrpHdr/p:MsgId") == [MSG_ID]
    assert texts(root, ns, "//p:GrpHdr/p:CreDtTm") == ["2024-05-20T09:30:15"]
    assert texts(root, ns, "//p:GrpHdr/p:NbOfTxs") == ["4"]
    assert [cents(t) for t in texts(root, ns, "//p:GrpHdr/p:CtrlSum")] == [TOTAL_CENTS]
    assert texts(root, ns, "//p:ReqdColltnDt") == ["2024-05-24", "2024-05-24"]
    assert texts(root, ns, "//p:LclInstrm/p:Cd") == ["CORE", "CORE"]
    assert texts(root, ns, "//p:CdtrSchmeId//p:Othr/p:Id") == ["DE98ZZZ09999999999"] * 2
    assert sorted(cents(t) for t in texts(root, ns, "//p:InstdAmt")) == sorted(ROWS["amount_cents"])


def test_texts_are_epc_only(version: str) -> None:
    root, ns = parse(build(version))
    assert "Joerg Oesterle + Soehne" in texts(root, ns, "//p:Dbtr/p:Nm")
    assert texts(root, ns, "//p:PmtInf/p:Cdtr/p:Nm") == ["Kasse + Soehne Zahlungsdienste GmbH"] * 2
    every_text = [t for t in root.itertext() if t.strip()]
    assert all(is_epc(t) for t in every_text), [t for t in every_text if not is_epc(t)]


def test_one_sequence_type_gives_one_block(version: str) -> None:
    root, ns = parse(build(version, debits(["RCUR"] * 4)))
    assert texts(root, ns, "//p:PmtInf/p:PmtInfId") == [f"{PMT_INF_ID}-RCUR"]
    assert [cents(t) for t in texts(root, ns, "//p:PmtInf/p:CtrlSum")] == [TOTAL_CENTS]


def test_building_twice_gives_the_same_bytes(version: str) -> None:
    assert build(version) == build(version)


def test_creditor_without_bic_in_version_08_is_notprovided() -> None:
    data = build("pain.008.001.08", creditor=dataclasses.replace(PLATFORM, bic=None))
    assert validate_document(data).ok
    root, ns = parse(data)
    assert texts(root, ns, "//p:CdtrAgt/p:FinInstnId/p:Othr/p:Id") == ["NOTPROVIDED"] * 2


def test_a_long_payment_info_id_still_fits() -> None:
    data = build(payment_info_id="X" * 35)
    root, ns = parse(data)
    ids = texts(root, ns, "//p:PmtInf/p:PmtInfId")
    assert all(len(i) <= 35 for i in ids) and ids[0].endswith("-FRST") and ids[1].endswith("-RCUR")
    assert ids == [pmt_inf_id_for("X" * 35, "FRST"), pmt_inf_id_for("X" * 35, "RCUR")]
    assert validate_document(data).ok


def test_the_four_sequence_types_come_in_their_order(version: str) -> None:
    root, ns = parse(build(version, debits(["FNAL", "OOFF", "RCUR", "FRST"])))
    assert texts(root, ns, "//p:PmtInf/p:PmtTpInf/p:SeqTp") == ["FRST", "RCUR", "OOFF", "FNAL"]
    assert texts(root, ns, "//p:PmtInf/p:NbOfTxs") == ["1"] * 4


def test_a_wrong_sum_from_sepaxml_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """If sepaxml wrote amounts that do not add up to what was asked for, the reference writer gives no file."""
    real = sepaxml.debit.int_to_decimal_str
    monkeypatch.setattr(sepaxml.debit, "int_to_decimal_str", lambda cents: real(cents + 1))
    with pytest.raises(FileIntegrityError):
        reference_direct_debits(
            PLATFORM,
            debits(),
            msg_id=MSG_ID,
            payment_info_id=PMT_INF_ID,
            collection_date=COLLECTION_DATE,
            version="pain.008.001.02",
            created_at=CREATED_AT,
        )
    assert validate_document(build()).ok  # the streaming writer does not go through sepaxml


@pytest.mark.parametrize(
    ("creditor", "change", "words"),
    [
        (dataclasses.replace(PLATFORM, creditor_id=None), {}, "creditor identifier"),
        (dataclasses.replace(PLATFORM, creditor_id="DE97ZZZ09999999999"), {}, "check digits"),
        (dataclasses.replace(PLATFORM, bic=None), {"version": "pain.008.001.02"}, "BIC"),
        (PLATFORM, {"version": "pain.008.001.10"}, "version"),
        (PLATFORM, {"collection_date": date(2025, 4, 21)}, "business day"),  # Easter Monday
    ],
)
def test_bad_arguments_are_refused(creditor: Party, change: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build(creditor=creditor, **change)


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (debits(["FRST", "RCUR", "XXXX", "RCUR"]), "sequence_type 'XXXX'"),
        (debits().with_columns(mandate_id=pl.lit("Mandat Nr 1")), "mandate_id"),
        (debits().with_columns(mandate_signed_on=pl.lit(date(2024, 6, 1))), "after the collection date"),
        (debits().with_columns(mandate_signed_on=pl.lit("2023-01-01")), "mandate_signed_on is String"),
        (debits().with_columns(amount_cents=pl.lit(-5)), "amount_cents -5"),
    ],
    ids=["sequence-type", "mandate-id", "mandate-after-collection", "mandate-date-as-text", "negative-amount"],
)
def test_bad_rows_are_refused(frame: pl.DataFrame, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build(frame=frame)
