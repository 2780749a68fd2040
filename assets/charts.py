"""Charts for people: the frames of `ledger.reports` drawn as PNG for run metadata and the weekly workbook.

Pure functions: frame in, PNG bytes out. Figures are built with `Figure` and the Agg canvas directly, never
through pyplot, so no screen or global figure state is involved and rendering from several threads is safe.
The same frame gives the same bytes: PNG metadata carries no software version or timestamp.
"""
# No `from __future__ import annotations` here, like every assets module (Dagster reads hints at runtime).

import base64
import io
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from ledger.money import euros
from ledger.reports import AGE_BUCKETS
from sepa.reason_codes import reason

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn: runs that draw none start half a second sooner
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# ~800 x 400 px: readable in Dagster's metadata panel and in a workbook without zooming.
SIZE_INCHES = (8.0, 4.0)
DPI = 100
COLOURS = {"payout": "#1f77b4", "collection": "#ff7f0e", "refunds": "#1f77b4", "exceptions": "#d62728"}
KIND_NAMES = {"payout": "payouts", "collection": "collections"}
MAX_REASONS = 10


def weekly_volumes_chart(frame: pl.DataFrame) -> bytes:
    """Payouts and collections per week (a `ledger.reports.weekly_volumes` frame): bars of the amount in euros,
    each labelled with its number of transactions."""
    title = "Payouts and collections per week"
    if frame.is_empty():
        return _no_data(title)
    figure = _figure()
    axes = figure.add_subplot()
    weeks = frame["week"].unique().sort().to_list()
    kinds = [k for k in ("payout", "collection") if k in set(frame["kind"].to_list())]
    width = 0.8 / len(kinds)
    for n, kind in enumerate(kinds):
        rows = {r["week"]: r for r in frame.filter(pl.col("kind") == kind).iter_rows(named=True)}
        amounts = [rows[w]["amount_cents"] / 100 if w in rows else 0.0 for w in weeks]
        counts = [rows[w]["transactions"] if w in rows else 0 for w in weeks]
        offset = (n - (len(kinds) - 1) / 2) * width
        bars = axes.bar(
            [i + offset for i in range(len(weeks))], amounts, width, label=KIND_NAMES[kind], color=COLOURS[kind]
        )
        # The count says how many people or merchants are behind the amount; small print so 12 weeks still fit.
        axes.bar_label(bars, labels=[str(c) if c else "" for c in counts], fontsize=7, padding=2)
    axes.set_xticks(
        range(len(weeks)), weeks, rotation=30 if len(weeks) > 6 else 0, ha="right" if len(weeks) > 6 else "center"
    )
    from matplotlib.ticker import FuncFormatter

    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"EUR {v:,.0f}"))
    axes.set_ylabel("amount (EUR)")
    axes.margins(y=0.15)  # room for the count labels above the tallest bar
    axes.legend(title="number above a bar: its transactions", fontsize=8, title_fontsize=8, frameon=False)
    _tidy(axes)
    figure.suptitle(title)
    return _png(figure)


def return_rate_chart(frame: pl.DataFrame) -> bytes:
    """Returns and rejects by reason code (a `ledger.reports.return_rates` frame): one bar per kind and reason,
    as a share of that kind's transactions, labelled with the lines and their amount in euros."""
    title = "Returns and rejects by reason code"
    if frame.is_empty():
        return _no_data(title, "no returns or rejects yet")
    # The most frequent first; two-line labels leave room for ten bars in 400 px.
    shown = frame.sort(["lines", "kind", "reason"], descending=[True, False, False]).head(MAX_REASONS)
    figure = _figure()
    axes = figure.add_subplot()
    labels = [
        f"{KIND_NAMES.get(r['kind'], r['kind'])}: {_reason_label(r['reason'])}" for r in shown.iter_rows(named=True)
    ]
    rates = [(r["rate"] or 0.0) * 100 for r in shown.iter_rows(named=True)]
    colours = [COLOURS.get(k, "#7f7f7f") for k in shown["kind"].to_list()]
    # At least four slots, so one or two reasons do not become slabs filling the picture; the first on top.
    slots = max(shown.height, 4)
    positions = [slots - 1 - n for n in range(shown.height)]
    bars = axes.barh(positions, rates, color=colours, height=0.6)
    notes = [f"{r['lines']} of {r['transactions']}, {euros(r['amount_cents'])}" for r in shown.iter_rows(named=True)]
    axes.bar_label(bars, labels=notes, fontsize=8, padding=3)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_ylim(-0.5, slots - 0.5)
    top = max(max(rates), 1.0) * 1.45  # room for the labels right of the longest bar
    axes.set_xlim(0, top)
    if top > 100:  # the room for labels is not a share anyone can reach
        axes.set_xticks(range(0, 101, 20))
    from matplotlib.ticker import PercentFormatter

    axes.xaxis.set_major_formatter(PercentFormatter(decimals=None))  # as many decimals as the ticks need
    hidden = frame.height - shown.height
    more = f" ({hidden} rarer reasons not shown)" if hidden else ""
    axes.set_xlabel(f"share of the transactions of that kind{more}")
    _tidy(axes, grid="x")
    figure.suptitle(title)
    return _png(figure)


def ageing_chart(frame: pl.DataFrame, as_of: date | None = None) -> bytes:
    """How long open refunds and open exceptions have waited (a `ledger.reports.ageing` frame): items per age
    bucket, side by side, each bar labelled with its amount in euros."""
    title = "How long open work has waited" + (f" (as of {as_of.isoformat()})" if as_of else "")
    if frame.is_empty():
        return _no_data(title)
    figure = _figure()
    buckets = [label for label, _ in AGE_BUCKETS]
    panels = figure.subplots(1, 2, sharey=True)
    for axes, what in zip(panels, ("refunds", "exceptions"), strict=True):
        rows = {r["bucket"]: r for r in frame.filter(pl.col("what") == what).iter_rows(named=True)}
        items = [rows[b]["items"] if b in rows else 0 for b in buckets]
        cents = [rows[b]["amount_cents"] if b in rows else 0 for b in buckets]
        bars = axes.bar(range(len(buckets)), items, color=COLOURS[what], width=0.7)
        amounts = [euros(c) if n else "" for n, c in zip(items, cents, strict=True)]
        axes.bar_label(bars, labels=amounts, fontsize=7, padding=2)
        axes.set_xticks(range(len(buckets)), [b.replace(" days", "") for b in buckets], fontsize=8)
        axes.set_xlabel("days open")
        axes.set_title(f"open {what}: {sum(items)}, {euros(sum(cents))}", fontsize=10)
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        if not sum(items):
            axes.text(0.5, 0.5, f"no open {what}", transform=axes.transAxes, ha="center", va="center", color="#555")
        _tidy(axes)
    panels[0].set_ylabel("items")
    panels[0].set_ylim(0, max(1, int(frame["items"].max() or 0)) * 1.2)  # room for the euro labels
    figure.suptitle(title)
    return _png(figure)


def png_markdown(png: bytes, alt: str) -> str:
    """A PNG as a Markdown image with a data URL, which Dagster's UI shows inline in Markdown metadata."""
    # Brackets would end the alt text early; a newline would end the Markdown image.
    safe = " ".join(alt.replace("[", "(").replace("]", ")").split())
    return f"![{safe}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def _figure() -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _no_data(title: str, message: str = "no data yet") -> bytes:
    """A chart of the right size that says so, instead of an empty plot or an error."""
    figure = _figure()
    figure.suptitle(title)
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=16, color="#555")
    return _png(figure)


def _tidy(axes: "Axes", grid: str = "y") -> None:
    """Light gridlines along the value axis, behind the bars; no box."""
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis=grid, color="#e5e5e5", linewidth=0.8)
    axes.set_axisbelow(True)


def _reason_label(code: str) -> str:
    """`AC04` -> `AC04\nAccount closed`: the code, and its meaning on a second line (cut short if long)."""
    known = reason(code) if code != "(none)" else None
    if known is None:
        return "no reason code" if code == "(none)" else f"{code}\nunknown code"
    meaning = known.meaning if len(known.meaning) <= 36 else known.meaning[:35].rstrip() + "…"
    return f"{code}\n{meaning}"


def _png(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    # Software (matplotlib's version) is the only varying text chunk Agg writes; without it the bytes depend on
    # the frame alone.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
