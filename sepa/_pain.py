"""What the pain.001 and pain.008 writers share: checking the input frame and finishing sepaxml's output.

sepaxml writes a random MsgId and random PmtInfIds and the wall-clock time as CreDtTm, on one long line.
`finish` stamps the deterministic ids and the given creation time into the exported XML with lxml, checks
that NbOfTxs and CtrlSum equal what was asked for, and writes the file indented, one element per line, so
that a validation error's line number points at one element.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import polars as pl
from lxml import etree

from sepa.charset import to_epc
from sepa.ids import is_safe_id
from sepa.parties import Party

MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99 EUR: the EPC's limit for one SCT or SDD
_BIC_RE = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_MAX_PROBLEMS_SHOWN = 5


class FileIntegrityError(RuntimeError):
    """The written file does not say what was asked for (counts, sums): a bug, never to be sent to a bank."""


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


def check_frame(frame: pl.DataFrame, columns: dict[str, type[pl.DataType]], nullable: set[str]) -> None:
    """Raise ValueError unless `frame` has rows, the columns and types asked for, no nulls where none may be,
    positive amounts within the EPC limit, EUR in a `currency` column if there is one, and unique, SEPA-safe
    EndToEndIds."""
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

    problems: list[str] = []
    if "currency" in frame.columns:  # optional: where the caller carries the currency, it must be EUR
        for e2e, currency in (
            frame.filter(pl.col("currency").ne_missing("EUR")).select("end_to_end_id", "currency").iter_rows()
        ):
            problems.append(f"{e2e}: currency {currency!r} is not EUR")
    bad_amounts = frame.filter((pl.col("amount_cents") < 1) | (pl.col("amount_cents") > MAX_AMOUNT_CENTS))
    for e2e, cents in bad_amounts.select("end_to_end_id", "amount_cents").iter_rows():
        problems.append(f"{e2e}: amount_cents {cents} is not between 1 and {MAX_AMOUNT_CENTS}")
    duplicates = frame.filter(pl.col("end_to_end_id").is_duplicated())["end_to_end_id"].unique().sort()
    problems.extend(f"{e2e}: EndToEndId appears more than once" for e2e in duplicates)
    problems.extend(f"{e2e!r}: not a SEPA-safe EndToEndId" for e2e in frame["end_to_end_id"] if not is_safe_id(e2e))
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - _MAX_PROBLEMS_SHOWN} more)" if len(problems) > _MAX_PROBLEMS_SHOWN else ""
        raise ValueError(f"{len(problems)} invalid rows: {shown}{more}")


def _type_ok(dtype: pl.DataType, kind: type[pl.DataType], nullable: bool) -> bool:
    if nullable and dtype == pl.Null:
        return True  # a column of nulls only, e.g. no BIC known for anyone
    return dtype.is_integer() if kind is pl.Int64 else dtype == kind


def epc_text(value: str, max_len: int, what: str, e2e: str) -> str:
    """`value` in the EPC set, cut to `max_len`; ValueError if nothing is left (the XSD needs 1 character)."""
    text = to_epc(value, max_len)
    if not text:
        raise ValueError(f"{e2e}: {what} {value!r} has nothing writable in the EPC character set")
    return text


def creation_time(created_at: datetime) -> str:
    """CreDtTm: whole seconds, with the UTC offset when `created_at` has one."""
    return created_at.replace(microsecond=0).isoformat()


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
                etree.SubElement(etree.SubElement(fin_instn, f"{ns}Othr"), f"{ns}Id").text = "NOTPROVIDED"

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
