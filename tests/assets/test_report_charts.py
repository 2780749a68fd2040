"""Charts: the rendering functions on their own (PNG for data and for no data, the same bytes twice), and the
real report and nightly assets putting them in the run's metadata, next to the workbook and inside it."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl
import pytest
from PIL import Image

from assets.charts import ageing_chart, png_markdown, return_rate_chart, weekly_volumes_chart
from ledger.db import open_ledger
from ledger.reports import AGE_BUCKETS
from pipelines.definitions import build_definitions
from pipelines.jobs import nightly_run_config, release_run_config, weekly_run_config
from pipelines.sandbox_bank import answer_released_files
from pipelines.sensors import bank_inbox_sensor
from pipelines.settings import Home
from tests.conftest import small_export

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHARTS = ("weekly_volumes", "return_rate_by_reason", "ageing")
WEEK21, WEEK22 = "2024-05-20", "2024-05-27"

# --- the charts module -----------------------------------------------------------------------------------------

VOLUMES = pl.DataFrame(
    {
        "week": ["2024-W20", "2024-W20", "2024-W21", "2024-W21"],
        "kind": ["collection", "payout", "collection", "payout"],
        "transactions": [0, 3, 2, 5],
        "amount_cents": [0, 12_345, 50_050, 98_765],
    }
)
RATES = pl.DataFrame(
    {
        "kind": ["collection", "payout", "payout"],
        "reason": ["AM04", "(none)", "AC04"],
        "lines": [1, 1, 2],
        "amount_cents": [50_050, 2_500, 3_000],
        "transactions": [2, 5, 5],
        "rate": [0.5, 0.2, 0.4],
    }
)
AGEING = pl.DataFrame(
    {
        "what": ["refunds"] * 5 + ["exceptions"] * 5,
        "bucket": [label for label, _ in AGE_BUCKETS] * 2,
        "items": [4, 2, 0, 1, 0, 1, 0, 0, 0, 2],
        "amount_cents": [10_000, 2_000, 0, 700, 0, 777, 0, 0, 0, 0],
    }
)
RENDERERS = {
    "weekly_volumes": (weekly_volumes_chart, VOLUMES),
    "return_rate_by_reason": (return_rate_chart, RATES),
    "ageing": (ageing_chart, AGEING),
}


def picture(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize("name", CHARTS)
def test_each_chart_is_a_png_of_about_800_by_400(name: str) -> None:
    render, frame = RENDERERS[name]
    image = picture(render(frame))
    assert image.format == "PNG" and image.size == (800, 400)


@pytest.mark.parametrize("name", CHARTS)
def test_an_empty_frame_gives_a_picture_not_an_error(name: str) -> None:
    render, frame = RENDERERS[name]
    empty, full = render(frame.clear()), render(frame)
    assert picture(empty).size == (800, 400)
    # "no data yet" on white is a much smaller picture than bars, labels and axes.
    assert len(empty) < len(full)


@pytest.mark.parametrize("name", CHARTS)
def test_the_same_frame_gives_the_same_bytes(name: str) -> None:
    """No timestamp or version in the PNG: a re-run that changes nothing writes the same file."""
    render, frame = RENDERERS[name]
    assert render(frame) == render(frame.clone())
    assert b"Software" not in render(frame)


def test_ageing_chart_without_open_work_and_with_its_day() -> None:
    nothing = AGEING.with_columns(pl.lit(0).alias("items"), pl.lit(0).alias("amount_cents"))
    assert picture(ageing_chart(nothing)).size == (800, 400)
    assert ageing_chart(AGEING, as_of=date(2024, 5, 26)) != ageing_chart(AGEING)


def test_png_markdown_is_an_inline_image_with_safe_alt_text() -> None:
    png = weekly_volumes_chart(VOLUMES)
    text = png_markdown(png, "volumes [last weeks]\nper kind")
    assert text.startswith("![volumes (last weeks) per kind](data:image/png;base64,") and text.endswith(")")
    assert base64.b64decode(text.split("base64,", 1)[1][:-1]) == png


# --- the assets ------------------------------------------------------------------------------------------------


@pytest.fixture
def instance(home: Home) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral(tempdir=str(home.dagster)) as instance:
        yield instance


def run(
    home: Home, instance: dg.DagsterInstance, job: str, config: dict | None = None, partition: str | None = None
) -> dg.ExecuteInProcessResult:
    result = (
        build_definitions(home)
        .resolve_job_def(job)
        .execute_in_process(run_config=config or {}, instance=instance, partition_key=partition)
    )
    assert result.success
    return result


def reconcile_inbox(home: Home, instance: dg.DagsterInstance) -> None:
    """What the sensor does: one reconcile run per bank file in the inbox."""
    defs = build_definitions(home)
    context = dg.build_sensor_context(instance=instance, resources={"home": defs.resources["home"]})
    result = bank_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in result.run_requests:
        run(home, instance, "reconcile", partition=request.partition_key)


@pytest.fixture
def two_weeks(home: Home, instance: dg.DagsterInstance) -> Home:
    """W21: M1's collection written, released and booked. W22: R1's customer paid, and the payout returned by
    the customer's bank (the sandbox bank returns everything), so the week has a return to draw."""
    small_export(home.shop_inbox)
    run(home, instance, "nightly", nightly_run_config(WEEK21))
    run(home, instance, "weekly", weekly_run_config("main"), partition=WEEK21)
    run(home, instance, "release", release_run_config("alice", None))
    answer_released_files(home, return_rate=0.0, seed=1)
    reconcile_inbox(home, instance)
    run(home, instance, "weekly", weekly_run_config("main"), partition=WEEK22)
    run(home, instance, "release", release_run_config("alice", None))
    answer_released_files(home, return_rate=1.0, seed=3)
    reconcile_inbox(home, instance)
    with open_ledger(home.ledger) as con:
        returned = con.execute("SELECT COUNT(*) FROM bank_lines WHERE event IN ('returned', 'rejected')").fetchone()
    assert returned[0] >= 1, "the sandbox bank returned nothing: the return chart would have nothing to show"
    return home


def test_weekly_report_draws_three_charts(two_weeks: Home, instance: dg.DagsterInstance) -> None:
    """W22's report: three PNG files next to the workbook, the same pictures inline in the metadata, and a
    `charts` sheet holding them in the workbook, after the five tables."""
    result = run(two_weeks, instance, "report", partition=WEEK22)
    meta = result.asset_materializations_for_node("weekly_reconciliation_report")[0].metadata
    for name in CHARTS:
        path = two_weeks.reports / f"reconciliation-2024-W22-{name.replace('_', '-')}.png"
        assert meta[f"chart_{name}_png"].value == str(path)
        png = path.read_bytes()
        image = picture(png)
        assert image.size == (800, 400) and 10_000 < len(png) < 300_000
        markdown = meta[f"chart_{name}"].value
        assert markdown.startswith("![") and "](data:image/png;base64," in markdown
        assert base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")")) == png
    assert meta["ages_counted_to"].value == "2024-06-02"  # the Sunday of W22, long past
    assert "| payouts | 1 | EUR 50.00 |" in meta["summary"].value  # the existing metadata is still there
    leftovers = [p.name for p in two_weeks.reports.iterdir() if p.name.startswith(".")]
    assert leftovers == []

    with zipfile.ZipFile(two_weeks.reports / "reconciliation-2024-W22.xlsx") as book:
        sheets = book.read("xl/workbook.xml").decode()
        media = sorted(n for n in book.namelist() if n.startswith("xl/media/"))
        images = [book.read(n) for n in media]
    for title in ("payouts", "collections", "returns by reason", "exceptions", "ledger balances", "charts"):
        assert f'name="{title}"' in sheets
    assert sheets.index('name="ledger balances"') < sheets.index('name="charts"')
    assert len(media) == 3 and all(i.startswith(PNG_SIGNATURE) for i in images)
    assert sorted(images) == sorted(
        (two_weeks.reports / f"reconciliation-2024-W22-{n.replace('_', '-')}.png").read_bytes() for n in CHARTS
    )


def test_weekly_report_of_an_empty_week_says_no_data_yet(home: Home, instance: dg.DagsterInstance) -> None:
    """Nothing loaded, nothing paid: the report still has its three pictures, each saying so."""
    result = run(home, instance, "report", partition=WEEK21)
    meta = result.asset_materializations_for_node("weekly_reconciliation_report")[0].metadata
    for name in CHARTS:
        assert picture((home.reports / f"reconciliation-2024-W21-{name.replace('_', '-')}.png").read_bytes())
        assert "data:image/png;base64," in meta[f"chart_{name}"].value


def test_nightly_run_shows_how_long_open_refunds_have_waited(home: Home, instance: dg.DagsterInstance) -> None:
    """On 2024-05-20 the small export's open refunds were requested on the 10th and 11th (9-10 days): R1 (EUR
    50.00 to pay after its instalments), R2 (EUR 50.00) and R3 (EUR 400.00); R4 was refused."""
    small_export(home.shop_inbox)
    result = run(home, instance, "nightly", nightly_run_config(WEEK21))
    meta = result.asset_materializations_for_node("due_refunds")[0].metadata
    table = meta["open_refunds_by_age"].value
    assert "| 8-14 days | 3 | EUR 500.00 |" in table and "| 0-7 days | 0 | EUR 0.00 |" in table
    markdown = meta["chart_ageing"].value
    assert picture(base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))).size == (800, 400)
