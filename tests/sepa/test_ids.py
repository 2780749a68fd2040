"""Deterministic, SEPA-safe identifiers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sepa.ids import end_to_end_id, is_safe_id, msg_id, payment_info_id, with_suffix

SAFE = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")
REFUND_ID = "RF0123456789abcdef0123"  # RF + 20 hex characters

kinds = st.sampled_from(["pain.001", "pain.008"])
purposes = st.sampled_from(["payout", "collection"])
seqs = st.integers(min_value=0, max_value=10**9)


def assert_safe(identifier: str) -> None:
    assert SAFE.fullmatch(identifier), identifier
    assert not identifier.startswith("/") and "//" not in identifier, identifier


def test_msg_id_examples() -> None:
    assert msg_id("pain.001", "2024W21", 1) == "PO-2024W21-0001"
    assert msg_id("pain.008", "2024W21", 1) == "DD-2024W21-0001"
    assert msg_id("pain.001", "2024-W21", 12) == "PO-2024-W21-0012"
    assert msg_id("pain.001", "2024-05-20", 10000) == "PO-2024-05-20-10000"


def test_msg_id_of_an_awkward_partition_is_shortened_with_a_digest() -> None:
    long_partition = "merchant-shard-7|2024-05-20/2024-05-27 with spaces and more than 35 characters"
    identifier = msg_id("pain.001", long_partition, 1)
    assert_safe(identifier)
    assert identifier.startswith("PO-merchantshard7") and identifier.endswith("-0001")
    assert identifier == msg_id("pain.001", long_partition, 1)  # deterministic


def test_payment_info_id_example() -> None:
    assert payment_info_id("PO-2024W21-0001", 1) == "PO-2024W21-0001-1"


def test_end_to_end_id_examples() -> None:
    assert end_to_end_id(REFUND_ID, "payout") == f"{REFUND_ID}-PO"
    assert end_to_end_id(REFUND_ID, "collection") == f"{REFUND_ID}-DD"
    assert len(end_to_end_id(REFUND_ID, "payout")) <= 35


def test_with_suffix_keeps_a_safe_base_and_never_cuts_the_suffix() -> None:
    assert with_suffix("PO-2024W21-0001-1", "FRST") == "PO-2024W21-0001-1-FRST"
    long_base = "X" * 35
    suffixed = with_suffix(long_base, "RCUR")
    assert_safe(suffixed)
    assert suffixed.endswith("-RCUR") and suffixed != with_suffix("X" * 34, "RCUR")


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (msg_id, ("pain.002", "2024W21", 1)),
        (msg_id, ("pain.001", "2024W21", -1)),
        (payment_info_id, ("PO-2024W21-0001", -1)),
        (end_to_end_id, (REFUND_ID, "refund")),
        (with_suffix, ("base", "no spaces allowed")),
    ],
)
def test_bad_arguments_are_refused(call: Callable[..., str], args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        call(*args)


@pytest.mark.parametrize(
    ("text", "safe"),
    [("PO-2024W21-0001", True), ("a/b", True), ("/ab", False), ("a//b", False), ("a b", False), ("", False),
     ("x" * 35, True), ("x" * 36, False), ("Jörg", False), ("a_b", False)],
)  # fmt: skip
def test_is_safe_id(text: str, safe: bool) -> None:
    assert is_safe_id(text) is safe


@given(kinds, st.text(), seqs)
def test_msg_id_is_always_safe(kind: str, partition: str, seq: int) -> None:
    assert_safe(msg_id(kind, partition, seq))


@given(st.tuples(kinds, st.text(max_size=40), seqs), st.tuples(kinds, st.text(max_size=40), seqs))
def test_msg_ids_differ_when_their_inputs_differ(a: tuple[str, str, int], b: tuple[str, str, int]) -> None:
    assume(a != b)
    assert msg_id(*a) != msg_id(*b)


@given(st.text(), st.integers(min_value=0, max_value=9999))
def test_payment_info_id_is_safe_and_leaves_room_for_a_sequence_type(base: str, n: int) -> None:
    identifier = payment_info_id(base, n)
    assert_safe(identifier)
    assert len(identifier) <= 30
    for seq_type in ("FRST", "RCUR", "OOFF", "FNAL"):
        assert_safe(with_suffix(identifier, seq_type))


@given(kinds, st.text(min_size=1), seqs, st.integers(min_value=1, max_value=99))
def test_payment_info_ids_of_different_files_differ(kind: str, partition: str, seq: int, n: int) -> None:
    assert payment_info_id(msg_id(kind, partition, seq), n) != payment_info_id(msg_id(kind, partition, seq + 1), n)


@given(st.text(), purposes)
def test_end_to_end_id_is_always_safe(refund_id: str, purpose: str) -> None:
    assert_safe(end_to_end_id(refund_id, purpose))


@given(st.text())
def test_end_to_end_id_differs_per_purpose(refund_id: str) -> None:
    assert end_to_end_id(refund_id, "payout") != end_to_end_id(refund_id, "collection")


@given(st.from_regex(r"RF[0-9a-f]{20}", fullmatch=True), st.from_regex(r"RF[0-9a-f]{20}", fullmatch=True), purposes)
def test_end_to_end_ids_of_different_refunds_differ(a: str, b: str, purpose: str) -> None:
    assume(a != b)
    assert end_to_end_id(a, purpose) != end_to_end_id(b, purpose)
    assert end_to_end_id(a, purpose).startswith(a)  # a return quotes it back: the refund is readable in it


@given(st.lists(st.one_of(st.text(min_size=1, max_size=40), st.from_regex(r"RF[0-9A-F]{20}", fullmatch=True)),
                max_size=20))  # fmt: skip
def test_end_to_end_ids_in_bulk_equal_one_by_one(refund_ids: list[str]) -> None:
    import polars as pl

    from sepa.ids import end_to_end_ids

    for purpose in ("payout", "collection"):
        bulk = end_to_end_ids(pl.Series(refund_ids, dtype=pl.String), purpose).to_list()
        assert bulk == [end_to_end_id(r, purpose) for r in refund_ids]
