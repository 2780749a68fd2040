"""Frames handed to DuckDB: cut into row groups for parallel work, read back in their order."""

import duckdb
import polars as pl

from ledger.db import ROW_GROUP_ROWS, in_row_groups, run_with_frames


def test_a_large_frame_is_cut_into_row_groups_and_keeps_its_rows():
    rows = 2 * ROW_GROUP_ROWS + 1_000
    # Built from pieces of 4,096 rows, as the bank-file reader builds its frames.
    frame = pl.concat(
        [
            pl.DataFrame({"n": pl.int_range(start, min(start + 4_096, rows), eager=True)})
            for start in range(0, rows, 4_096)
        ],
        rechunk=False,
    ).with_columns(pl.format("line-{}", pl.col("n")).alias("text"))
    cut = in_row_groups(frame)
    # What DuckDB is handed: one Arrow record batch per row group.
    assert [batch.num_rows for batch in cut.to_arrow().to_batches()] == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 1_000]
    assert cut.equals(frame)


def test_a_small_frame_is_left_as_it_is():
    frame = pl.DataFrame({"n": [3, 1, 2]})
    assert in_row_groups(frame) is frame


def test_duckdb_reads_and_inserts_a_cut_frame_in_its_order():
    rows = 3 * ROW_GROUP_ROWS
    frame = pl.DataFrame({"n": pl.int_range(rows, eager=True).reverse()})
    con = duckdb.connect()
    doubled = run_with_frames(con, "SELECT n * 2 AS twice FROM t", t=frame)
    assert doubled["twice"].equals(frame["n"] * 2, check_names=False)
    con.execute("CREATE TABLE kept (n BIGINT)")
    run_with_frames(con, "INSERT INTO kept SELECT n FROM t", t=frame)
    assert con.execute("SELECT n FROM kept ORDER BY rowid").pl()["n"].equals(frame["n"])
