"""Seeded generator of realistic shop exports for demos, tests and load runs.

``generate_shop_export`` writes the five CSV files a shop export consists of (merchants, orders,
unmatched payments, refund requests and the excluded IBANs) and plants the awkward cases the
pipeline has to cope with: invalid and unknown IBANs, carrier accounts, over-limit and late refund
requests, partial refunds that add up past the limit, refunds on instalment orders, duplicate refund
references, unknown merchants and orders, and integrated merchants whose balance cannot cover their
refunds. Every planted case is counted in the returned dict so tests can assert it is there.

Determinism: everything is drawn from one ``random.Random(seed)`` (and Faker instances seeded from
it); nothing reads the wall clock, global random state or iterates a set, so the same arguments give
byte-identical files in any process.
"""

from __future__ import annotations

import functools
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Generic, TypeVar

import polars as pl
from faker import Faker
from schwifty import IBAN
from schwifty.checksum import algorithms as national_checksums
from schwifty.domain import Bank, Component
from schwifty.exceptions import SchwiftyException
from schwifty.registry import get_banks_by_country, get_iban_spec

__all__ = ["COLUMNS", "generate_shop_export"]

# The exact export layout, file stem -> columns in order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "merchants": (
        "merchant_id",
        "name",
        "iban",
        "bic",
        "funding",
        "mandate_id",
        "mandate_signed_on",
        "waiting_days",
        "refund_window_days",
        "only_refund_paid",
        "collection",
        "balance_cents",
        "pay_on_release",
    ),
    "orders": (
        "order_id",
        "merchant_id",
        "customer_name",
        "customer_email",
        "customer_iban",
        "amount_cents",
        "paid_cents",
        "ordered_on",
        "instalments",
        "instalments_paid",
        "refundable",
    ),
    "payments": ("payment_id", "merchant_id", "payer_name", "payer_iban", "amount_cents", "received_on"),
    "refunds": (
        "refund_ref",
        "merchant_id",
        "order_id",
        "payment_id",
        "amount_cents",
        "requested_on",
        "reason",
    ),
    "excluded_ibans": ("iban", "owner", "kind"),
}
_INT_COLUMNS = frozenset(
    {
        "waiting_days",
        "refund_window_days",
        "balance_cents",
        "amount_cents",
        "paid_cents",
        "instalments",
        "instalments_paid",
    }
)

# Orders may predate the period: refunds in the period are asked for on earlier orders.
_ORDER_LOOKBACK_DAYS = 60

# The seed case from the instalment spec: 40000 in 4 instalments, 2 paid, refund of 25000.
SEED_CASE_AMOUNT = 40_000
SEED_CASE_INSTALMENTS = 4
SEED_CASE_PAID_INSTALMENTS = 2
SEED_CASE_REFUND = 25_000

# Locale -> IBAN country. Only Latin-script SEPA locales: SEPA names must fit its character set.
_LOCALE_COUNTRY: dict[str, str] = {
    "de_DE": "DE", "de_AT": "AT", "fr_FR": "FR", "fr_BE": "BE", "nl_BE": "BE", "nl_NL": "NL",
    "it_IT": "IT", "es_ES": "ES", "pt_PT": "PT", "fi_FI": "FI", "sv_SE": "SE", "da_DK": "DK",
    "pl_PL": "PL", "cs_CZ": "CZ", "sk_SK": "SK", "sl_SI": "SI", "en_IE": "IE", "et_EE": "EE",
    "lv_LV": "LV", "lt_LT": "LT", "hr_HR": "HR",
}  # fmt: skip
_LOCALES: tuple[str, ...] = tuple(_LOCALE_COUNTRY)

# Where merchants sit (a German-led marketplace) and where foreign customers come from.
_MERCHANT_LOCALES: tuple[tuple[str, int], ...] = (
    ("de_DE", 36), ("de_AT", 10), ("nl_NL", 9), ("fr_FR", 10), ("fr_BE", 3), ("nl_BE", 3),
    ("it_IT", 8), ("es_ES", 7), ("pt_PT", 3), ("en_IE", 3), ("fi_FI", 2), ("pl_PL", 4), ("cs_CZ", 2),
)  # fmt: skip
_FOREIGN_CUSTOMER_LOCALES: tuple[tuple[str, int], ...] = (
    ("de_DE", 20), ("de_AT", 6), ("fr_FR", 12), ("fr_BE", 3), ("nl_BE", 3), ("nl_NL", 8),
    ("it_IT", 9), ("es_ES", 8), ("pt_PT", 3), ("fi_FI", 2), ("sv_SE", 3), ("da_DK", 2), ("pl_PL", 5),
    ("cs_CZ", 2), ("sk_SK", 2), ("sl_SI", 1), ("en_IE", 3), ("et_EE", 1), ("lv_LV", 1), ("lt_LT", 1),
    ("hr_HR", 1),
)  # fmt: skip
_HOME_CUSTOMER_SHARE = 0.7

_LANGUAGE: dict[str, str] = {
    "de_DE": "de", "de_AT": "de", "fr_FR": "fr", "fr_BE": "fr", "nl_BE": "nl", "nl_NL": "nl",
    "it_IT": "it", "es_ES": "es", "pt_PT": "pt", "fi_FI": "fi", "en_IE": "en", "pl_PL": "pl",
    "cs_CZ": "cs",
}  # fmt: skip

# {l1}/{l2}: surnames, {f}: first name, all from the merchant's own locale.
_COMPANY_TEMPLATES: dict[str, tuple[str, ...]] = {
    "de_DE": ("{l1} GmbH", "{l1} & {l2} GmbH", "{f} {l1} & Söhne GmbH", "{l1} GmbH & Co. KG",
              "{f}'s Laden", "{f} {l1} e.K.", "Möbelhaus {l1}", "Bäckerei {l1} & Töchter OHG", "{company}"),
    "de_AT": ("{l1} & {l2} KG", "{l1} GmbH", "{f} {l1} e.U.", "Trachten {l1}", "{l1} & Söhne OG",
              "{company}"),
    "fr_FR": ("{l1} & Fils SARL", "L'Atelier de {f}", "Maison {l1} SAS", "{l1} et Cie",
              "Épicerie {l1} & {l2}", "Librairie {l1}"),
    "fr_BE": ("{l1} & Fils SRL", "Brasserie {l1}", "L'Atelier de {f}", "{l1} SRL", "{company}"),
    "nl_BE": ("{l1} BV", "{l1} & Zonen", "'t Winkeltje van {f}", "{l1} CommV", "{company}"),
    "nl_NL": ("{l1} B.V.", "{l1} & Zn.", "'t Winkeltje van {f}", "{l1} & {l2} V.O.F.", "{company}"),
    "it_IT": ("{l1} & Figli S.r.l.", "L'Angolo di {f}", "{l1} S.p.A.", "Bottega {l1} S.n.c.",
              "{l1} e {l2} S.r.l.", "L'Officina di {f}"),
    "es_ES": ("{l1} y {l2} S.L.", "Hermanos {l1} S.A.", "Almacenes {l1} S.L.", "{l1} & Asociados S.L.",
              "Ferretería {l1}"),
    "pt_PT": ("{l1} & Filhos, Lda.", "{l1} Unipessoal, Lda.", "Casa {l1}", "Sapataria {l1}"),
    "en_IE": ("{l1} & Sons Ltd", "{l1} Ltd", "{f}'s Bakery", "{l1} & {l2} Ltd"),
    "fi_FI": ("{l1} Oy", "{l1} & {l2} Ky", "Kauppa {l1} Oy"),
    "pl_PL": ("{l1} Sp. z o.o.", "{l1} & {l2} s.c.", "Sklep {l1}", "P.H.U. {l1}"),
    "cs_CZ": ("{l1} s.r.o.", "{l1} & {l2} v.o.s.", "Obchod {l1}"),
}  # fmt: skip
_FIRST_MERCHANT_NAME = "Jörg Österle & Söhne GmbH"

# Surnames with apostrophes the locales rarely produce on their own (en_IE and nl_* already do).
_APOSTROPHE_SURNAMES: dict[str, tuple[str, ...]] = {
    "it_IT": ("D'Angelo", "D'Amico", "Dell'Acqua", "D'Alessandro", "Dall'Ara"),
    "fr_FR": ("d'Aubigny", "D'Amour", "L'Hôte", "d'Estaing"),
    "fr_BE": ("D'Hondt", "d'Ursel", "L'Écuyer"),
    "de_DE": ("D'Agostino", "O'Neill"),
}
_APOSTROPHE_SHARE = 0.02

_REASONS: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {"return": ("Rücksendung", "Retoure erhalten", "Widerruf", "Falsche Größe", "Stornierung",
                      "Artikel nicht geliefert"),
           "partial": ("Teilerstattung", "Teilrücksendung", "Preisnachlass", "Versandkosten erstattet",
                       "Kulanz"),
           "damaged": ("Ware beschädigt", "Artikel defekt"),
           "overpaid": ("Doppelt bezahlt", "Überzahlung"),
           "payment": ("Zahlung ohne Bestellung", "Doppelte Überweisung", "Zahlung nicht zuordenbar")},
    "fr": {"return": ("retour article", "rétractation", "commande annulée", "colis non livré"),
           "partial": ("remboursement partiel", "geste commercial", "frais de port remboursés"),
           "damaged": ("article endommagé", "produit défectueux"),
           "overpaid": ("paiement en double", "trop-perçu"),
           "payment": ("virement sans commande", "paiement non identifié")},
    "nl": {"return": ("retour", "herroeping", "bestelling geannuleerd"),
           "partial": ("gedeeltelijke terugbetaling", "coulance", "verzendkosten terug"),
           "damaged": ("beschadigd artikel",),
           "overpaid": ("dubbel betaald",),
           "payment": ("betaling zonder bestelling",)},
    "it": {"return": ("reso", "recesso", "ordine annullato"),
           "partial": ("rimborso parziale", "sconto concesso"),
           "damaged": ("articolo danneggiato",),
           "overpaid": ("pagamento doppio",),
           "payment": ("bonifico senza ordine",)},
    "es": {"return": ("devolución", "desistimiento", "pedido cancelado"),
           "partial": ("reembolso parcial", "gastos de envío"),
           "damaged": ("artículo dañado",),
           "overpaid": ("pago duplicado",),
           "payment": ("transferencia sin pedido",)},
    "pt": {"return": ("devolução", "encomenda cancelada"),
           "partial": ("reembolso parcial",),
           "damaged": ("artigo danificado",),
           "overpaid": ("pagamento em duplicado",),
           "payment": ("transferência sem encomenda",)},
    "en": {"return": ("returned goods", "order cancelled", "not delivered", "wrong size"),
           "partial": ("partial refund", "goodwill", "shipping refund"),
           "damaged": ("damaged item", "faulty product"),
           "overpaid": ("paid twice", "overpayment"),
           "payment": ("payment without order", "unidentified payment")},
    "fi": {"return": ("palautus", "tilaus peruttu"),
           "partial": ("osittainen hyvitys",),
           "damaged": ("vaurioitunut tuote",),
           "overpaid": ("maksettu kahdesti",),
           "payment": ("maksu ilman tilausta",)},
    "pl": {"return": ("zwrot towaru", "odstąpienie od umowy"),
           "partial": ("częściowy zwrot",),
           "damaged": ("uszkodzony towar",),
           "overpaid": ("podwójna płatność",),
           "payment": ("wpłata bez zamówienia",)},
    "cs": {"return": ("vrácení zboží", "odstoupení od smlouvy"),
           "partial": ("částečná refundace",),
           "damaged": ("poškozené zboží",),
           "overpaid": ("dvojí platba",),
           "payment": ("platba bez objednávky",)},
}  # fmt: skip

# (owner, kind, IBAN country) of the accounts refunds must never go to.
_EXCLUDED_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("DHL Nachnahme", "carrier", "DE"),
    ("Hermes Nachnahme", "carrier", "DE"),
    ("GLS Nachnahme", "carrier", "DE"),
    ("Österreichische Post AG Nachnahme", "carrier", "AT"),
    ("La Poste Colissimo contre-remboursement", "carrier", "FR"),
    ("PostNL Rembours", "carrier", "NL"),
    ("Bank Verrechnungskonto Rücklastschriften", "bank_internal", "DE"),
    ("Payouts Platform GmbH Treuhandkonto", "platform", "DE"),
)

# Planted shares; counts are exact (round(share * n)) so a given size always plants the same number.
_SHARE_INTEGRATED = 0.30
_SHARE_ONLY_REFUND_PAID = 0.15
_SHARE_SHORT_BALANCE = 0.10
_SHARE_NO_IBAN = 0.05
_SHARE_INVALID_IBAN = 0.02
_SHARE_EXCLUDED_IBAN = 0.005
_SHARE_MERCHANT_IBAN = 0.003
_SHARE_INSTALMENTS = 0.08
_SHARE_PARTIALLY_PAID = 0.015
_SHARE_UNPAID = 0.005
_SHARE_OVERPAID = 0.01
_SHARE_NOT_REFUNDABLE = 0.03
_SHARE_REPEAT_CUSTOMER = 0.12  # buys again at the same shop
_SHARE_MARKETPLACE_CUSTOMER = 0.5  # already bought at another shop of the platform
_PAYMENTS_PER_ORDER = 1 / 60
_REFUNDS_PER_ORDER = 1 / 3.5


_Customer = tuple[str, str, str]  # name, email, IBAN


@dataclass(slots=True)
class _Merchant:
    merchant_id: str
    locale: str
    name: str
    iban: str
    bic: str | None
    funding: str
    mandate_id: str | None
    mandate_signed_on: date | None
    waiting_days: int
    refund_window_days: int
    only_refund_paid: bool
    collection: str
    balance_cents: int | None = None
    pay_on_release: bool = False


@dataclass(slots=True)
class _Order:
    order_id: str
    merchant: _Merchant
    customer_name: str
    customer_email: str
    customer_iban: str | None
    amount_cents: int
    paid_cents: int
    ordered_on: date
    instalments: int
    instalments_paid: int
    refundable: bool


@dataclass(slots=True)
class _Payment:
    payment_id: str
    merchant: _Merchant
    payer_name: str
    payer_iban: str | None
    amount_cents: int
    received_on: date


@dataclass(slots=True)
class _Refund:
    merchant_id: str
    order_id: str | None
    payment_id: str | None
    amount_cents: int
    requested_on: date
    reason: str | None
    seq: int  # creation order, the tie-breaker that keeps the export order deterministic
    refund_ref: str = ""
    plain: bool = False  # an unremarkable refund, safe to duplicate


def generate_shop_export(
    out_dir: Path,
    *,
    merchants: int = 200,
    orders: int = 20_000,
    start: date,
    end: date,
    seed: int = 7,
) -> dict[str, int]:
    """Write a realistic, seeded shop export into ``out_dir`` and return what it holds.

    Writes merchants.csv, orders.csv, payments.csv, refunds.csv and excluded_ibans.csv (UTF-8,
    header row, columns as in ``COLUMNS``, money in integer cents). Refunds are requested between
    ``start`` and ``end``; orders and payments reach back 60 days before ``start``. The same
    arguments give byte-identical files.

    Returns the row count per file (keys = file stem) and the number of each awkward case planted:

    - merchants: ``short_balance`` (integrated, balance under 15% of the refunds asked of them);
    - orders: ``unknown_iban`` (empty), ``invalid_iban`` (wrong check digits), ``excluded_iban``
      (a carrier's account), ``merchant_own_iban``, ``instalment_orders``, ``partially_paid``,
      ``unpaid``, ``overpaid`` (paid more than twice the amount), ``not_refundable_orders``,
      ``apostrophe_names``;
    - payments: ``unknown_payer_iban``, ``invalid_payer_iban``, ``excluded_payer_iban``;
    - refund rows: ``full_refunds`` and ``partial_refunds`` (ordinary ones), ``over_limit`` (more
      than twice the order amount), ``instalment_refunds``, ``seed_case`` (40000 in 4 instalments,
      2 paid, refund 25000), ``overpayment_refunds`` (the excess of an overpaid order),
      ``payment_refunds``, ``payment_over_amount``, ``late_refunds`` (after the merchant's refund
      window), ``non_refundable``, ``duplicate_refs`` (extra copies), ``unknown_merchant``,
      ``unknown_order``;
    - orders with several partial refunds: ``multi_partial_within`` (sum within the order amount)
      and ``multi_partial_exceeding`` (each below the order amount, the second passes it, the sum
      passes twice it).

    Not thread-safe: Faker instances are cached per locale and re-seeded on every call.
    """
    if merchants < 1 or orders < 1:
        raise ValueError("need at least one merchant and one order")
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    return _ShopExport(merchants=merchants, orders=orders, start=start, end=end, seed=seed).write(out_dir)


# The only Faker providers used; loading all of them costs ~50 ms per locale.
_FAKER_PROVIDERS = ["faker.providers.person", "faker.providers.company", "faker.providers.internet"]


@functools.cache
def _faker(locale: str) -> Faker:
    # Built once per locale and process; every run re-seeds it, which is cheap.
    return Faker(locale, providers=_FAKER_PROVIDERS)


@functools.cache
def _country_banks(country: str) -> tuple[Bank, ...]:
    spec = get_iban_spec(country)
    bank_len = spec.positions[Component.BANK_CODE].length
    branch_len = spec.positions[Component.BRANCH_CODE].length
    banks = []
    for bank in get_banks_by_country(country):
        if len(bank.bank_code) not in (bank_len, bank_len + branch_len):
            continue
        # Skip banks whose national check-digit method schwifty cannot compute (a few German ones):
        # their IBANs would pass IBAN() but fail a national-checksum validation.
        if bank.checksum_algo != "default" and f"{country}:{bank.checksum_algo}" not in national_checksums:
            continue
        banks.append(bank)
    if not banks:
        raise ValueError(f"schwifty's bank registry has no usable bank for {country}")
    return tuple(banks)


def _digits(rng: Random, n: int) -> str:
    return "".join(rng.choices("0123456789", k=n))


def valid_iban(rng: Random, country: str) -> IBAN:
    """A valid IBAN for a bank from schwifty's registry, national check digits included."""
    spec = get_iban_spec(country)
    bank_len = spec.positions[Component.BANK_CODE].length
    branch_len = spec.positions[Component.BRANCH_CODE].length
    account_len = spec.positions[Component.ACCOUNT_CODE].length
    banks = _country_banks(country)
    for _ in range(100):
        bank = rng.choice(banks)
        bank_code = bank.bank_code[:bank_len]
        branch_code = bank.bank_code[bank_len:]
        if not branch_code and branch_len:
            # CZ/SK keep an account-number prefix in the branch slot, mostly zeros.
            branch_code = "0" * branch_len if country in ("CZ", "SK") else _digits(rng, branch_len)
        components = {
            Component.BANK_CODE: bank_code,
            Component.BRANCH_CODE: branch_code,
            Component.ACCOUNT_CODE: _digits(rng, account_len),
        }
        # Where the check digit sits inside the account number (DE, CZ, SK), splice in a valid one
        # the way schwifty's own IBAN.random does; separate check-digit fields are filled by generate.
        algo = national_checksums.get(f"{country}:{bank.checksum_algo}")
        spliced = False
        if algo is not None and all(c in components for c in algo.accepts):
            solved = algo.solve([components[c] for c in algo.accepts])
            if solved is None:
                continue
            spliced = solved != [components[c] for c in algo.accepts]
            components.update(zip(algo.accepts, solved, strict=True))
        extra: dict[str, str] = {}
        national = spec.positions[Component.NATIONAL_CHECKSUM_DIGITS].length
        if algo is None and national:
            # No algorithm (e.g. SE): generate would leave zeros, real accounts carry some digit.
            extra[Component.NATIONAL_CHECKSUM_DIGITS.value] = _digits(rng, national)
        try:
            iban = IBAN.generate(
                country,
                bank_code=components[Component.BANK_CODE],
                branch_code=components[Component.BRANCH_CODE],
                account_code=components[Component.ACCOUNT_CODE],
                **extra,
            )
            # generate() has validated length, format and IBAN check digits. A separate national
            # check-digit field is computed by schwifty itself; a spliced one is checked, as
            # schwifty's IBAN.random does too.
            if spliced:
                iban.bban.validate_national_checksum()
        except SchwiftyException:
            continue
        return iban
    raise RuntimeError(f"could not generate a valid {country} IBAN")


def _with_wrong_check_digits(rng: Random, iban: str) -> str:
    """The same IBAN with wrong check digits (never an alias of the right ones: 03..96 only)."""
    right = int(iban[2:4])
    wrong = rng.choice([d for d in range(3, 97) if d != right])
    return f"{iban[:2]}{wrong:02d}{iban[4:]}"


_ASCII_FOLD = str.maketrans({"ß": "ss", "ø": "o", "æ": "ae", "ł": "l", "đ": "d", "œ": "oe", "þ": "th"})


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_ASCII_FOLD))
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c == "-"))


def _exact(share: float, n: int) -> int:
    return round(share * n)


_T = TypeVar("_T")


class _Picker(Generic[_T]):
    """Weighted choice with precomputed cumulative weights (rng.choices recomputes them each call)."""

    def __init__(self, items: Sequence[_T], weights: Sequence[float]) -> None:
        self.items = items
        self.cum = list(accumulate(weights))

    def pick(self, rng: Random) -> _T:
        return self.items[bisect_right(self.cum, rng.random() * self.cum[-1])]


class _ShopExport:
    def __init__(self, *, merchants: int, orders: int, start: date, end: date, seed: int) -> None:
        self.n_merchants = merchants
        self.n_orders = orders
        self.start = start
        self.end = end
        self.rng = Random(seed)
        # Each locale's Faker gets its seed from the master stream in a fixed order, and is seeded
        # on first use, so runs that need few locales don't build the others.
        self._faker_seeds = {locale: self.rng.getrandbits(64) for locale in _LOCALES}
        self._seeded: set[str] = set()
        self.counts: dict[str, int] = {}
        self.merchants: list[_Merchant] = []
        self.orders: list[_Order] = []
        self.payments: list[_Payment] = []
        self.refunds: list[_Refund] = []
        self.excluded: list[tuple[str, str, str]] = []
        self.seed_index = 0
        self.payment_kind: dict[str, set[int]] = {}
        self._seq = 0

    # -- dates ----------------------------------------------------------------------------------

    def _day_between(self, lo: date, hi: date, skew: float = 1.0) -> date:
        """A day in [lo, hi]; skew > 1 leans towards lo (refunds come soon after the order)."""
        span = (hi - lo).days
        return lo + timedelta(days=min(span, int((span + 1) * self.rng.random() ** skew)))

    def _in_window(self, merchant: _Merchant, since: date, *, natural: bool = False) -> date | None:
        """A request day within the merchant's refund window and the period, None if they don't meet.

        Most requests come soon after the order. With ``natural`` a day that falls outside the period
        gives None (that refund happened outside this export); otherwise the day is redrawn, rather
        than clamped, which would pile requests up on the period's edges.
        """
        window_end = since + timedelta(days=merchant.refund_window_days)
        lo, hi = max(self.start, since), min(self.end, window_end)
        if lo > hi:
            return None
        for _ in range(1 if natural else 10):
            day = self._day_between(since, window_end, skew=1.6)
            if lo <= day <= hi:
                return day
        return None if natural else self._day_between(lo, hi)

    # -- people and money -----------------------------------------------------------------------

    def _fk(self, locale: str) -> Faker:
        fk = _faker(locale)
        if locale not in self._seeded:
            fk.seed_instance(self._faker_seeds[locale])
            self._seeded.add(locale)
        return fk

    def _person(self, locale: str) -> str:
        fk = self._fk(locale)
        name = fk.name()
        surnames = _APOSTROPHE_SURNAMES.get(locale)
        if surnames and self.rng.random() < _APOSTROPHE_SHARE:
            name = f"{fk.first_name()} {self.rng.choice(surnames)}"
        return name

    def _email(self, name: str, locale: str) -> str:
        # Titles ("Dr.", "MBA.", Polish "pan") are not part of mail addresses.
        tokens = name.split()
        while len(tokens) > 1 and tokens[0].islower():
            tokens.pop(0)
        parts = [_ascii(p) for p in tokens if not p.endswith(".")]
        parts = [p for p in parts if p] or ["kunde"]
        first, last = parts[0], parts[-1]
        style = self.rng.randrange(5)
        if style == 0:
            local = f"{first}.{last}"
        elif style == 1:
            local = f"{first}{last}{self.rng.randint(1, 99)}"
        elif style == 2:
            local = f"{first[0]}.{last}"
        elif style == 3:
            local = f"{last}.{first}"
        else:
            local = f"{first}_{self.rng.randint(1960, 2006)}"
        return f"{local}@{self._fk(locale).free_email_domain()}"

    def _price(self, low_euros: float = 5.0, high_euros: float = 500.0, median: float = 45.0) -> int:
        """A shop price in cents like 44.99 or 120.00, between 500 and 50000."""
        euros = min(high_euros, max(low_euros, self.rng.lognormvariate(0, 0.8) * median))
        ending = self.rng.choice((99, 99, 95, 90, 0, 0, 50))
        cents = int(euros) * 100 + ending
        return min(50_000, max(500, cents))

    def _permille(self, amount: int, lo: int, hi: int) -> int:
        """amount * U[lo, hi] / 1000 in whole cents, integer arithmetic only."""
        return amount * self.rng.randint(lo, hi) // 1000

    # -- merchants ------------------------------------------------------------------------------

    def _company(self, locale: str) -> str:
        fk = self._fk(locale)
        template = self.rng.choice(_COMPANY_TEMPLATES[locale])
        if template == "{company}":
            return fk.company()
        return template.format(l1=fk.last_name(), l2=fk.last_name(), f=fk.first_name())

    def _make_merchants(self) -> None:
        rng = self.rng
        n = self.n_merchants
        ids = list(range(n))
        rng.shuffle(ids)
        # Both funding kinds whenever there are two merchants; exact shares otherwise.
        n_integrated = max(1, _exact(_SHARE_INTEGRATED, n)) if n >= 2 else 0
        integrated = set(ids[:n_integrated])
        only_paid = set(ids[n_integrated : n_integrated + _exact(_SHARE_ONLY_REFUND_PAID, n)])
        locales = _Picker(tuple(loc for loc, _ in _MERCHANT_LOCALES), tuple(w for _, w in _MERCHANT_LOCALES))
        for i in range(n):
            locale = "de_DE" if i == 0 else locales.pick(rng)
            name = _FIRST_MERCHANT_NAME if i == 0 else self._company(locale)
            merchant_id = f"M{i + 1:04d}"
            iban = valid_iban(rng, _LOCALE_COUNTRY[locale])
            bic = iban.bic
            funding = "integrated" if i in integrated else "own_account"
            # Integrated merchants are paid out of their balance; only some signed a mandate anyway.
            has_mandate = funding == "own_account" or rng.random() < 0.4
            self.merchants.append(
                _Merchant(
                    merchant_id=merchant_id,
                    locale=locale,
                    name=name,
                    iban=str(iban),
                    bic=str(bic) if bic is not None and rng.random() < 0.75 else None,
                    funding=funding,
                    mandate_id=f"MNDT-{merchant_id}" if has_mandate else None,
                    mandate_signed_on=(self.start - timedelta(days=rng.randint(14, 1500)) if has_mandate else None),
                    waiting_days=rng.choices((7, 3, 14), weights=(80, 10, 10))[0],
                    refund_window_days=rng.choices((56, 30, 90), weights=(80, 10, 10))[0],
                    only_refund_paid=i in only_paid,
                    collection=rng.choices(("weekly", "twice_weekly", "per_refund"), weights=(80, 15, 5))[0],
                    # A third of own-account merchants let their customers be paid once the collection
                    # file is released (chosen by position, so the random sequence stays as it was).
                    pay_on_release=funding == "own_account" and i % 3 == 0,
                )
            )

    def _make_excluded(self) -> None:
        for owner, kind, country in _EXCLUDED_ACCOUNTS:
            self.excluded.append((str(valid_iban(self.rng, country)), owner, kind))

    # -- orders ---------------------------------------------------------------------------------

    def _make_orders(self) -> None:
        rng = self.rng
        n = self.n_orders
        counts = self.counts
        # A few merchants sell most: log-normal sizes.
        merchant_picker = _Picker(self.merchants, [rng.lognormvariate(0, 1) for _ in self.merchants])
        foreign = _Picker(
            tuple(loc for loc, _ in _FOREIGN_CUSTOMER_LOCALES), tuple(w for _, w in _FOREIGN_CUSTOMER_LOCALES)
        )
        home_locales = {"fr_BE": ("fr_BE", "nl_BE"), "nl_BE": ("nl_BE", "fr_BE")}

        # The seed case is kept clear of every other oddity; the remaining orders are dealt into
        # disjoint sets so each planted count is exact.
        self.seed_index = rng.randrange(n)
        others = [i for i in range(n) if i != self.seed_index]

        def deal(shares: list[tuple[str, float]]) -> dict[str, set[int]]:
            pool = others[:]
            rng.shuffle(pool)
            dealt: dict[str, set[int]] = {}
            pos = 0
            for key, share in shares:
                k = _exact(share, n)
                dealt[key] = set(pool[pos : pos + k])
                pos += k
            return dealt

        payment_kind = deal(
            [
                ("instalment_orders", _SHARE_INSTALMENTS),
                ("partially_paid", _SHARE_PARTIALLY_PAID),
                ("unpaid", _SHARE_UNPAID),
                ("overpaid", _SHARE_OVERPAID),
            ]
        )
        iban_kind = deal(
            [
                ("unknown_iban", _SHARE_NO_IBAN),
                ("invalid_iban", _SHARE_INVALID_IBAN),
                ("excluded_iban", _SHARE_EXCLUDED_IBAN),
                ("merchant_own_iban", _SHARE_MERCHANT_IBAN),
            ]
        )
        not_refundable = deal([("not_refundable_orders", _SHARE_NOT_REFUNDABLE)])["not_refundable_orders"]
        for key, members in (*payment_kind.items(), *iban_kind.items()):
            counts[key] = len(members)
        counts["instalment_orders"] += 1  # the seed case is one too
        counts["not_refundable_orders"] = len(not_refundable)
        carrier_ibans = [iban for iban, _, kind in self.excluded if kind == "carrier"]
        eligible_for_seed = [m for m in self.merchants if not m.only_refund_paid] or self.merchants

        by_merchant: dict[str, list[_Customer]] = {}
        by_locale: dict[str, list[_Customer]] = {}
        lookback_start = self.start - timedelta(days=_ORDER_LOOKBACK_DAYS)
        for i in range(n):
            is_seed = i == self.seed_index
            merchant = rng.choice(eligible_for_seed) if is_seed else merchant_picker.pick(rng)
            known = by_merchant.setdefault(merchant.merchant_id, [])
            if known and rng.random() < _SHARE_REPEAT_CUSTOMER:
                name, email, iban = rng.choice(known)
            else:
                if rng.random() < _HOME_CUSTOMER_SHARE:
                    locale = rng.choice(home_locales.get(merchant.locale, (merchant.locale,)))
                else:
                    locale = foreign.pick(rng)
                seen = by_locale.setdefault(locale, [])
                if seen and rng.random() < _SHARE_MARKETPLACE_CUSTOMER:
                    name, email, iban = rng.choice(seen)
                else:
                    name = self._person(locale)
                    email = self._email(name, locale)
                    iban = str(valid_iban(rng, _LOCALE_COUNTRY[locale]))
                    seen.append((name, email, iban))
                known.append((name, email, iban))

            customer_iban: str | None = iban
            if i in iban_kind["unknown_iban"]:
                customer_iban = None  # paid cash on delivery or from abroad: no IBAN known
            elif i in iban_kind["invalid_iban"]:
                customer_iban = _with_wrong_check_digits(rng, iban)
            elif i in iban_kind["excluded_iban"]:
                customer_iban = rng.choice(carrier_ibans)
            elif i in iban_kind["merchant_own_iban"]:
                customer_iban = merchant.iban

            instalments, instalments_paid = 1, 1
            if is_seed:
                amount, instalments, instalments_paid = (
                    SEED_CASE_AMOUNT,
                    SEED_CASE_INSTALMENTS,
                    SEED_CASE_PAID_INSTALMENTS,
                )
                paid = _instalments_sum(amount, instalments, instalments_paid)
            elif i in payment_kind["instalment_orders"]:
                # Instalments are offered on the bigger baskets.
                amount = self._price(low_euros=150, high_euros=500, median=250)
                instalments = rng.choice((3, 4))
                # Mostly mid-plan; some plans are already paid off.
                instalments_paid = rng.randint(1, instalments - 1) if rng.random() < 0.8 else instalments
                if (amount, instalments, instalments_paid) == (
                    SEED_CASE_AMOUNT,
                    SEED_CASE_INSTALMENTS,
                    SEED_CASE_PAID_INSTALMENTS,
                ):
                    amount -= 100  # keep the seed case unique
                paid = _instalments_sum(amount, instalments, instalments_paid)
            else:
                amount = self._price()
                paid = amount
                if i in payment_kind["partially_paid"]:
                    paid, instalments_paid = self._permille(amount, 200, 900), 0
                elif i in payment_kind["unpaid"]:
                    paid, instalments_paid = 0, 0
                elif i in payment_kind["overpaid"]:
                    # Paid several times over (double transfer plus card payment, ...).
                    paid = self._permille(amount, 2050, 3000)

            # The seed case's refund has to fit the merchant's refund window inside the period.
            if is_seed:
                latest = min(self.end, self.start + timedelta(days=20))
                ordered_on = self._day_between(self.start, latest)
            else:
                ordered_on = self._day_between(lookback_start, self.end)
            self.orders.append(
                _Order(
                    order_id=f"O{i + 1:06d}",
                    merchant=merchant,
                    customer_name=name,
                    customer_email=email,
                    customer_iban=customer_iban,
                    amount_cents=amount,
                    paid_cents=paid,
                    ordered_on=ordered_on,
                    instalments=instalments,
                    instalments_paid=instalments_paid,
                    refundable=i not in not_refundable,
                )
            )
        self.payment_kind = payment_kind
        counts["apostrophe_names"] = sum("'" in o.customer_name for o in self.orders)

    # -- unmatched payments ---------------------------------------------------------------------

    def _make_payments(self) -> None:
        rng = self.rng
        n = max(1, round(self.n_orders * _PAYMENTS_PER_ORDER))
        picker = _Picker(self.merchants, [1.0] * len(self.merchants))
        pool = list(range(n))
        rng.shuffle(pool)
        k_unknown, k_invalid = _exact(0.03, n), _exact(0.02, n)
        k_excluded = min(3, n // 100)
        unknown = set(pool[:k_unknown])
        invalid = set(pool[k_unknown : k_unknown + k_invalid])
        excluded = set(pool[k_unknown + k_invalid : k_unknown + k_invalid + k_excluded])
        carriers = [(iban, owner) for iban, owner, kind in self.excluded if kind == "carrier"]
        lookback_start = self.start - timedelta(days=_ORDER_LOOKBACK_DAYS)
        for i in range(n):
            merchant = picker.pick(rng)
            locale = rng.choice((merchant.locale, merchant.locale, "de_DE", "fr_FR", "nl_NL", "it_IT"))
            name = self._person(locale)
            # Bank statements often carry the payer in capitals.
            payer_name = name.upper() if rng.random() < 0.3 else name
            iban: str | None = str(valid_iban(rng, _LOCALE_COUNTRY[locale]))
            if i in unknown:
                iban = None
            elif i in invalid:
                iban = _with_wrong_check_digits(rng, iban)
            elif i in excluded:
                # A cash-on-delivery carrier remitting collected money without reference.
                iban, payer_name = rng.choice(carriers)
            self.payments.append(
                _Payment(
                    payment_id=f"P{i + 1:05d}",
                    merchant=merchant,
                    payer_name=payer_name,
                    payer_iban=iban,
                    amount_cents=self._price(),
                    received_on=self._day_between(lookback_start, self.end),
                )
            )
        self.counts["unknown_payer_iban"] = len(unknown)
        self.counts["invalid_payer_iban"] = len(invalid)
        self.counts["excluded_payer_iban"] = len(excluded)

    # -- refunds --------------------------------------------------------------------------------

    def _reason(self, merchant: _Merchant, kind: str) -> str | None:
        if self.rng.random() < 0.02:
            return None  # shops do leave the reason empty
        language = _LANGUAGE[merchant.locale] if self.rng.random() < 0.85 else "en"
        return self.rng.choice(_REASONS[language][kind])

    def _add(
        self,
        merchant_id: str,
        amount: int,
        requested_on: date,
        reason: str | None,
        *,
        order: _Order | None = None,
        payment: _Payment | None = None,
        plain: bool = False,
        order_id: str | None = None,
    ) -> None:
        self._seq += 1
        self.refunds.append(
            _Refund(
                merchant_id=merchant_id,
                order_id=order.order_id if order is not None else order_id,
                payment_id=payment.payment_id if payment is not None else None,
                amount_cents=amount,
                requested_on=requested_on,
                reason=reason,
                seq=self._seq,
                plain=plain,
            )
        )

    def _partial_amounts(self, order: _Order, permilles: list[int]) -> list[int]:
        return [max(1, order.amount_cents * p // 1000) for p in permilles]

    def _dates_in_window(self, order: _Order, k: int) -> list[date] | None:
        days = [self._in_window(order.merchant, order.ordered_on) for _ in range(k)]
        if any(d is None for d in days):
            return None
        return sorted(d for d in days if d is not None)

    def _make_refunds(self) -> None:
        rng = self.rng
        counts = self.counts
        n = self.n_orders
        for key in (
            "full_refunds",
            "partial_refunds",
            "multi_partial_within",
            "multi_partial_exceeding",
            "over_limit",
            "instalment_refunds",
            "overpayment_refunds",
            "late_refunds",
            "non_refundable",
            "payment_refunds",
            "payment_over_amount",
        ):
            counts[key] = 0

        seed_order = self.orders[self.seed_index]
        seed_day = self._in_window(seed_order.merchant, seed_order.ordered_on)
        assert seed_day is not None
        self._add(
            seed_order.merchant.merchant_id,
            SEED_CASE_REFUND,
            seed_day,
            self._reason(seed_order.merchant, "return"),
            order=seed_order,
        )
        counts["seed_case"] = 1
        counts["instalment_refunds"] += 1

        def feasible(order: _Order) -> bool:
            return order.ordered_on + timedelta(days=order.merchant.refund_window_days) >= self.start

        instalment = self.payment_kind["instalment_orders"]
        overpaid = self.payment_kind["overpaid"]
        special = instalment | overpaid
        # Orders that may get an ordinary refund: refundable, nothing special about their payment.
        plain_pool = [
            o
            for i, o in enumerate(self.orders)
            if i != self.seed_index and o.refundable and i not in special and feasible(o)
        ]
        rng.shuffle(plain_pool)
        clean = [o for o in plain_pool if o.paid_cents == o.amount_cents]
        used: set[str] = set()

        def take(pool: list[_Order], k: int, ok: Callable[[_Order], bool] | None = None) -> list[_Order]:
            picked: list[_Order] = []
            for o in pool:
                if len(picked) == k:
                    break
                if o.order_id in used or (ok is not None and not ok(o)):
                    continue
                used.add(o.order_id)
                picked.append(o)
            return picked

        # Several partial refunds whose sum stays under both the paid and the ordered amount.
        for o in take(clean, _exact(0.01, n)):
            k = rng.choice((2, 2, 3))
            per = 900 // k
            days = self._dates_in_window(o, k)
            assert days is not None
            for amount, day in zip(
                self._partial_amounts(o, [rng.randint(100, per) for _ in range(k)]), days, strict=True
            ):
                self._add(o.merchant.merchant_id, amount, day, self._reason(o.merchant, "partial"), order=o)
            counts["multi_partial_within"] += 1

        # Several partials each below the order amount, where the second already passes the order
        # amount and the third passes twice the order amount.
        for o in take(clean, _exact(0.003, n)):
            first, second = rng.randint(600, 750), rng.randint(600, 750)
            third = rng.randint(2050 - first - second, 980)
            days = self._dates_in_window(o, 3)
            assert days is not None
            for amount, day in zip(self._partial_amounts(o, [first, second, third]), days, strict=True):
                self._add(o.merchant.merchant_id, amount, day, self._reason(o.merchant, "partial"), order=o)
            counts["multi_partial_exceeding"] += 1

        # Over-limit requests: cents typed as euros (x100) or simply far more than ordered.
        for o in take(clean, _exact(0.002, n)):
            typo = rng.random() < 0.5
            amount = o.amount_cents * 100 if typo else self._permille(o.amount_cents, 2100, 4000)
            day = self._in_window(o.merchant, o.ordered_on)
            assert day is not None
            self._add(o.merchant.merchant_id, amount, day, self._reason(o.merchant, "return"), order=o)
            counts["over_limit"] += 1

        # Requested after the merchant's refund window closed.
        def can_be_late(o: _Order) -> bool:
            return o.ordered_on + timedelta(days=o.merchant.refund_window_days + 1) <= self.end

        for o in take(clean, _exact(0.005, n), can_be_late):
            lo = max(self.start, o.ordered_on + timedelta(days=o.merchant.refund_window_days + 1))
            amount = o.amount_cents if rng.random() < 0.7 else self._permille(o.amount_cents, 200, 800)
            self._add(
                o.merchant.merchant_id,
                amount,
                self._day_between(lo, self.end, 2.0),
                self._reason(o.merchant, "return"),
                order=o,
            )
            counts["late_refunds"] += 1

        # Refunds on orders the shop marked as not refundable (vouchers, custom-made goods).
        not_refundable = [o for i, o in enumerate(self.orders) if not o.refundable and i not in special and feasible(o)]
        for o in not_refundable[: -(-len(not_refundable) // 4)]:
            day = self._in_window(o.merchant, o.ordered_on)
            assert day is not None
            self._add(o.merchant.merchant_id, o.amount_cents, day, self._reason(o.merchant, "return"), order=o)
            counts["non_refundable"] += 1

        # Instalment orders: full refunds cancel the open instalments, partial ones may exceed what
        # has been paid so far.
        for i in sorted(instalment):
            o = self.orders[i]
            if not o.refundable or not feasible(o) or rng.random() > 0.35:
                continue
            day = self._in_window(o.merchant, o.ordered_on)
            assert day is not None
            full = rng.random() < 0.6
            amount = o.amount_cents if full else self._permille(o.amount_cents, 150, 900)
            kind = "return" if full else "partial"
            self._add(o.merchant.merchant_id, amount, day, self._reason(o.merchant, kind), order=o)
            counts["instalment_refunds"] += 1

        # Overpaid orders: the shop hands back the excess (more than the order amount, below twice).
        for i in sorted(overpaid):
            o = self.orders[i]
            if not o.refundable or not feasible(o) or rng.random() > 0.6:
                continue
            day = self._in_window(o.merchant, o.ordered_on)
            assert day is not None
            self._add(
                o.merchant.merchant_id,
                o.paid_cents - o.amount_cents,
                day,
                self._reason(o.merchant, "overpaid"),
                order=o,
            )
            counts["overpayment_refunds"] += 1

        # Refunds against payments that match no order; some ask for more than came in.
        refunded_payments = [
            p
            for p in self.payments
            if p.received_on + timedelta(days=p.merchant.refund_window_days) >= self.start and rng.random() < 0.45
        ]
        k_over = min(len(refunded_payments), max(1, _exact(0.15, len(refunded_payments))))
        over = set(rng.sample(range(len(refunded_payments)), k_over))
        for j, p in enumerate(refunded_payments):
            day = self._in_window(p.merchant, p.received_on)
            assert day is not None
            if j in over:
                amount = self._permille(p.amount_cents, 1100, 2000)
                counts["payment_over_amount"] += 1
            else:
                amount = p.amount_cents if rng.random() < 0.85 else self._permille(p.amount_cents, 300, 900)
            self._add(p.merchant.merchant_id, amount, day, self._reason(p.merchant, "payment"), payment=p)
            counts["payment_refunds"] += 1

        # Ordinary full and partial refunds fill up to roughly one refund per 3.5 orders; orders whose
        # refund would fall outside the period are passed over, which keeps the days evenly spread.
        target = round(n * _REFUNDS_PER_ORDER) - len(self.refunds)
        for o in plain_pool:
            if target <= 0:
                break
            day = self._in_window(o.merchant, o.ordered_on, natural=True)
            if o.order_id in used or day is None:
                continue
            used.add(o.order_id)
            target -= 1
            if rng.random() < 0.62:
                kind = rng.choice(("return", "return", "return", "damaged"))
                self._add(
                    o.merchant.merchant_id, o.amount_cents, day, self._reason(o.merchant, kind), order=o, plain=True
                )
                counts["full_refunds"] += 1
            else:
                amount = max(1, self._permille(o.amount_cents, 100, 800) // 10 * 10)
                self._add(o.merchant.merchant_id, amount, day, self._reason(o.merchant, "partial"), order=o, plain=True)
                counts["partial_refunds"] += 1

        # Rows pointing nowhere: a merchant id the platform does not know, an order id that does
        # not exist.
        k_unknown = max(2, n // 4000)
        for j in range(k_unknown):
            o = rng.choice(plain_pool or self.orders)
            day = self._in_window(o.merchant, o.ordered_on) or self._day_between(
                max(self.start, o.ordered_on), self.end
            )
            self._add(
                f"M{self.n_merchants + 1 + j:04d}", o.amount_cents, day, self._reason(o.merchant, "return"), order=o
            )
        counts["unknown_merchant"] = k_unknown
        for j in range(k_unknown):
            merchant = rng.choice(self.merchants)
            day = self._day_between(self.start, self.end)
            self._add(
                merchant.merchant_id, self._price(), day, self._reason(merchant, "return"), order_id=f"O{n + 1 + j:06d}"
            )
        counts["unknown_order"] = k_unknown

        self._number_and_duplicate()

    def _number_and_duplicate(self) -> None:
        rng = self.rng
        # Shops number their refunds per merchant in the order they were asked for, under the shop's
        # own prefix, so references are unique per merchant and easy to type in the CLI.
        self.refunds.sort(key=lambda r: (r.requested_on, r.seq))
        next_ref: dict[str, int] = {}
        for r in self.refunds:
            next_ref[r.merchant_id] = next_ref.get(r.merchant_id, 0) + 1
            r.refund_ref = f"{r.merchant_id}-R{next_ref[r.merchant_id]:05d}"

        # The same request exported twice (re-export after a timeout): same merchant, ref and content.
        plain_positions = [i for i, r in enumerate(self.refunds) if r.plain]
        k = min(len(plain_positions), max(1, _exact(0.005, len(self.refunds))))
        chosen = sorted(rng.sample(plain_positions, k))
        copies: dict[int, list[_Refund]] = {}
        for i in chosen:
            later = rng.randint(i, min(len(self.refunds) - 1, i + 200))
            copies.setdefault(later, []).append(self.refunds[i])
        out: list[_Refund] = []
        for i, r in enumerate(self.refunds):
            out.append(r)
            out.extend(copies.get(i, []))
        self.refunds = out
        self.counts["duplicate_refs"] = k

    # -- balances -------------------------------------------------------------------------------

    def _set_balances(self) -> None:
        rng = self.rng
        requested: dict[str, int] = {}
        for r in self.refunds:
            requested[r.merchant_id] = requested.get(r.merchant_id, 0) + r.amount_cents
        sold: dict[str, int] = {}
        for o in self.orders:
            sold[o.merchant.merchant_id] = sold.get(o.merchant.merchant_id, 0) + o.paid_cents
        integrated = [m for m in self.merchants if m.funding == "integrated"]
        with_refunds = [m for m in integrated if requested.get(m.merchant_id, 0) > 0]
        k_short = min(len(with_refunds), max(1, _exact(_SHARE_SHORT_BALANCE, len(integrated))))
        short = {m.merchant_id for m in rng.sample(with_refunds, k_short)} if with_refunds else set()
        for m in self.merchants:
            due = requested.get(m.merchant_id, 0)
            if m.funding == "own_account":
                # Own-account merchants are collected by direct debit; exports leave it empty or 0.
                m.balance_cents = 0 if rng.random() < 0.7 else None
            elif m.merchant_id in short:
                m.balance_cents = due * rng.randint(0, 150) // 1000
            else:
                m.balance_cents = max(
                    due * rng.randint(1200, 2500) // 1000, sold.get(m.merchant_id, 0) * rng.randint(100, 300) // 1000
                )
        self.counts["short_balance"] = len(short)

    # -- output ---------------------------------------------------------------------------------

    def write(self, out_dir: Path) -> dict[str, int]:
        self._make_excluded()
        self._make_merchants()
        self._make_orders()
        self._make_payments()
        self._make_refunds()
        self._set_balances()

        tables: dict[str, list[tuple[object, ...]]] = {
            "merchants": [
                (m.merchant_id, m.name, m.iban, m.bic, m.funding, m.mandate_id, _iso(m.mandate_signed_on),
                 m.waiting_days, m.refund_window_days, _bool(m.only_refund_paid), m.collection,
                 m.balance_cents, _bool(m.pay_on_release))
                for m in self.merchants
            ],
            "orders": [
                (o.order_id, o.merchant.merchant_id, o.customer_name, o.customer_email, o.customer_iban,
                 o.amount_cents, o.paid_cents, _iso(o.ordered_on), o.instalments, o.instalments_paid,
                 _bool(o.refundable))
                for o in self.orders
            ],
            "payments": [
                (p.payment_id, p.merchant.merchant_id, p.payer_name, p.payer_iban, p.amount_cents,
                 _iso(p.received_on))
                for p in self.payments
            ],
            "refunds": [
                (r.refund_ref, r.merchant_id, r.order_id, r.payment_id, r.amount_cents, _iso(r.requested_on),
                 r.reason)
                for r in self.refunds
            ],
            "excluded_ibans": list(self.excluded),
        }  # fmt: skip
        out_dir.mkdir(parents=True, exist_ok=True)
        result: dict[str, int] = {}
        for stem, rows in tables.items():
            columns = COLUMNS[stem]
            schema = {c: pl.Int64 if c in _INT_COLUMNS else pl.String for c in columns}
            frame = pl.DataFrame(rows, schema=schema, orient="row")
            frame.write_csv(out_dir / f"{stem}.csv")
            result[stem] = frame.height
        return result | self.counts


def _instalments_sum(amount: int, instalments: int, paid: int) -> int:
    """What ``paid`` instalments add up to: amount // n each, the last one taking the remainder."""
    if paid >= instalments:
        return amount
    return amount // instalments * paid


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _bool(value: bool) -> str:
    return "true" if value else "false"
