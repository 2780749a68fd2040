"""What the pain.001 and pain.008 writers share: checking the input frame, preparing the texts to write,
writing and counting the transactions, and finishing the output of the sepaxml reference writers.

The streaming writers (`write_credit_transfers`, `write_direct_debits`) do per-row Python work only for
what cannot be done on whole columns: the checks are Polars expressions, the texts (EPC transliteration,
IBAN and BIC normalisation, amounts) are prepared column-wise before the first row is written, and only
values that need it go through the per-string functions, each distinct value once. Every row is then a
tuple whose texts refill a transaction template (`sepa.xml_out.Template`).

NbOfTxs and CtrlSum are written before the transactions they describe, so they come from the frame, once;
the writer counts the transactions it actually writes and raises `FileIntegrityError` when a block or the
file does not hold what its header says.

The reference writers (`reference_credit_transfers`, `reference_direct_debits`) build the document with
sepaxml, which writes a random MsgId and random PmtInfIds and the wall-clock time as CreDtTm, on one long
line. `finish` stamps the deterministic ids and the given creation time into that XML with lxml, checks
NbOfTxs and CtrlSum against what was asked for, and writes it indented like the streaming writers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import polars as pl
from lxml import etree

from sepa.charset import to_epc
from sepa.ids import is_safe_id
from sepa.parties import Party
from sepa.xml_out import INDENT, Out, Template, element, newline, sub_element

MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99 EUR: the EPC's limit for one SCT or SDD
NOT_PROVIDED = "NOTPROVIDED"  # the EPC's FinInstnId/Othr/Id for an agent whose BIC is not known
# sepaxml declares the xsi prefix on Document without using it; the streaming writers declare it too, so that
# they write the same bytes as the files written before them (their sha256 is recorded when they are built).
NAMESPACES = {"xsi": "http://www.w3.org/2001/XMLSchema-instance"}

_BIC_RE = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_MAX_PROBLEMS_SHOWN = 5
_SLICE_ROWS = 10_000  # rows turned into Python tuples at a time

# Polars (Rust) regexes for the per-string checks; tests compare them with the Python functions.
_SAFE_ID_PATTERN = r"^[A-Za-z0-9/\-?:().,'+]{1,35}$"  # sepa.ids.is_safe_id, with its two extra rules below
_EPC_PATTERN = r"^[A-Za-z0-9/\-?:().,'+ ]*$"  # sepa.charset.is_epc
_EPC_RUN_PATTERN = r"[A-Za-z0-9/\-?:().,'+ ]+"  # what epc_texts strips to find the other characters
# Where sepa.charset spells an umlaut or ligature in capitals (its _CAPS_RE): such values go through to_epc
# whole. Rust has no look-around, so this matches a little more than _CAPS_RE does, never less.
_CAPS_CONTEXT_PATTERN = r"[ÄÖÜẞßÆŒĲ][A-ZÄÖÜÆŒ]|[A-ZÄÖÜÆŒ][ÄÖÜẞßÆŒĲ]"
_ASCII_PATTERN = r"^[\x00-\x7F]*$"
# Text that lxml writes into an element as it is: printable ASCII without the three it escapes (& < >).
_PLAIN_TEXT = r"^[\x20-\x25\x27-\x3B\x3D\x3F-\x7E]*$"
# The ASCII characters str.split() splits on. Rust's \s differs from Python's whitespace outside ASCII (and
# str.upper() from Polars' upper case in newer Unicode letters), so only ASCII values are compacted here.
_ASCII_SPACE_PATTERN = r"[\t\n\x0B\x0C\r\x1C-\x1F ]"


class FileIntegrityError(RuntimeError):
    """The written file does not say what was asked for (counts, sums): a bug, never to be sent to a bank."""


# ---------------------------------------------------------------------------------------------------------
# Checking the input
# ---------------------------------------------------------------------------------------------------------


def normalise_bic(bic: str | None) -> str | None:
    """A BIC without spaces in upper case, or None when empty."""
    if bic is None:
        return None
    compact = "".join(bic.split()).upper()
    return compact or None


def check_party(party: Party, role: str) -> None:
    """Raise ValueError if `party` cannot be written into a file (no name, no IBAN, malformed BIC)."""
    if not to_epc(party.name, 70):
        raise ValueError(f"{role} name {party.name!r} has nothing writable in the EPC character set")
    if not "".join(party.iban.split()):
        raise ValueError(f"{role} IBAN is empty")
    bic = normalise_bic(party.bic)
    if bic is not None and not _BIC_RE.fullmatch(bic):
        raise ValueError(f"{role} BIC {bic!r} is not 8 or 11 letters and digits")


def check_ids(**ids: str) -> None:
    """Raise ValueError if one of the given identifiers is not SEPA-safe."""
    for name, value in ids.items():
        if not is_safe_id(value):
            raise ValueError(f"{name} {value!r} is not a SEPA-safe identifier (1-35 of A-Z a-z 0-9 /-?:().,'+)")


def safe_id(column: str) -> pl.Expr:
    """`sepa.ids.is_safe_id` of each value of a string column."""
    value = pl.col(column)
    return value.str.contains(_SAFE_ID_PATTERN) & ~value.str.starts_with("/") & ~value.str.contains("//", literal=True)


def check_frame(frame: pl.DataFrame, columns: dict[str, type[pl.DataType]], nullable: set[str]) -> None:
    """Raise ValueError unless `frame` has rows, the columns and types asked for, no nulls where none may be,
    positive amounts within the EPC limit, EUR in a `currency` column if there is one, and unique, SEPA-safe
    EndToEndIds. The message counts the problems and shows the first few, in that order of checks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    if frame.is_empty():
        raise ValueError("no rows: a payment file needs at least one transaction")
    wrong = [
        f"{c} is {frame.schema[c]}" for c, kind in columns.items() if not _type_ok(frame.schema[c], kind, c in nullable)
    ]
    if wrong:
        raise ValueError(f"wrong column types: {', '.join(wrong)}")
    nulls = [c for c in columns if c not in nullable and frame[c].null_count()]
    if nulls:
        raise ValueError(f"null values in: {', '.join(nulls)}")

    e2e = pl.col("end_to_end_id")
    checks: list[tuple[pl.DataFrame, Callable[[tuple[Any, ...]], str]]] = []
    if "currency" in frame.columns:  # optional: where the caller carries the currency, it must be EUR
        not_eur = frame.filter(pl.col("currency").ne_missing("EUR")).select(e2e, "currency")
        checks.append((not_eur, lambda row: f"{row[0]}: currency {row[1]!r} is not EUR"))
    cents = pl.col("amount_cents")
    bad_amounts = frame.filter((cents < 1) | (cents > MAX_AMOUNT_CENTS)).select(e2e, cents)
    checks.append((bad_amounts, lambda row: f"{row[0]}: amount_cents {row[1]} is not between 1 and {MAX_AMOUNT_CENTS}"))
    duplicates = frame.filter(e2e.is_duplicated()).select(e2e.unique().sort())
    checks.append((duplicates, lambda row: f"{row[0]}: EndToEndId appears more than once"))
    unsafe = frame.filter(~safe_id("end_to_end_id")).select(e2e)
    checks.append((unsafe, lambda row: f"{row[0]!r}: not a SEPA-safe EndToEndId"))

    count = sum(found.height for found, _ in checks)
    if count:
        shown = _first_problems(checks, _MAX_PROBLEMS_SHOWN)
        more = f" (and {count - _MAX_PROBLEMS_SHOWN} more)" if count > _MAX_PROBLEMS_SHOWN else ""
        raise ValueError(f"{count} invalid rows: {'; '.join(shown)}{more}")


def _first_problems(checks: list[tuple[pl.DataFrame, Callable[[tuple[Any, ...]], str]]], limit: int) -> list[str]:
    """The messages of the first `limit` failing rows, check by check."""
    shown: list[str] = []
    for found, message in checks:
        shown.extend(message(row) for row in found.head(limit - len(shown)).iter_rows())
    return shown


def _type_ok(dtype: pl.DataType, kind: type[pl.DataType], nullable: bool) -> bool:
    if nullable and dtype == pl.Null:
        return True  # a column of nulls only, e.g. no BIC known for anyone
    return dtype.is_integer() if kind is pl.Int64 else dtype == kind


# ---------------------------------------------------------------------------------------------------------
# Texts as written, prepared column-wise
# ---------------------------------------------------------------------------------------------------------


def epc_texts(values: pl.Series, max_len: int) -> pl.Series:
    """`to_epc(value, max_len)` of each value (null stays null), with per-string work only where needed.

    Most characters outside the EPC set (ü, é, &) transliterate on their own: each distinct one is looked up
    once and replaced in every value by Polars, which also collapses the spaces and cuts. Only values with a
    character that depends on its neighbours (a combining mark, or an umlaut in a word in capitals: MÜLLER
    -> MUELLER) go through `to_epc` whole, each distinct value once. Values already in the EPC set (most
    of them) are only collapsed and cut: the rest is worked on apart and put back in its place."""
    values = values.cast(pl.String)
    plain = values.str.contains(_EPC_PATTERN).fill_null(True)
    if plain.all():
        return _collapse_and_cut(values, max_len)
    others = plain.not_().arg_true()
    return _collapse_and_cut(values, max_len).scatter(others, _transliterated(values.gather(others), max_len))


def _transliterated(values: pl.Series, max_len: int) -> pl.Series:
    """`epc_texts` of values of which some are not in the EPC set."""
    outside = values.str.replace_all(_EPC_RUN_PATTERN, "").unique().drop_nulls()  # e.g. "öü" for "Jörg Müller"
    # to_epc of a character between two letters is its transliteration as it would be inside a word (with
    # spaces kept at its ends); the final collapse and strip then do what to_epc does to the whole text.
    table = {char: to_epc(f"a{char}a")[1:-1] for char in set("".join(outside)) if _stands_alone(char)}
    replaced = values.str.replace_many(table) if table else values
    simple = replaced.str.contains(_EPC_PATTERN) & ~values.str.contains(_CAPS_CONTEXT_PATTERN)
    if simple.all(ignore_nulls=True):
        return _collapse_and_cut(replaced, max_len)
    rest = values.filter(~simple).unique()
    whole = pl.Series([to_epc(value, max_len) for value in rest], dtype=pl.String)
    return pl.select(
        pl.when(simple)
        .then(_collapse_and_cut(replaced, max_len))
        .otherwise(values.replace_strict(rest, whole, default=None))
    ).to_series()


def _collapse_and_cut(values: pl.Series, max_len: int) -> pl.Series:
    """What `to_epc` does to text in the EPC set: runs of spaces collapsed, stripped, cut to `max_len`."""
    if values.str.contains("  ", literal=True).any():
        values = values.str.replace_all(" {2,}", " ")
    collapsed = values.str.strip_chars(" ")
    return collapsed.str.slice(0, max_len).str.strip_chars_end(" ")  # a cut may end on a space


def _stands_alone(char: str) -> bool:
    """True if `to_epc` transliterates `char` the same whatever its neighbours: in NFC on its own, and neither
    a mark nor a Hangul jamo, which NFC may compose with the character before (checked over all of Unicode
    by the tests)."""
    return (
        unicodedata.category(char)[0] != "M"
        and not "\u1100" <= char <= "\u11ff"
        and unicodedata.normalize("NFC", char) == char
    )


def compact_upper(values: pl.Series) -> pl.Series:
    """`"".join(value.split()).upper()` of each value (null stays null): IBANs and BICs as written.

    ASCII values are compacted by Polars; the others (rare) by Python, each distinct value once, as Rust and
    Python disagree about a few non-ASCII spaces and capitals. Values already compact and in capitals (IBANs
    as the ledger keeps them) are left as they are."""
    values = values.cast(pl.String)
    if values.str.contains(r"^[A-Z0-9]*$").all(ignore_nulls=True):
        return values
    ascii_only = values.str.contains(_ASCII_PATTERN)
    compacted = values.str.replace_all(_ASCII_SPACE_PATTERN, "").str.to_uppercase()
    if ascii_only.all(ignore_nulls=True):
        return compacted
    others = values.filter(~ascii_only).unique()
    done = pl.Series(["".join(value.split()).upper() for value in others], dtype=pl.String)
    return pl.select(
        pl.when(ascii_only).then(compacted).otherwise(values.replace_strict(others, done, default=None))
    ).to_series()


def bic_texts(values: pl.Series) -> pl.Series:
    """`normalise_bic` of each value: compacted, upper case, null when nothing is left."""
    compacted = compact_upper(values)
    return pl.select(pl.when(compacted != "").then(compacted)).to_series()


def amount_text(cents: pl.Expr) -> pl.Expr:
    """Integer cents as the decimal text of InstdAmt: 1 -> `0.01`, 123450 -> `1234.50` (positive cents)."""
    return pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def amount_total_text(cents: int) -> str:
    """Integer cents as the decimal text of CtrlSum (as `amount_text`)."""
    return f"{cents // 100}.{cents % 100:02d}"


def check_amount_texts(texts: pl.Series, cents: pl.Series) -> None:
    """Raise FileIntegrityError unless every amount text says exactly its cents."""
    said = texts.str.replace(".", "", literal=True).cast(pl.Int64, strict=False)
    wrong = (said != cents) | said.is_null() | ~texts.str.contains(r"^[0-9]+\.[0-9]{2}$")
    if wrong.any():
        raise FileIntegrityError(f"{int(wrong.sum())} amounts would not be written as their cents")


def check_texts(plan: pl.DataFrame, texts: dict[str, tuple[str, str]]) -> None:
    """Raise ValueError for the first row of `plan` (in writing order, as the reference writer would) with an
    empty text where the XSD needs at least one character; `texts` maps each prepared column to its original
    column and what it is, for the message."""
    empty = pl.any_horizontal([pl.col(column) == "" for column in texts])
    first = plan.filter(empty).head(1)
    if first.height:
        row = first.row(0, named=True)
        for column, (original, what) in texts.items():
            if row[column] == "":
                raise ValueError(
                    f"{row['end_to_end_id']}: {what} {row[original]!r} has nothing writable in the EPC character set"
                )


def epc_text(value: str, max_len: int, what: str, e2e: str) -> str:
    """`value` in the EPC set, cut to `max_len`; ValueError if nothing is left (the XSD needs 1 character)."""
    text = to_epc(value, max_len)
    if not text:
        raise ValueError(f"{e2e}: {what} {value!r} has nothing writable in the EPC character set")
    return text


def creation_time(created_at: datetime) -> str:
    """CreDtTm: whole seconds, with the UTC offset when `created_at` has one."""
    return created_at.replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------------------------------
# Streaming the transactions
# ---------------------------------------------------------------------------------------------------------


def party(tag: str, name: str) -> etree._Element:
    """`<Dbtr><Nm>name</Nm></Dbtr>` and the like."""
    return element(tag, element("Nm", text=name))


def account(tag: str, iban: str) -> etree._Element:
    """`<DbtrAcct><Id><IBAN>iban</IBAN></Id></DbtrAcct>` and the like."""
    return element(tag, element("Id", element("IBAN", text=iban)))


def agent(tag: str, bic: str | None, bic_tag: str) -> etree._Element:
    """`<DbtrAgt><FinInstnId>` with the BIC (`BIC` or `BICFI` by version), or the EPC's Othr/Id NOTPROVIDED."""
    institution = element("FinInstnId")
    if bic:
        sub_element(institution, bic_tag, bic)
    else:
        sub_element(sub_element(institution, "Othr"), "Id", NOT_PROVIDED)
    return element(tag, institution)


def template(root: etree._Element, fills: list[tuple[etree._Element, int]], level: int) -> Template:
    """`root` indented for `level`, refilled from row tuples at the given positions."""
    etree.indent(root, space=INDENT, level=level)
    return Template(root, fills)


def put_all(out: Out, elements: Iterable[etree._Element], level: int) -> None:
    """Write each of `elements` at `level`."""
    for each in elements:
        out.put(each, level)


def iter_rows(frame: pl.DataFrame) -> Iterator[tuple[Any, ...]]:
    """The rows of `frame` as tuples, a slice at a time (bounded Python memory)."""
    for part in frame.iter_slices(_SLICE_ROWS):
        yield from part.iter_rows()


def write_transactions(
    out: Out, rows: pl.DataFrame, *, with_bic: Template, without_bic: Template, bic: int, cents: int
) -> tuple[int, int]:
    """Write one transaction per row of `rows` inside a PmtInf (level 3), from `with_bic` or `without_bic` by
    whether the row's position `bic` is null; returns how many were written and their cents (position
    `cents`), for `check_block`.

    When every text is plain (printable ASCII but `&`, `<` and `>`: what the EPC set and the identifiers
    are made of), lxml would write each as it is, so the transactions are rendered by Polars column by
    column into the bytes lxml would write; otherwise each row refills a template and lxml writes it."""
    rendered = _rendered(rows, with_bic=with_bic, without_bic=without_bic, bic=bic)
    if rendered is not None:
        data = rendered.str.join("").item().encode()
        out.put_serialised(data)
        # Counted in what was written, as the rows below are: a transaction lost on the way is caught.
        return data.count(b"</%s>" % with_bic.root.tag.encode()), int(rows.to_series(cents).sum())
    count = total = 0
    for row in iter_rows(rows):
        out.put((without_bic if row[bic] is None else with_bic).fill(row), 3, indented=True)
        count += 1
        total += row[cents]
    return count, total


def _rendered(rows: pl.DataFrame, *, with_bic: Template, without_bic: Template, bic: int) -> pl.Series | None:
    """Each row's transaction as lxml serialises it at level 3 (line break and indent first), or None when a
    text of `rows` is not plain, is null (but the BIC) or is not a string: those rows are left to lxml."""
    named = rows.columns  # the templates' keys are positions in the row
    texts_with, keys_with = with_bic.pieces()
    texts_without, keys_without = without_bic.pieces()
    used = {named[key] for key in (*keys_with, *keys_without)}
    bic_column = named[bic]
    if any(rows.schema[c] != pl.String for c in used):
        return None
    plain = [pl.col(c).str.contains(_PLAIN_TEXT).fill_null(c == bic_column).all() for c in sorted(used)]
    if not all(rows.select(plain).row(0)):
        return None
    lead = newline(3)

    def rendering(texts: list[str], keys: list[int]) -> pl.Expr:
        parts: list[pl.Expr] = [pl.lit(lead + texts[0])]
        for key, text in zip(keys, texts[1:], strict=True):
            parts.extend((pl.col(named[key]), pl.lit(text)))
        return pl.concat_str(parts)

    transaction = (
        pl.when(pl.col(bic_column).is_null())
        .then(rendering(texts_without, keys_without))
        .otherwise(rendering(texts_with, keys_with))
    )
    return rows.select(transaction).to_series()


def check_block(pmt_inf_id: str, declared: tuple[int, int], written: tuple[int, int]) -> None:
    """Raise FileIntegrityError unless a PmtInf holds the (NbOfTxs, cents) its header declared."""
    if declared != written:
        raise FileIntegrityError(
            f"PmtInf {pmt_inf_id}: NbOfTxs/CtrlSum say {declared[0]} payments / {declared[1]} cents, "
            f"{written[0]} / {written[1]} were written"
        )


def check_file(header: tuple[int, int], written: tuple[int, int]) -> None:
    """Raise FileIntegrityError unless the blocks written hold the (NbOfTxs, cents) of the group header, which
    are those of the rows asked for."""
    if header != written:
        raise FileIntegrityError(
            f"GrpHdr says {header[0]} payments / {header[1]} cents as asked for, the blocks hold {written[0]} / "
            f"{written[1]}"
        )


# ---------------------------------------------------------------------------------------------------------
# The sepaxml reference writers
# ---------------------------------------------------------------------------------------------------------


def parse_cents(text: str | None) -> int:
    """`'1234.50'` -> 123450, exactly (no floats)."""
    try:
        cents = Decimal(text or "") * 100
    except InvalidOperation as exc:
        raise FileIntegrityError(f"amount {text!r} is not a number") from exc
    if cents != cents.to_integral_value():
        raise FileIntegrityError(f"amount {text!r} has more than two decimals")
    return int(cents)


def finish(
    exported: bytes,
    *,
    tx_tag: str,
    msg_id: str,
    created_at: datetime,
    pmt_inf_id: Callable[[etree._Element, str], str],
    expected_count: int,
    expected_cents: int,
    expected_date: date,
    date_path: str,
) -> bytes:
    """Stamp ids and creation time into sepaxml's `exported` XML, check its counts, sums and dates, and return
    it indented. `pmt_inf_id(pmt_inf, ns)` names each PmtInf block; `date_path` is the block's date element."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=True)
    root = etree.fromstring(exported, parser)  # our own output: huge_tree, as a file may hold 100,000 payments
    ns = "{" + (etree.QName(root).namespace or "") + "}"
    initn = root[0]
    header = initn.find(f"{ns}GrpHdr")
    if header is None:
        raise FileIntegrityError("exported file has no GrpHdr")
    header.find(f"{ns}MsgId").text = msg_id
    header.find(f"{ns}CreDtTm").text = creation_time(created_at)

    total_count = 0
    total_cents = 0
    blocks = initn.findall(f"{ns}PmtInf")
    for block in blocks:
        block.find(f"{ns}PmtInfId").text = pmt_inf_id(block, ns)
        txs = block.findall(f"{ns}{tx_tag}")
        cents = sum(parse_cents(amount.text) for amount in block.iter(f"{ns}InstdAmt"))
        if (
            int(block.findtext(f"{ns}NbOfTxs") or -1) != len(txs)
            or parse_cents(block.findtext(f"{ns}CtrlSum")) != cents
        ):
            raise FileIntegrityError(
                f"PmtInf {block.findtext(f'{ns}PmtInfId')}: NbOfTxs/CtrlSum do not match its payments"
            )
        if block.findtext(_qualify(date_path, ns)) != expected_date.isoformat():
            raise FileIntegrityError(f"PmtInf {block.findtext(f'{ns}PmtInfId')}: date is not {expected_date}")
        total_count += len(txs)
        total_cents += cents
        # EPC rule: an agent without a BIC is written as Othr/Id NOTPROVIDED, not as an empty FinInstnId.
        for fin_instn in block.iter(f"{ns}FinInstnId"):
            if len(fin_instn) == 0:
                etree.SubElement(etree.SubElement(fin_instn, f"{ns}Othr"), f"{ns}Id").text = NOT_PROVIDED

    header_count = int(header.findtext(f"{ns}NbOfTxs") or -1)
    header_cents = parse_cents(header.findtext(f"{ns}CtrlSum"))
    if not (header_count == total_count == expected_count and header_cents == total_cents == expected_cents):
        raise FileIntegrityError(
            f"GrpHdr says {header_count} payments / {header_cents} cents, the blocks hold {total_count} / "
            f"{total_cents}, asked for {expected_count} / {expected_cents}"
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _qualify(path: str, ns: str) -> str:
    """`ReqdExctnDt/Dt` -> `{ns}ReqdExctnDt/{ns}Dt`."""
    return "/".join(ns + part for part in path.split("/"))


def add_payment(writer: object, payment: dict, bic: str | None) -> None:
    """Hand one transaction to a sepaxml writer: the BIC only when known, and a copy of the dict,
    because sepaxml's add_payment rewrites the dict it is given."""
    normalised = normalise_bic(bic)
    if normalised:
        payment = {**payment, "BIC": normalised}
    writer.add_payment(dict(payment))  # type: ignore[attr-defined]
