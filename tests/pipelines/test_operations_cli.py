"""Finance-ops operations end to end through the `payouts` command, each a Dagster job on the installation's
instance: four eyes on release, a pending file cancelled and written again, a backfill that pays nothing
twice, exceptions resolved (a write-off above the limit only with a second person), merchants blocked."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from pipelines.settings import Home
from sepa.bank_messages import build_camt054
from tests.pipelines import test_cli
from tests.pipelines.commands import json_lines, payouts

PLATFORM_IBAN = "DE75512108001245126199"  # the default bank profile's account


# The small export imported and made due for 2024-W21 once per module, and a private copy per test.
prepared = test_cli.prepared
loaded = test_cli.loaded


def files(home: Home) -> list[dict]:
    return json_lines(payouts(home, "files", "list", "--json").stdout)


def balances(home: Home) -> dict[str, int]:
    rows = json_lines(payouts(home, "ledger", "balances", "--json").stdout)
    return {r["account"]: r["balance_cents"] for r in rows}


def test_four_eyes_cancel_and_backfill(loaded: Home) -> None:
    """Alice prepares the week and may not release it; she cancels the file instead (it moves to
    outbox/cancelled and its collection is freed), the week is written again under a new file number, Bob
    releases it, and a backfill of the weeks up to it writes nothing and moves no money."""
    payouts(loaded, "run", "weekly", "--week", "2024-W21", "--by", "alice")
    (first,) = files(loaded)
    assert first["prepared_by"] == "alice"
    refused = payouts(loaded, "files", "release", "--all", "--by", "Alice", ok=False)
    assert refused.returncode == 1 and "four eyes" in refused.stderr
    assert files(loaded)[0]["status"] == "written"

    payouts(loaded, "files", "cancel", first["file_name"], "--by", "alice", "--reason", "collection date wrong")
    assert (loaded.outbox / "cancelled" / first["file_name"]).exists()
    assert not (loaded.outbox / "pending" / first["file_name"]).exists()
    collections = json_lines(payouts(loaded, "collections", "list", "--json").stdout)
    assert [c["status"] for c in collections] == ["cancelled"]

    payouts(loaded, "run", "weekly", "--week", "2024-W21", "--by", "alice")
    second = next(f for f in files(loaded) if f["status"] == "written")
    assert second["seq"] == first["seq"] + 1 and second["ctrl_sum_cents"] == first["ctrl_sum_cents"]
    payouts(loaded, "files", "release", "--all", "--by", "bob")
    before, money = files(loaded), balances(loaded)
    assert {f["status"] for f in before} == {"cancelled", "released"}

    done = payouts(loaded, "run", "backfill", "--from", "2024-W19", "--to", "2024-W21", "--by", "carol")
    assert "3 week(s) run again; 0 new file(s)" in done.stdout
    assert files(loaded) == before and balances(loaded) == money
    log = json_lines(payouts(loaded, "operations", "list", "--json").stdout)
    assert [(e["operation"], e["subject"], e["actor"]) for e in log] == [("cancel_file", first["file_name"], "alice")]


def bank_notification(folder: Path) -> Path:
    """A camt.054 with two lines of no payment of ours: a bank fee, and 150.00 EUR from a stranger."""
    entries = pl.DataFrame(
        {
            "entry_ref": ["FEE-1", "IN-1"],
            "booking_date": [date(2024, 5, 22)] * 2,
            "value_date": [date(2024, 5, 22)] * 2,
            "direction": ["DBIT", "CRDT"],
            "amount_cents": [1250, 15000],
            "bank_tx_code": ["ACMT/MDOP/CHRG", "PMNT/RCDT/ESCT"],
            "counterparty_name": [None, "Unknown Sender Ltd"],
        }
    )
    path = folder / "notification.xml"
    path.write_bytes(
        build_camt054(
            msg_id="NTF-1", created_at=datetime(2024, 5, 22, tzinfo=UTC), account_iban=PLATFORM_IBAN, entries=entries
        )
    )
    return path


def test_exceptions_are_resolved_with_a_second_person_above_the_limit(loaded: Home, tmp_path: Path) -> None:
    """The fee is booked as a bank charge by its short id; writing off the stranger's 150.00 EUR (above the
    default 100.00 limit) is refused alone and by the same person, and done with Bob's approval."""
    payouts(loaded, "import-bank", str(bank_notification(tmp_path)), "--now")
    queue = {e["amount_cents"]: e["exception_id"] for e in json_lines(payouts(loaded, "exceptions", "list",
                                                                              "--json").stdout)}  # fmt: skip
    assert set(queue) == {1250, 15000}
    listed = payouts(loaded, "exceptions", "list").stdout
    assert queue[1250][:12] in listed  # the table shows the id to type

    unknown = payouts(loaded, "exceptions", "resolve", queue[1250][:8], "pay_twice", "--by", "alice", "--reason",
                      "fee", ok=False)  # fmt: skip
    assert unknown.returncode == 1 and "config is invalid" in unknown.stderr and "pay_twice" in unknown.stderr
    payouts(loaded, "exceptions", "resolve", queue[1250][:8], "bank_charge", "--by", "alice", "--reason", "fee")
    assert balances(loaded)["platform:bank_charges"] == 1250

    alone = payouts(loaded, "exceptions", "resolve", queue[15000][:8], "write_off", "--by", "alice",
                    "--reason", "cannot trace", ok=False)  # fmt: skip
    assert alone.returncode == 1 and "second person must approve" in alone.stderr
    own = payouts(loaded, "exceptions", "resolve", queue[15000][:8], "write_off", "--by", "alice",
                  "--reason", "cannot trace", "--approved-by", "alice", ok=False)  # fmt: skip
    assert own.returncode == 1 and "cannot approve their own" in own.stderr
    assert "platform:write_offs" not in balances(loaded)
    payouts(loaded, "exceptions", "resolve", queue[15000][:8], "write_off", "--by", "alice",
            "--reason", "cannot trace", "--approved-by", "bob")  # fmt: skip
    money = balances(loaded)
    assert money["platform:write_offs"] == -15000 and sum(money.values()) == 0
    assert json_lines(payouts(loaded, "exceptions", "list", "--json").stdout) == []
    log = json_lines(payouts(loaded, "operations", "list", "--json").stdout)
    assert {(e["operation"], e["approved_by"]) for e in log} == {
        ("resolve_exception:bank_charge", None), ("resolve_exception:write_off", "bob")
    }  # fmt: skip


def test_a_blocked_merchant_is_left_out_of_the_weekly_run(loaded: Home) -> None:
    """M1 blocked: the week writes no collection from it; unblocked, the next run collects."""
    payouts(loaded, "merchants", "block", "M1", "--by", "alice", "--reason", "mandate disputed")
    blocked = json_lines(payouts(loaded, "merchants", "list", "--blocked", "--json").stdout)
    assert [m["merchant_id"] for m in blocked] == ["M1"]
    payouts(loaded, "run", "weekly", "--week", "2024-W21")
    assert files(loaded) == []
    again = payouts(loaded, "merchants", "block", "M1", "--by", "alice", "--reason", "twice", ok=False)
    assert again.returncode == 1 and "already blocked" in again.stderr
    payouts(loaded, "merchants", "unblock", "M1", "--by", "bob", "--reason", "dispute settled")
    payouts(loaded, "run", "weekly", "--week", "2024-W21")
    assert [f["kind"] for f in files(loaded)] == ["collection"]
