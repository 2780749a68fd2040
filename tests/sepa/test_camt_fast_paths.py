"""The camt reader's two shortcuts read exactly what the plain reading does.

- Entries and transactions of a structure seen before are read from their serialisation (`FlatView` of a
  `ShapeCache`): every answer (paths, texts, elements) must be the one of a `View` of the same element, on
  real bank files, on documents made to be awkward, and on random mutations.
- A large file is read by two processes (`sepa.camt_split`): the result, problems and notes must be
  those of one process, and anything unexpected must make it read the file by one process from the start.
  Here "large" is lowered to nothing so that small files are split.
"""

from __future__ import annotations

import contextlib
import io
import os
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import sepa.camt as camt
import sepa.camt_columns as camt_columns
import sepa.camt_split as camt_split
from sepa.bank_files import BankFile, BankFileError, read_bank_file
from sepa.bank_messages import write_camt053, write_camt054
from sepa.safe_xml import ShapeCache, View
from tests.sepa.test_bank_file_fuzz import EDIT, VALID, mutate
from tests.sepa.test_camt_reader import STATEMENT_ELEMENT, camt_document, domain, entry

CORPUS = Path(os.environ.get("PAYOUTS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus"))
STOP = frozenset({"TxDtls"})
DETAILS = "NtryDtls/TxDtls"
OWN_IBAN = "DE89370400440532013000"


# ---------------------------------------------------------------------------------------------------------
# FlatView answers as View does
# ---------------------------------------------------------------------------------------------------------


def _same_view(flat: object, view: View) -> None:
    assert set(flat.paths) == set(view.paths)  # type: ignore[attr-defined]
    for path in view.paths:
        assert flat.text(path) == view.text(path), path  # type: ignore[attr-defined]
        assert flat.texts(path) == view.texts(path), path  # type: ignore[attr-defined]
        assert flat.first(path) is view.first(path), path  # type: ignore[attr-defined]
        assert all(a is b for a, b in zip(flat.all(path), view.all(path), strict=True)), path  # type: ignore[attr-defined]
    assert flat.text("Nowhere") is None and flat.texts("Nowhere") == [] and flat.first("Nowhere") is None  # type: ignore[attr-defined]


def _check_entries(document: bytes) -> int:
    """Compare FlatView and View on every Ntry (and its TxDtls) of `document`; returns how many were flat."""
    entries = ShapeCache(STOP, DETAILS)
    details = ShapeCache(frozenset(), "")
    flat_count = 0
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
    root = etree.parse(io.BytesIO(document), parser).getroot()
    for ntry in root.iter("{*}Ntry"):
        view = View(ntry, STOP)
        found = entries.views(ntry)
        if found is not None:
            flat_count += 1
            flat, parts = found
            _same_view(flat, view)
            expected = view.all(DETAILS)
            assert len(parts) == len(expected)
            for (position, part), detail in zip(parts, expected, strict=True):
                assert camt._at(ntry, position) is detail
                _same_view(part, View(detail))
        for detail in view.all(DETAILS):
            found = details.views(detail)
            if found is not None:
                flat_count += 1
                _same_view(found[0], View(detail))
                assert found[1] == []
    return flat_count


AWKWARD = [
    entry(),
    entry(details="<TxDtls><Refs><EndToEndId> E-1 </EndToEndId><EndToEndId>E-2</EndToEndId></Refs></TxDtls>"),
    entry(
        details="<TxDtls><RmtInf><Ustrd>  </Ustrd><Ustrd>a  b</Ustrd><Ustrd/><Ustrd>c<x/>d</Ustrd></RmtInf></TxDtls>"
    ),
    entry(details="<TxDtls><Refs><EndToEndId>\u00a0E\u2003</EndToEndId></Refs><Amt Ccy='EUR'>1.00</Amt></TxDtls>"),
    entry(details="<TxDtls><Refs><EndToEndId>a &amp; b</EndToEndId></Refs></TxDtls>"),
    entry(details="<TxDtls><Refs><EndToEndId><![CDATA[c<d]]></EndToEndId></Refs></TxDtls>"),
    entry(details="<TxDtls><!-- a comment --><Refs><EndToEndId>E</EndToEndId></Refs></TxDtls>"),
    entry(details="<TxDtls><?pi x?><Refs/></TxDtls><TxDtls><TxDtls><Amt>1</Amt></TxDtls></TxDtls>"),
    entry(details="<Btch><NbOfTxs>2</NbOfTxs></Btch><TxDtls><Amt Ccy='EUR'>1</Amt></TxDtls><TxDtls/>"),
    entry(extra="<Amt xmlns:x='urn:x' Ccy='EUR' x:Ccy='USD'>3</Amt><RvslInd>true</RvslInd><Y xmlns='urn:y'><Z/></Y>"),
    entry(code=domain("ICDT", "RRTN"), extra="<AddtlNtryInf>a</AddtlNtryInf><AddtlNtryInf> b </AddtlNtryInf>"),
    entry(status="<Sts>mixed<Cd>BOOK</Cd>tail</Sts>", refs="<NtryRef/><AcctSvcrRef>R&lt;1&gt;</AcctSvcrRef>"),
    entry(details="<TxDtls>" + "<x>" * 40 + "deep" + "</x>" * 40 + "</TxDtls>"),
    entry(details="<TxDtls>text only</TxDtls>"),
    "<Ntry/>",
    "<Ntry>only text</Ntry>",
]


@pytest.mark.parametrize("namespace", ["iso", None, "urn:bank:own"])
@pytest.mark.parametrize("prefix", ["", "c"])
def test_flat_views_answer_as_views_do(namespace: str | None, prefix: str) -> None:
    document = camt_document(AWKWARD * 2, namespace=namespace, prefix=prefix if namespace else "")
    assert _check_entries(document) > len(AWKWARD)  # most read flat, the second time from the cache


def test_flat_views_on_the_corpus() -> None:
    files = sorted(p for p in CORPUS.rglob("*.xml") if p.parent.name.startswith("camt"))
    if not files:
        pytest.skip(f"no camt files in {CORPUS} (set $PAYOUTS_CORPUS to its folder)")
    flat = sum(_check_entries(p.read_bytes()) for p in files)
    assert flat > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDIT, min_size=1, max_size=6))
def test_flat_views_on_mutations(edits: list[tuple[str, int, int]]) -> None:
    data = mutate(VALID, edits)
    with contextlib.suppress(etree.XMLSyntaxError):  # not a document: nothing to compare
        _check_entries(data)


def test_a_full_cache_leaves_the_rest_to_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sepa.safe_xml._MAX_SHAPES", 2)
    entries = [entry(details=f"<TxDtls><Refs><EndToEndId>E</EndToEndId></Refs>{'<x/>' * n}</TxDtls>") for n in range(5)]
    rows = read_bank_file(camt_document(entries)).rows
    assert rows["end_to_end_id"].to_list() == ["E"] * 5


# ---------------------------------------------------------------------------------------------------------
# Two processes read what one does
# ---------------------------------------------------------------------------------------------------------


def _entries(n: int, batch: int | None = None, start: int = 0) -> pl.DataFrame:
    i = pl.int_range(start, start + n, eager=True)
    return (
        pl.DataFrame({"i": i})
        .with_columns(
            entry_ref=pl.format("BR{}", pl.col("i")),
            booking_date=pl.lit(date(2024, 5, 21)),
            value_date=pl.lit(date(2024, 5, 22)),
            direction=pl.when(pl.col("i") // (batch or 1) % 3 == 0).then(pl.lit("CRDT")).otherwise(pl.lit("DBIT")),
            amount_cents=1 + (pl.col("i") * 7919) % 250_000,
            bank_tx_code=pl.lit("PMNT/ICDT/ESCT"),
            end_to_end_id=pl.format("RF{}-PO", pl.col("i")),
            payment_info_id=pl.format("PI-{}", pl.col("i") // 10),
            counterparty_name=pl.format("Kunde {} Müller", pl.col("i")),
            counterparty_iban=pl.lit("DE02120300000000202051"),
            remittance=pl.format("Erstattung {}", pl.col("i")),
            batch=pl.format("B{}", pl.col("i") // batch) if batch else pl.lit(None, pl.String),
        )
        .drop("i")
    )


def _camt054(path: Path, n: int = 300, version: str = "camt.054.001.08", batch: int | None = None) -> Path:
    write_camt054(path, msg_id="MSG-1", created_at=datetime(2024, 5, 22, 10), account_iban=OWN_IBAN,
                  entries=_entries(n, batch), version=version)  # fmt: skip
    return path


def _camt053(path: Path, n: int = 300, version: str = "camt.053.001.08") -> Path:
    write_camt053(path, msg_id="MSG-1", created_at=datetime(2024, 5, 22, 10), statement_id="STMT-1",
                  account_iban=OWN_IBAN, opening_balance_cents=10**9, entries=_entries(n),
                  booking_date=date(2024, 5, 21), version=version)  # fmt: skip
    return path


def _outcome(path: Path) -> tuple[object, ...]:
    try:
        bank_file: BankFile = read_bank_file(path)
    except BankFileError as exc:
        return ("error", str(exc))
    rows = bank_file.rows
    return ("ok", bank_file.message_type, bank_file.message_id, bank_file.account_iban, bank_file.statements,
            bank_file.notes, rows.schema, rows.to_dict(as_series=False))  # fmt: skip


@pytest.fixture
def splits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Files of any size are split; each reading's outcome (split or read again by one process) is listed."""
    outcomes: list[bool] = []
    original = camt_split.read_split

    def spy(*args: object) -> object:
        done = original(*args)  # type: ignore[arg-type]
        outcomes.append(done is not None)
        return done

    monkeypatch.setattr(camt_split, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(camt_split, "read_split", spy)
    return outcomes


def _single(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    with monkeypatch.context() as patch:
        patch.setattr(camt_split, "SPLIT_MIN_BYTES", 1 << 62)
        return _outcome(path)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _camt054(p),
        lambda p: _camt054(p, version="camt.054.001.02"),
        lambda p: _camt054(p, batch=7),
        lambda p: _camt053(p),
    ],
    ids=["camt054-08", "camt054-02", "camt054-batches", "camt053-08"],
)
def test_a_split_file_reads_as_one(tmp_path: Path, make, splits: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    path = make(tmp_path / "big.xml")
    split = _outcome(path)
    assert splits == [True], "the file should have been split"
    assert split == _single(path, monkeypatch)


def _second_half(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    at = data.index(old, data.index(b"</Refs>", int(len(data) * 0.8)))  # in a transaction
    path.write_bytes(data[:at] + new + data[at + len(old) :])
    return path


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'<Amt Ccy="EUR">', b'<Amt Ccy="EURO">'),  # a row problem, naming its line
        (b"</RmtInf>", b"</RmtInf><Oops>"),  # not well-formed: the error of one parse
        (b"<Amt Ccy", b"<Amt Ccy='EUR' Ccy"),  # a duplicate attribute
    ],
    ids=["row-problem", "not-well-formed", "duplicate-attribute"],
)
def test_trouble_in_the_second_part_is_told_as_by_one_process(
    tmp_path: Path, old: bytes, new: bytes, splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _second_half(_camt054(tmp_path / "big.xml"), old, new)
    split = _outcome(path)
    assert splits == [False], "read again by one process"
    assert split == _single(path, monkeypatch)


def test_a_truncated_file_is_refused_as_by_one_process(
    tmp_path: Path, splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _camt054(tmp_path / "cut.xml")
    path.write_bytes(path.read_bytes()[:-300])
    assert _outcome(path) == _single(path, monkeypatch)
    assert _outcome(path)[0] == "error"


@pytest.mark.parametrize("hiding", [(b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?note ", b"?>")])
def test_an_entry_hidden_where_the_file_is_split_is_not_read(
    tmp_path: Path, hiding: tuple[bytes, bytes], splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hide a stretch of entries around the middle: the bytes `<Ntry>` found there are not an element.
    path = _camt054(tmp_path / "hidden.xml")
    data = path.read_bytes()
    start = data.rindex(b"\n      <Ntry>", 0, int(len(data) * 0.40)) + 1
    end = data.index(b"\n      <Ntry>", int(len(data) * 0.70)) + 1
    opening, closing = hiding
    path.write_bytes(data[:start] + opening + b"\n" + data[start:end] + closing + b"\n" + data[end:])
    hidden = _outcome(path)
    assert hidden == _single(path, monkeypatch)
    assert hidden[0] == "ok" and len(hidden[-1]["entry_ref"]) < 300  # type: ignore[index]
    assert splits == [False]


def test_a_second_statement_before_the_split_reads_as_one(
    tmp_path: Path, splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two statements: the entry at the split is in the second one, the other process was told of the first.
    path = _camt053(tmp_path / "two.xml")
    data = path.read_bytes()
    at = data.index(b"\n      <Ntry>", int(len(data) * 0.3)) + 1
    second = b"    </Stmt>\n    <Stmt>\n      <Id>STMT-2</Id>\n"
    path.write_bytes(data[:at] + second + data[at:])
    assert _outcome(path) == _single(path, monkeypatch)
    assert splits == [False]


def test_entries_numbered_in_their_statement_are_renumbered(
    tmp_path: Path, splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without NtryRef and AcctSvcrRef an entry's reference is the statement's id and its number.
    refs = "<Refs><EndToEndId>E</EndToEndId></Refs>"
    document = camt_document(
        [entry(refs="", details=f"<TxDtls>{refs}</TxDtls>") for _ in range(400)], kind="camt.053", statement_id=""
    )
    path = tmp_path / "numbered.xml"
    path.write_bytes(document)
    split = _outcome(path)
    assert splits == [True]
    assert split == _single(path, monkeypatch)
    assert split[-1]["entry_ref"][-1] == "Stmt1#400"  # type: ignore[index]


def test_a_prefixed_file_is_split(tmp_path: Path, splits: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prefixed.xml"
    path.write_bytes(camt_document([entry() for _ in range(400)], prefix="c"))
    assert _outcome(path) == _single(path, monkeypatch)
    assert splits == [True]


def test_a_file_in_another_encoding_is_not_split(
    tmp_path: Path, splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "latin1.xml"
    document = camt_document([entry() for _ in range(400)]).decode()
    path.write_bytes(document.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"', 1).encode("latin-1"))
    assert _outcome(path) == _single(path, monkeypatch)
    assert splits == [False]


def test_without_a_second_process_the_file_is_read_by_one(
    tmp_path: Path, splits: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _camt054(tmp_path / "alone.xml")
    expected = _single(path, monkeypatch)
    monkeypatch.setattr(camt_split.sys, "executable", str(tmp_path / "no-such-python"))
    assert _outcome(path) == expected
    assert splits == [True]  # read by this process alone, in the same pass


# ---------------------------------------------------------------------------------------------------------
# Plain entries read column-wise read as one by one
# ---------------------------------------------------------------------------------------------------------


def _tx(
    amount: str = '<Amt Ccy="EUR">7.25</Amt>',
    refs: str = "<EndToEndId>E-1</EndToEndId><PmtInfId>P-1</PmtInfId>",
    parties: str = "<Dbtr><Nm>Ann</Nm></Dbtr><DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct>",
    extra: str = "",
) -> str:
    return (
        f"<TxDtls><Refs>{refs}</Refs>{amount}<CdtDbtInd>CRDT</CdtDbtInd><RltdPties>{parties}</RltdPties>{extra}"
        "</TxDtls>"
    )


_OWN = f"<IBAN>{OWN_IBAN}</IBAN>"
_RETURN = "<RtrInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf> closed </AddtlInf><AddtlInf>account</AddtlInf></RtrInf>"
# Entries of a few structures, each met with texts the columns read and texts they must leave to `_entry_rows`.
PLAIN = [
    entry(details=_tx()),
    entry('<Amt Ccy="EUR">12</Amt>', details=_tx(amount='<Amt Ccy="EUR">12</Amt>')),
    entry(details=_tx(amount='<Amt Ccy="EUR">12.5</Amt>', refs="<EndToEndId>notprovided</EndToEndId>")),
    entry(details=_tx(amount='<Amt Ccy="EUR"> 7.00 </Amt>')),  # valid, but not plain: read one by one
    entry(details=_tx(amount='<Amt Ccy="EUR">+3.10</Amt>')),
    entry(details=_tx(amount='<Amt Ccy="EUR">1.234</Amt>')),  # a problem
    entry(details=_tx(amount='<Amt Ccy="EURO">1.00</Amt>')),
    entry(details=_tx(amount='<Amt Ccy="XXX">1.00</Amt>')),
    entry(details=_tx(amount="<Amt>1.00</Amt>")),
    entry(direction=None, details=_tx().replace("<CdtDbtInd>CRDT</CdtDbtInd>", "")),  # inherits the entry's
    entry(direction="DBIT", details=_tx().replace("CRDT", "SIDEWAYS")),
    entry(refs="", details=_tx()),  # numbered in its statement
    entry(refs="<NtryRef> N-1 </NtryRef>", details=_tx(parties=_OWN.join(["<DbtrAcct><Id>", "</Id></DbtrAcct>"]))),
    entry(
        "<Amt Ccy='EUR'>2.00</Amt>",
        "DBIT",
        code=domain("ICDT", "RRTN"),
        extra="<AddtlNtryInf>returned:   no\n account</AddtlNtryInf>",
        details=_tx(
            amount="",
            parties="<Cdtr><Pty><Nm>Bob</Nm></Pty></Cdtr>"
            "<CdtrAcct><Id><IBAN>de89 3704 0044 0532 0130 00</IBAN></Id></CdtrAcct>"
            "<Dbtr><Nm>Ann</Nm></Dbtr><DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct>",
        ),
    ),
    entry(
        details=_tx(
            parties="<Dbtr><Nm>Us</Nm></Dbtr>"
            + _OWN.join(["<DbtrAcct><Id>", "</Id></DbtrAcct>"])
            + "<Cdtr><Nm>Carl</Nm></Cdtr><CdtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></CdtrAcct>"
        )
    ),
    entry(direction="DBIT", details=_tx(extra=_RETURN).replace("CRDT", "DBIT")),  # no creditor: the debtor
    entry(details=_tx(extra=_RETURN)),
    entry(details=_tx(parties="<DbtrAcct><Id><IBAN>NL91ABNA04171643\u00df0</IBAN></Id></DbtrAcct>", extra=_RETURN)),
    entry(details=_tx(extra="<RmtInf><Ustrd>  a \t b </Ustrd><Ustrd>\u00a0c\u2003</Ustrd></RmtInf>")),
    entry(details=_tx(extra="<RmtInf><Strd><CdtrRefInf><Ref>RF18 5390</Ref></CdtrRefInf></Strd></RmtInf>")),
    entry(status="<Sts><Prtry>PDNG</Prtry></Sts>", extra="<RvslInd>TRUE</RvslInd>", details=_tx()),
    entry(details=_tx(), code=domain("ICDT", "ESCT")).replace("2024-05-21", "2024-05-21T23:59:00+02:00"),
    entry(details=_tx()).replace("2024-05-21", "2024-02-30"),  # not a date
    entry(details=_tx()).replace("2024-05-21", "0000-05-21"),
    entry(details=_tx()).replace("2024-05-22", " 2024-05-22"),
    entry(details=_tx() + _tx(refs="<EndToEndId>E-2</EndToEndId>")),  # two transactions: one by one
    entry(details=_tx(extra="<Chrgs><Amt Ccy='EUR'>0.50</Amt></Chrgs>")),  # charges: one by one
    entry(details=_tx(refs="<EndToEndId>a &amp; b</EndToEndId>")),  # escaped: `View` reads it
]


@pytest.fixture
def column_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows read column-wise, counted; a few entries at a time, so batches meet the other entries."""
    counted: list[int] = []
    original = camt_columns.EntryColumns.rows

    def spy(self: camt_columns.EntryColumns, statement: dict[str, str | None]) -> object:
        frames, unread = original(self, statement)
        counted.append(sum(frame.height for frame in frames))
        return frames, unread

    monkeypatch.setattr(camt_columns.EntryColumns, "rows", spy)
    monkeypatch.setattr(camt, "KEPT_ENTRIES", 3)
    return counted


def _one_by_one(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    with monkeypatch.context() as patch:
        patch.setattr(camt._Readers, "plan", lambda _self, _shape: None)
        return _outcome(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["camt.054", "camt.053"])
@pytest.mark.parametrize("prefix", ["", "c"])
def test_plain_entries_read_column_wise_as_one_by_one(
    kind: str, prefix: str, column_rows: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two statements in one message: each entry is numbered in its own.
    one = camt_document(PLAIN * 2, kind=kind, prefix=prefix).decode()
    element = (f"{prefix}:" if prefix else "") + STATEMENT_ELEMENT[kind]
    start, end = one.index(f"<{element}>"), one.index(f"</{element}>") + len(element) + 3
    data = (one[:end] + one[start:end].replace("S-1<", "S-2<", 1) + one[end:]).encode()
    outcome = _outcome(data)  # type: ignore[arg-type]
    assert outcome[0] == "ok"
    assert sum(column_rows) >= len(PLAIN), "most entries should have been read column-wise"
    assert outcome == _one_by_one(data, monkeypatch)


def test_column_wise_rows_on_the_corpus(column_rows: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(p for p in CORPUS.rglob("*.xml") if p.parent.name.startswith("camt"))
    if not files:
        pytest.skip(f"no camt files in {CORPUS} (set $PAYOUTS_CORPUS to its folder)")
    for path in files:
        assert _outcome(path) == _one_by_one(path.read_bytes(), monkeypatch), path.name
    assert sum(column_rows) > 0


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(EDIT, min_size=1, max_size=6))
def test_column_wise_rows_on_mutations(
    column_rows: list[int], monkeypatch: pytest.MonkeyPatch, edits: list[tuple[str, int, int]]
) -> None:
    data = mutate(camt_document(PLAIN[:14]), edits)
    assert _outcome(data) == _one_by_one(data, monkeypatch)  # type: ignore[arg-type]
