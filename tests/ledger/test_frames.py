"""The frame helpers: cheap windows must say exactly what the windows they replace say."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from ledger.frames import running_total, texts_where

KEYS = st.one_of(st.none(), st.sampled_from("ABCDE"))


@given(st.lists(st.tuples(KEYS, KEYS, st.integers(-10_000, 10_000)), max_size=40))
def test_running_totals_are_the_windows_they_stand_for(rows: list[tuple[str | None, str | None, int]]) -> None:
    """The running total within each key, computed on the repeated keys only, is the window over all rows:
    keys alone, repeated, null, none repeated at all; one key column or two."""
    frame = pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String, "cents": pl.Int64}, orient="row")
    for keys in ("a", ["a", "b"]):
        got = running_total(frame, pl.col("cents") * 2, keys, "total")
        assert got.columns == ["a", "b", "cents", "total"]
        window = frame.select((pl.col("cents") * 2).cum_sum().over(keys))["cents"]
        assert got["total"].to_list() == window.to_list(), keys


def test_texts_are_written_only_where_asked() -> None:
    """The text function runs on the chosen rows alone; the others stay null."""
    seen: list[int] = []

    def text(cents: int) -> str:
        seen.append(cents)
        return f"{cents} cents"

    frame = pl.DataFrame({"cents": [5, -1, 7, -3]})
    texts = texts_where(frame, pl.col("cents") > 0, text, "cents")
    assert texts.to_list() == ["5 cents", None, "7 cents", None]
    assert seen == [5, 7]
