"""Small payment frames and helpers to read the files written from them, shared by the pain tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import polars as pl
from lxml import etree

from sepa.parties import Party

PLATFORM = Party(
    name="Kasse & Söhne Zahlungsdienste GmbH",
    iban="DE89 3704 0044 0532 0130 00",
    bic="COBADEFFXXX",
    creditor_id="DE98ZZZ09999999999",
)
CREATED_AT = datetime(2024, 5, 20, 9, 30, 15)
EXECUTION_DATE = date(2024, 5, 22)  # a Wednesday

# Names with umlauts, &, apostrophes and accents; IBANs from DE, FR, NL and AT; 1, 2, 99999 and 12345 cents.
ROWS = {
    "end_to_end_id": ["RF00000000000000000001-PO", "RF00000000000000000002-PO", "RF00000000000000000003-PO",
                      "RF00000000000000000004-PO"],
    "amount_cents": [1, 2, 99_999, 12_345],
    "name": ["Jörg Österle & Söhne", "Zoé D'Angelo", "Seán Ó Briain", "Åsa Øberg"],
    "iban": ["DE02120300000000202051", "FR76 3000 6000 0112 3456 7890 189", "NL91ABNA0417164300",
             "AT611904300234573201"],
    "bic": [None, "BNPAFRPPXXX", None, "BKAUATWW"],
    "remittance": ["Erstattung Bestellung O1 – Rücksendung", "Remboursement «été» n° 2", "Refund #3 @shop",
                   "Rückzahlung_4"],
}  # fmt: skip
TOTAL_CENTS = sum(ROWS["amount_cents"])


def transfers() -> pl.DataFrame:
    """Four customer payouts."""
    return pl.DataFrame(ROWS, schema_overrides={"bic": pl.String})


def debits(sequence_types: list[str] | None = None) -> pl.DataFrame:
    """The same four rows as merchant direct debits, FRST and RCUR mixed unless told otherwise."""
    seq = sequence_types or ["RCUR", "FRST", "RCUR", "FRST"]
    return transfers().with_columns(
        end_to_end_id=pl.col("end_to_end_id").str.replace("-PO", "-DD", literal=True),
        mandate_id=pl.Series(["MNDT-M1", "MNDT-M2", "MNDT-M3", "MNDT-M4"]),
        mandate_signed_on=pl.Series([date(2023, 1, 1), date(2024, 5, 1), date(2022, 7, 15), date(2024, 5, 20)]),
        sequence_type=pl.Series(seq),
    )


def parse(data: bytes) -> tuple[etree._Element, dict[str, str]]:
    """The document's root and a namespace map with prefix `p` for XPath."""
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    return root, {"p": etree.QName(root).namespace}


def texts(root: etree._Element, ns: dict[str, str], path: str) -> list[str]:
    """The texts of every element or attribute matching `path` (with `p:` prefixes)."""
    found = root.xpath(path, namespaces=ns)
    return [str(e) if isinstance(e, str) else (e.text or "") for e in found]  # attributes come back as strings


def cents(text: str) -> int:
    """`'1000.02'` -> 100002, exactly."""
    return int(Decimal(text) * 100)
