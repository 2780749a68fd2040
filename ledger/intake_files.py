"""Reading shop export files (CSV or Parquet) into typed, validated frames plus precise rejects.

A bad cell rejects its row with the file, line, column and problem; the good rows go on. Nothing here
touches the database: `ledger.intake` records what this module reads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandera.polars as pa
import polars as pl

from ledger.schemas import ExcludedIbanRows, MerchantRows, OrderRows, PaymentRows, RefundRows

# Load order matters: refunds refer to orders and payments, which refer to merchants.
KINDS: dict[str, type[pa.DataFrameModel]] = {
    "merchants": MerchantRows,
    "excluded_ibans": ExcludedIbanRows,
    "orders": OrderRows,
    "payments": PaymentRows,
    "refunds": RefundRows,
}

DEFAULTS: dict[str, dict[str, object]] = {
    "merchants": {
        "bic": None,
        "mandate_id": None,
        "mandate_signed_on": None,
        "waiting_days": 7,
        "refund_window_days": 56,
        "only_refund_paid": False,
        "collection": "weekly",
        "balance_cents": 0,
        "pay_on_release": False,
    },
    "excluded_ibans": {},
    "orders": {
        "customer_email": None,
        "customer_iban": None,
        "instalments": 1,
        "instalments_paid": 0,
        "refundable": True,
    },
    "payments": {"payer_iban": None},
    "refunds": {"reason": None},
}

LINE = "_line"
TRUE_WORDS = {"true", "1", "yes", "y", "t", "ja", "oui"}
FALSE_WORDS = {"false", "0", "no", "n", "f", "nein", "non"}
MAX_FILE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ShopFile:
    """A shop export file read and checked: its good rows and its rejects."""

    path: Path
    kind: str
    sha256: str
    rows_total: int
    rows: pl.DataFrame
    rejects: pl.DataFrame


class IntakeFileError(Exception):
    """A file that cannot be read at all (unknown kind, unreadable, missing a required column)."""


def kind_of(path: Path) -> str:
    """The export kind a file holds, from its name: `refunds.csv`, `refunds_2024-05.parquet`, ..."""
    stem = path.name.split(".", 1)[0].lower()
    for kind in sorted(KINDS, key=len, reverse=True):
        if stem == kind or re.match(rf"^{kind}[-_ ]", stem):
            return kind
    raise IntakeFileError(
        f"{path.name}: cannot tell what the file holds; name it after one of {', '.join(KINDS)} "
        "(for example refunds.csv or refunds_2024-05.parquet)"
    )


def discover(paths: list[Path]) -> list[Path]:
    """The shop files among `paths` (files or folders), in the order they must be loaded."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in {".csv", ".parquet"}))
        else:
            files.append(p)
    order = list(KINDS)

    def rank(f: Path) -> tuple[int, str]:
        try:
            return order.index(kind_of(f)), f.name
        except IntakeFileError:
            return len(order), f.name

    return sorted(files, key=rank)


def file_sha256(path: Path) -> str:
    """Content hash of a file: the same content loaded twice is recognised whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_shop_file(path: Path) -> ShopFile:
    """Read one export file into typed rows and rejects. Raises IntakeFileError if nothing is readable."""
    kind = kind_of(path)
    model = KINDS[kind]
    if path.stat().st_size > MAX_FILE_BYTES:
        raise IntakeFileError(f"{path.name}: larger than {MAX_FILE_BYTES // 1024**3} GiB; split the export")
    raw = _read_strings(path)
    # Blank lines (every cell empty) are layout, not rows.
    raw = raw.filter(~pl.all_horizontal(pl.exclude(LINE).is_null()))
    total = raw.height
    missing = [c for c in model.to_schema().columns if c not in raw.columns and c not in DEFAULTS[kind]]
    if missing:
        raise IntakeFileError(
            f"{path.name}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {', '.join(c for c in raw.columns if c != LINE) or 'none'})"
        )
    typed, cell_rejects = _parse(raw, model, DEFAULTS[kind])
    good, schema_rejects = _validate(typed, model)
    # A cell that did not parse is also empty to the schema: report it once, as the parse problem.
    schema_rejects = schema_rejects.join(
        cell_rejects.select(LINE, "column_name"), on=[LINE, "column_name"], how="anti", nulls_equal=False
    )
    rejects = pl.concat([cell_rejects, schema_rejects]).sort(LINE, "column_name", nulls_last=True)
    rows = good.join(rejects.select(LINE).unique(), on=LINE, how="anti")
    return ShopFile(path, kind, file_sha256(path), total, rows, rejects)


def _read_strings(path: Path) -> pl.DataFrame:
    """Every column as text, so that a bad cell becomes a precise reject instead of a failed read."""
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
            frame = frame.with_columns(pl.all().cast(pl.String))
            first_line = 1  # Parquet rows are numbered from 1
        else:
            data = path.read_bytes()
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
                wide = "UTF-32" if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "UTF-16"
                mark = data[:4] if wide == "UTF-32" else data[:2]
                raise IntakeFileError(
                    f"{path.name}: line 1: {wide} (byte order mark 0x{mark.hex()}), not UTF-8; export the file as UTF-8"
                )
            # UTF-16 without a byte order mark decodes as UTF-8 with a NUL byte beside every ASCII character;
            # no text export has a NUL byte.
            nul = data.find(b"\x00")
            if nul >= 0:
                line = data[:nul].count(b"\n") + 1
                raise IntakeFileError(
                    f"{path.name}: line {line}: a NUL byte (0x00), so not UTF-8 text (UTF-16?); "
                    "export the file as UTF-8"
                )
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = data[: exc.start].count(b"\n") + 1
                raise IntakeFileError(
                    f"{path.name}: line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); export the file as UTF-8"
                ) from None
            frame = pl.read_csv(data, infer_schema=False)
            first_line = 2  # line 1 is the header
            lines = _record_start_lines(data, frame.height)
            if lines is not None:
                return _tidy(frame).with_columns(pl.Series(LINE, lines, pl.Int64))
    except IntakeFileError:
        raise
    except Exception as exc:  # polars raises several error types for unreadable files
        raise IntakeFileError(f"{path.name}: cannot read the file: {exc}") from None
    return _tidy(frame).with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def _tidy(frame: pl.DataFrame) -> pl.DataFrame:
    """Header names in lower case; cells trimmed, empty cells null."""
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    return frame.with_columns(pl.col(pl.String).str.strip_chars().replace("", None))


def _record_start_lines(data: bytes, records: int) -> list[int] | None:
    """The physical line each record starts on, when quoted cells span lines (None when they do not,
    so the common case costs one count of newlines)."""
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if physical <= records + 1:
        return None
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    next(reader, None)
    starts, line = [], reader.line_num
    for _ in reader:
        starts.append(line + 1)
        line = reader.line_num
    return starts[:records]


def _parse(raw: pl.DataFrame, model: type[pa.DataFrameModel], defaults: dict[str, object]):
    """Cast text cells to the schema's types; a cell that does not parse becomes a reject."""
    schema = model.to_schema()
    casts, problems = [], []
    for name, column in schema.columns.items():
        dtype = column.dtype.type
        src = pl.col(name) if name in raw.columns else pl.lit(None, pl.String)
        if name in defaults and defaults[name] is not None:
            src = src.fill_null(pl.lit(str(defaults[name]).lower()))
        if dtype == pl.Int64:
            parsed = src.cast(pl.Int64, strict=False)
            hint = "not a whole number of cents" if name.endswith("_cents") else "not a whole number"
        elif dtype == pl.Date:
            parsed = src.str.to_date("%Y-%m-%d", strict=False)
            hint = "not a date in the form YYYY-MM-DD"
        elif dtype == pl.Boolean:
            low = src.str.to_lowercase()
            parsed = (
                pl.when(low.is_in(list(TRUE_WORDS)))
                .then(pl.lit(True))
                .when(low.is_in(list(FALSE_WORDS)))
                .then(pl.lit(False))
                .otherwise(pl.lit(None, pl.Boolean))
            )
            hint = "not true or false"
        else:
            parsed = src
            hint = ""
        casts.append(parsed.alias(name))
        if hint:
            problems.append(
                pl.when(src.is_not_null() & parsed.is_null())
                .then(pl.struct(column_name=pl.lit(name), value=src, problem=pl.lit(hint)))
                .alias(f"_p_{name}")
            )
    typed = raw.select(pl.col(LINE), *casts)
    if not problems:
        return typed, _empty_rejects()
    found = raw.select(pl.col(LINE), *problems)
    rejects = (
        found.unpivot(index=LINE, value_name="p")
        .drop_nulls("p")
        .unnest("p")
        .select(LINE, "column_name", "value", "problem")
    )
    return typed, rejects


def _validate(typed: pl.DataFrame, model: type[pa.DataFrameModel]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run the pandera schema; its failure cases become rejects naming line, column and rule."""
    body = typed.drop(LINE)
    try:
        model.validate(body, lazy=True)
        return typed, _empty_rejects()
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cases = cases.filter(pl.col("index").is_not_null())
    lines = typed.select(pl.col(LINE)).with_row_index("index").with_columns(pl.col("index").cast(pl.Int32))
    rejects = cases.join(lines, on="index", how="left").select(
        pl.col(LINE),
        pl.when(pl.col("schema_context") == "Column").then(pl.col("column")).alias("column_name"),
        pl.when(pl.col("schema_context") == "Column").then(pl.col("failure_case")).alias("value"),
        pl.struct("check", "column", "schema_context")
        .map_elements(lambda s: describe_check(s["check"]), return_dtype=pl.String)
        .alias("problem"),
    )
    return typed, rejects


_CHECK_WORDS = [
    (r"^not_nullable$", "is empty but required"),
    (r"^greater_than\((.*)\)$", "must be greater than {0}"),
    (r"^greater_than_or_equal_to\((.*)\)$", "must be at least {0}"),
    (r"^less_than_or_equal_to\((.*)\)$", "must be at most {0}"),
    (r"^less_than\((.*)\)$", "must be less than {0}"),
    (r"^isin\((.*)\)$", "must be one of {0}"),
    (r"^str_matches\(.*\)$", "contains characters outside the SEPA set or is longer than 35"),
    (r"^str_length\((.*)\)$", "has the wrong length (allowed {0})"),
    (r"^field_uniqueness$", "appears more than once"),
]


def describe_check(check: str) -> str:
    """A pandera check name in words a finance-ops person understands."""
    for pattern, words in _CHECK_WORDS:
        match = re.match(pattern, check or "")
        if match:
            return words.format(*match.groups())
    return str(check)


def _empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema={LINE: pl.Int64, "column_name": pl.String, "value": pl.String, "problem": pl.String})
