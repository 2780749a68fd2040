"""The streaming pain.001 and pain.008 writers against their sepaxml references: the same document for the same
input in every supported version, valid against the XSD; the file integrity checks of the streaming writer;
and its column-wise text preparation against the per-string functions it replaces."""

from __future__ import annotations

import dataclasses
import itertools
import string
import sys
import unicodedata
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import sepaxml.validation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from sepa import _pain, pain001, pain008
from sepa.charset import _CAPS_RE, to_epc
from sepa.iban import normalise_iban
from sepa.ids import is_safe_id
from sepa.parties import Party
from sepa.xsd import validate_document
from tests.sepa.samples import CREATED_AT, EXECUTION_DATE, PLATFORM

COLLECTION_DATE = date(2024, 5, 24)  # a Friday
VERSIONS = pain001.VERSIONS + pain008.VERSIONS
NO_BIC = dataclasses.replace(PLATFORM, bic=None)
LONG = "Erstattung für Bestellung Nr. 4711 – Rücksendung vom Kunden, Größe XL getauscht gegen L; Gutschrift über "
# Awkward texts: umlauts and capitals, combining marks, non-Latin scripts, symbols, over-long remittances.
NAMES = ["Jörg Österle & Söhne", "JÜRGEN MÜLLER-LÜDENSCHEIDT", "Zoe\u0301 D'Angelo", "Σοφία Παπαδοπούλου",
         "Иван Петров", "李小龍 (Bruce Lee)", "Ægir Þórsson", "Łukasz Żółć"]  # fmt: skip
REMITTANCES = [LONG * 2, "Refund #3 @shop_1", "Rückzahlung «été» № 4", "x" * 139 + "ü", "  spaced   out  ", LONG,
               "Ünïcödé ☃ ✓", "Gutschrift"]  # fmt: skip
IBANS = [
    "DE02120300000000202051",
    "fr76 3000 6000 0112 3456 7890 189",
    "NL91ABNA0417164300",
    "AT61 1904 3002 3457 3201",
]
BICS = [None, "BNPAFRPPXXX", "bkau at ww", None, "COBADEFF", None, "ABNANL2A", None]


def transfers(rows: int = 8) -> pl.DataFrame:
    """Customer payouts with every awkward text, with and without a BIC."""
    return pl.DataFrame(
        {
            "end_to_end_id": [f"RF{i:020d}-PO" for i in range(rows)],
            "amount_cents": [[1, 2, 99_999, 12_345, 99_999_999_999, 100, 5, 70_000][i % 8] for i in range(rows)],
            "name": [NAMES[i % 8] for i in range(rows)],
            "iban": [IBANS[i % 4] for i in range(rows)],
            "bic": [BICS[i % 8] for i in range(rows)],
            "remittance": [REMITTANCES[i % 8] for i in range(rows)],
        },
        schema_overrides={"bic": pl.String},
    )


def debits(rows: int = 8) -> pl.DataFrame:
    """The same rows as merchant direct debits, the four sequence types interleaved (FNAL first)."""
    return transfers(rows).with_columns(
        end_to_end_id=pl.col("end_to_end_id").str.replace("-PO", "-DD", literal=True),
        mandate_id=pl.format("MNDT-{}", pl.int_range(pl.len())),
        mandate_signed_on=pl.Series([COLLECTION_DATE - timedelta(days=3 * i) for i in range(rows)]),
        sequence_type=pl.Series([["FNAL", "RCUR", "FRST", "OOFF"][i % 4] for i in range(rows)]),
    )


def streamed(version: str, frame: pl.DataFrame, party: Party = PLATFORM) -> bytes:
    return writer(version, "build")(party, frame, version=version, created_at=CREATED_AT, **arguments(version))


def reference(version: str, frame: pl.DataFrame, party: Party = PLATFORM, **extra: object) -> bytes:
    function = writer(version, "reference")
    return function(party, frame, version=version, created_at=CREATED_AT, **arguments(version), **extra)


def writer(version: str, how: str) -> Callable[..., bytes]:
    """`build_credit_transfers`, `reference_direct_debits` ... for the version and `how`."""
    if version.startswith("pain.001"):
        return getattr(pain001, f"{how}_credit_transfers")
    return getattr(pain008, f"{how}_direct_debits")


def arguments(version: str) -> dict[str, object]:
    if version.startswith("pain.001"):
        return {"msg_id": "PO-2024W21-0001", "payment_info_id": "PO-2024W21-0001-1", "execution_date": EXECUTION_DATE}
    return {"msg_id": "DD-2024W21-0001", "payment_info_id": "DD-2024W21-0001-1", "collection_date": COLLECTION_DATE}


def frame_for(version: str, rows: int = 8) -> pl.DataFrame:
    return transfers(rows) if version.startswith("pain.001") else debits(rows)


def canonical(data: bytes) -> bytes:
    """The document as canonical XML (C14N 2.0), the indentation between elements left out."""
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, huge_tree=True)
    return etree.tostring(etree.fromstring(data, parser), method="c14n2")


def assert_valid(data: bytes, version: str) -> None:
    result = validate_document(data)
    assert result.message_type == version
    assert result.ok, [str(e) for e in result.errors]


def outcome(write: Callable[[], bytes]) -> bytes | str:
    """The canonical document, or the message of the ValueError refusing the input."""
    try:
        return canonical(write())
    except ValueError as exc:
        return f"ValueError: {exc}"


# ---------------------------------------------------------------------------------------------------------
# The same document as the reference, valid
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "party"),
    [
        pytest.param(version, party, id=f"{version}-{name}")
        for version in VERSIONS
        for name, party in (("party-with-bic", PLATFORM), ("party-without-bic", NO_BIC))
        if version != "pain.008.001.02" or party.bic  # .02 needs the creditor's BIC: see the refusal below
    ],
)
def test_streaming_and_reference_give_the_same_valid_document(version: str, party: Party) -> None:
    ours, theirs = streamed(version, frame_for(version), party), reference(version, frame_for(version), party)
    assert canonical(ours) == canonical(theirs)
    assert_valid(ours, version)
    assert_valid(theirs, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_bytes_are_those_of_the_reference(version: str) -> None:
    """Byte for byte, indentation and declaration included: the sha256 of every file is recorded when it is
    built, so a re-run after the switch to the streaming writer must not change a file."""
    assert streamed(version, frame_for(version)) == reference(version, frame_for(version))


def test_blocks_and_row_order_are_the_reference_s() -> None:
    data = streamed("pain.008.001.08", debits(12))
    root = etree.fromstring(data)
    ns = {"p": etree.QName(root).namespace}
    assert root.xpath("//p:PmtInf/p:PmtTpInf/p:SeqTp/text()", namespaces=ns) == ["FRST", "RCUR", "OOFF", "FNAL"]
    assert root.xpath("//p:PmtInf/p:PmtInfId/text()", namespaces=ns) == [
        f"DD-2024W21-0001-1-{seq}" for seq in ("FRST", "RCUR", "OOFF", "FNAL")
    ]
    frst = root.xpath("//p:PmtInf[1]//p:EndToEndId/text()", namespaces=ns)
    assert frst == [f"RF{i:020d}-DD" for i in (2, 6, 10)]  # row order kept inside a block
    assert canonical(data) == canonical(reference("pain.008.001.08", debits(12)))


def test_both_refuse_pain_008_001_02_without_a_creditor_bic() -> None:
    ours = outcome(lambda: streamed("pain.008.001.02", debits(), NO_BIC))
    assert ours == outcome(lambda: reference("pain.008.001.02", debits(), NO_BIC))
    assert "needs the creditor's BIC" in str(ours)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "change",
    [
        {"name": pl.lit("🙂")},
        {"remittance": pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("☃")).otherwise(pl.col("remittance"))},
        {"amount_cents": pl.lit(0)},
        {"end_to_end_id": pl.lit("RF 1")},
    ],
    ids=["name", "remittance", "amount", "e2e"],
)
def test_both_refuse_bad_rows_with_the_same_message(version: str, change: dict[str, pl.Expr]) -> None:
    frame = frame_for(version).with_columns(**change)
    ours = outcome(lambda: streamed(version, frame))
    assert ours == outcome(lambda: reference(version, frame))
    assert str(ours).startswith("ValueError")


def test_the_reference_passes_validate_to_sepaxml() -> None:
    frame = transfers().with_columns(bic=pl.lit("X"))  # not a BIC: only sepaxml's own validation notices
    reference("pain.001.001.03", frame)
    with pytest.raises(sepaxml.validation.ValidationError):
        reference("pain.001.001.03", frame, validate=True)


# ---------------------------------------------------------------------------------------------------------
# Random frames: streaming == reference
# ---------------------------------------------------------------------------------------------------------

_TEXT = st.tuples(
    st.sampled_from(["", "A", "Jörg ", "MÜLLER "]),  # mostly something writable: "" leaves the refusals in
    st.text(
        alphabet=st.one_of(
            st.sampled_from(string.ascii_letters + " " * 6 + "äöüÄÖÜßẞÆŒĲæœéñçøåłŁ'&_-.,#@«»–\u0301\u0308\t"),
            st.characters(codec="utf-8"),
        ),
        min_size=1,
        max_size=160,
    ),
).map("".join)
_SAFE_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-?:().,'+]{0,30}", fullmatch=True)


@st.composite
def payment_frames(draw: st.DrawFn) -> tuple[str, pl.DataFrame, Party]:
    version = draw(st.sampled_from(VERSIONS))
    rows = draw(st.integers(1, 8))
    frame = pl.DataFrame(
        {
            "end_to_end_id": draw(st.lists(_SAFE_ID, min_size=rows, max_size=rows, unique=True)),
            "amount_cents": draw(st.lists(st.integers(1, _pain.MAX_AMOUNT_CENTS), min_size=rows, max_size=rows)),
            "name": draw(st.lists(_TEXT, min_size=rows, max_size=rows)),
            "iban": draw(st.lists(st.sampled_from(IBANS), min_size=rows, max_size=rows)),
            "bic": draw(st.lists(st.sampled_from(BICS), min_size=rows, max_size=rows)),
            "remittance": draw(st.lists(_TEXT, min_size=rows, max_size=rows)),
        },
        schema={name: pl.Int64 if name == "amount_cents" else pl.String for name in pain001.TRANSFER_COLUMNS},
    )
    party = PLATFORM
    if version.startswith("pain.008"):
        frame = frame.with_columns(
            mandate_id=pl.Series(draw(st.lists(_SAFE_ID, min_size=rows, max_size=rows)), dtype=pl.String),
            mandate_signed_on=pl.Series(
                draw(st.lists(st.dates(date(2009, 11, 1), COLLECTION_DATE), min_size=rows, max_size=rows))
            ),
            sequence_type=pl.Series(
                draw(st.lists(st.sampled_from(pain008.SEQUENCE_TYPES), min_size=rows, max_size=rows))
            ),
        )
    if version != "pain.008.001.02" and draw(st.booleans()):
        party = NO_BIC
    return version, frame, party


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payment_frames())
def test_random_frames_give_the_reference_s_document(case: tuple[str, pl.DataFrame, Party]) -> None:
    version, frame, party = case
    assert outcome(lambda: streamed(version, frame, party)) == outcome(lambda: reference(version, frame, party))


# ---------------------------------------------------------------------------------------------------------
# Writing to a path or stream
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_writing_to_a_path_or_stream_gives_the_bytes_of_build(version: str, tmp_path: Path) -> None:
    write, frame, built = writer(version, "write"), frame_for(version), streamed(version, frame_for(version))
    write(tmp_path / "path.xml", PLATFORM, frame, version=version, created_at=CREATED_AT, **arguments(version))
    assert (tmp_path / "path.xml").read_bytes() == built
    with (tmp_path / "stream.xml").open("wb") as stream:
        write(stream, PLATFORM, frame, version=version, created_at=CREATED_AT, **arguments(version))
    assert (tmp_path / "stream.xml").read_bytes() == built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["path.xml", "stream.xml"]  # no .part file left


# ---------------------------------------------------------------------------------------------------------
# Integrity: NbOfTxs and CtrlSum against what was written
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("rendering", ["row by row", "column-wise"])
def test_a_lost_transaction_is_caught_and_no_file_is_left(
    version: str, rendering: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rendering == "row by row":
        real = _pain.iter_rows
        monkeypatch.setattr(_pain, "_rendered", lambda *_args, **_kwargs: None)
        monkeypatch.setattr(_pain, "iter_rows", lambda rows: itertools.islice(real(rows), max(rows.height - 1, 0)))
    else:
        rendered = _pain._rendered
        monkeypatch.setattr(_pain, "_rendered", lambda *args, **kwargs: rendered(*args, **kwargs).head(-1))
    with pytest.raises(_pain.FileIntegrityError, match="NbOfTxs/CtrlSum"):
        writer(version, "write")(tmp_path / "file.xml", PLATFORM, frame_for(version), version=version,
                                 created_at=CREATED_AT, **arguments(version))  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "iban, column_wise",
    [
        ("DE02 1203 0000 0000 2020 51", True),  # plain texts: rendered column by column
        ("DE02&1203<0000>0000", False),  # what lxml escapes: every row refills a template
        ("DE02\x7f12030000", False),  # a control character (DEL): outside what is rendered by column
        ("DE0212030000ÄÖ", False),  # not ASCII
    ],
)
def test_transactions_rendered_by_column_are_the_bytes_lxml_writes(
    version: str, iban: str, column_wise: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = frame_for(version, 40).with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.lit(iban))
                                                .otherwise(pl.col("iban")).alias("iban"))  # fmt: skip
    rendered = _pain._rendered
    taken: list[bool] = []
    monkeypatch.setattr(_pain, "_rendered", lambda *a, **k: taken.append((r := rendered(*a, **k)) is not None) or r)
    ours = streamed(version, frame)
    assert taken and all(taken) is column_wise
    monkeypatch.setattr(_pain, "_rendered", lambda *_args, **_kwargs: None)
    assert ours == streamed(version, frame)


@given(texts=st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
                      min_size=3, max_size=3))  # fmt: skip
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_printable_ascii_renders_as_lxml_writes_it(texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # IBAN, BIC and mandate texts are written as given (only compacted); & < > must send the rows to lxml.
    frame = debits(8).with_columns(
        iban=pl.lit("DE02" + texts[0]), bic=pl.when(pl.col("bic").is_null()).then(None).otherwise(pl.lit(texts[1])),
        mandate_id=pl.lit("M" + texts[2].replace(" ", "").strip("/").replace("//", "/")),
    )  # fmt: skip
    try:
        ours = streamed("pain.008.001.08", frame)
    except ValueError:
        return  # refused before writing (an unsafe mandate id): both ways alike
    with monkeypatch.context() as patched:
        patched.setattr(_pain, "_rendered", lambda *_args, **_kwargs: None)
        assert ours == streamed("pain.008.001.08", frame)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_wrong_amount_text_is_caught(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _pain.amount_text
    monkeypatch.setattr(_pain, "amount_text", lambda cents: real(cents + 1))
    with pytest.raises(_pain.FileIntegrityError, match="amounts"):
        streamed(version, frame_for(version))


def test_blocks_that_do_not_add_up_to_the_header_are_caught() -> None:
    with pytest.raises(_pain.FileIntegrityError, match="GrpHdr says 4 payments / 10 cents"):
        _pain.check_file((4, 10), (4, 11))


# ---------------------------------------------------------------------------------------------------------
# Column-wise texts and checks against the per-string functions
# ---------------------------------------------------------------------------------------------------------

_ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("aZ Ä ÖÜßẞÆŒĲäöüæœ'&_\t\n\u00a0\u3000\u0301\u0308\u1161\u11a8가\u212bﬁ½ƏΣи李@«»—“"),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


# Texts already in the EPC set, with runs of spaces: most names and remittances, taken by a shorter way.
_EPC_TEXT = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + "/-?:().,'+" + " " * 8), max_size=40
)


@given(st.lists(st.one_of(_ANY_TEXT, _EPC_TEXT), min_size=1, max_size=30), st.sampled_from([3, 70, 140]))
def test_epc_texts_are_to_epc(values: list[str], max_len: int) -> None:
    series = pl.Series([*values, None], dtype=pl.String)
    assert _pain.epc_texts(series, max_len).to_list() == [*(to_epc(v, max_len) for v in values), None]


@pytest.mark.parametrize(
    "text", ["MÜLLER", "STRAßE", "XÆ", "Müller", "JÖRG Ö", "O\u0308sterle", "MU\u0308LLER", "\u1100\u1161", "Å"]
)
def test_epc_texts_of_characters_that_depend_on_their_neighbours(text: str) -> None:
    assert _pain.epc_texts(pl.Series([text, text + " & Söhne"]), 70).to_list() == [
        to_epc(text, 70), to_epc(text + " & Söhne", 70)
    ]  # fmt: skip


def test_characters_that_stand_alone_never_compose_with_a_neighbour() -> None:
    """What `_stands_alone` relies on, over all of Unicode: NFC composes only a mark or Hangul jamo with the
    character before it, so a text of standing-alone characters is in NFC and each transliterates alone."""
    seconds = set()
    for code in range(sys.maxunicode + 1):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    assert seconds
    for second in seconds:
        assert not _pain._stands_alone(second), hex(ord(second))
    for code in itertools.chain(range(0xD800), range(0xE000, sys.maxunicode + 1)):
        char = chr(code)
        if _pain._stands_alone(char):
            assert unicodedata.combining(char) == 0, hex(code)
            assert unicodedata.normalize("NFD", char)[0] not in seconds, hex(code)


@given(_ANY_TEXT)
def test_the_capitals_context_covers_charset_s(text: str) -> None:
    composed = unicodedata.normalize("NFC", text)  # a text _pain transliterates by characters is in NFC
    if _CAPS_RE.search(composed):
        assert pl.Series([composed]).str.contains(_pain._CAPS_CONTEXT_PATTERN).item()


@given(
    st.one_of(
        st.lists(st.text(alphabet=st.sampled_from("aB1 \t\n\x0b\x1c\x1f\u00a0\u3000\u0085ßﬁİıǅ\u1c8a"), max_size=12)),
        st.lists(st.text(alphabet=st.sampled_from(string.ascii_uppercase + string.digits + "ab"), max_size=34)),
    )
)
def test_compact_upper_is_normalise_iban(values: list[str]) -> None:
    series = pl.Series(values, dtype=pl.String)
    assert _pain.compact_upper(series).to_list() == [normalise_iban(v) for v in values]
    assert _pain.bic_texts(series).to_list() == [_pain.normalise_bic(v) for v in values]


@given(st.lists(st.text(alphabet=st.sampled_from("aZ09/-?:().,'+ é"), max_size=37), min_size=1))
def test_safe_id_is_is_safe_id(values: list[str]) -> None:
    found = pl.DataFrame({"id": values}, schema={"id": pl.String}).select(_pain.safe_id("id")).to_series()
    assert found.to_list() == [is_safe_id(v) for v in values]
