"""The buffer the readers collect bank lines in."""

from __future__ import annotations

from sepa.bank_lines import COLUMNS, RowBuffer, empty_row


def test_the_lines_come_in_one_piece_per_column() -> None:
    # Later selects and joins would otherwise copy every column of a large file while it is booked.
    buffer = RowBuffer(chunk_rows=7)
    rows = []
    for n in range(30):
        row = empty_row("camt.054.001.08")
        row.update(entry_ref=f"E{n}", amount_cents=n, currency="EUR", direction="CRDT")
        rows.append(row)
        buffer.add(row)
    buffer.append_frames(RowBuffer(chunk_rows=5).frames())  # nothing more
    frame = buffer.frame()
    assert frame.n_chunks("all") == [1] * len(COLUMNS)
    assert frame.columns == list(COLUMNS)
    assert frame["entry_ref"].to_list() == [row["entry_ref"] for row in rows]
    assert frame["amount_cents"].to_list() == list(range(30))
