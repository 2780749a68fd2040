"""Splitting a run into files of a bounded size."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sepa.files import split_evenly, split_frame


@pytest.mark.parametrize(
    ("n_rows", "max_per_file", "expected"),
    [
        (0, 5, []),
        (1, 5, [(0, 1)]),
        (5, 5, [(0, 5)]),
        (6, 5, [(0, 3), (3, 3)]),
        (10, 4, [(0, 4), (4, 3), (7, 3)]),
        (100_001, 50_000, [(0, 33_334), (33_334, 33_334), (66_668, 33_333)]),
    ],
)
def test_split_evenly_examples(n_rows: int, max_per_file: int, expected: list[tuple[int, int]]) -> None:
    assert split_evenly(n_rows, max_per_file) == expected


@pytest.mark.parametrize(("n_rows", "max_per_file"), [(10, 0), (10, -1), (-1, 5)])
def test_split_evenly_refuses_nonsense(n_rows: int, max_per_file: int) -> None:
    with pytest.raises(ValueError):
        split_evenly(n_rows, max_per_file)


@given(st.integers(min_value=0, max_value=20_000), st.integers(min_value=1, max_value=5_000))
def test_split_evenly_covers_every_row_once_in_as_few_even_files_as_possible(n_rows: int, max_per_file: int) -> None:
    slices = split_evenly(n_rows, max_per_file)
    assert len(slices) == -(-n_rows // max_per_file)
    offset = 0
    for start, length in slices:
        assert start == offset and 1 <= length <= max_per_file
        offset += length
    assert offset == n_rows
    lengths = [length for _, length in slices]
    assert not lengths or max(lengths) - min(lengths) <= 1


def test_split_frame_keeps_rows_and_order() -> None:
    frame = pl.DataFrame({"i": list(range(11))})
    parts = split_frame(frame, 4)
    assert [p.height for p in parts] == [4, 4, 3]
    assert pl.concat(parts).equals(frame)
