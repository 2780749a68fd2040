"""Splitting a run's payments into files of a bounded number of transactions."""

from __future__ import annotations

import polars as pl


def split_evenly(n_rows: int, max_per_file: int) -> list[tuple[int, int]]:
    """`(offset, length)` slices covering `n_rows` rows in as few files as `max_per_file` allows, as even as
    possible (lengths differ by at most one; the longer ones first). No rows, no slices.

    >>> split_evenly(10, 4)
    [(0, 4), (4, 3), (7, 3)]
    """
    if max_per_file < 1:
        raise ValueError(f"max_per_file must be at least 1, got {max_per_file}")
    if n_rows < 0:
        raise ValueError(f"n_rows must not be negative, got {n_rows}")
    n_files = -(-n_rows // max_per_file)  # ceiling division
    slices: list[tuple[int, int]] = []
    offset = 0
    for i in range(n_files):
        # Spread the remainder over the first files: 10 rows in 3 files -> 4, 3, 3 (not 4, 4, 2).
        length = n_rows // n_files + (1 if i < n_rows % n_files else 0)
        slices.append((offset, length))
        offset += length
    return slices


def split_frame(frame: pl.DataFrame, max_per_file: int) -> list[pl.DataFrame]:
    """`frame` cut into consecutive parts per `split_evenly` (zero-copy slices, row order kept)."""
    return [frame.slice(offset, length) for offset, length in split_evenly(frame.height, max_per_file)]
