"""The benchmark's smoke test: `payouts bench --refunds 1000 --json` runs every stage and both baselines and
reports all its figures. How fast is not tested here: the figures are in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.pipelines.commands import PAYOUTS

STAGES = [
    "intake_merchants", "intake_orders", "intake", "nightly", "collection_files", "collection_release",
    "payout_files", "payout_release", "reconcile_read", "reconcile_book", "statement_read", "statement_book",
]  # fmt: skip


def test_bench_reports_every_stage_and_baseline(tmp_path: Path) -> None:
    done = subprocess.run(
        [PAYOUTS, "bench", "--refunds", "1000", "--json", "--dir", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["refunds"] == 1000
    assert result["merchants"] == 10
    for key in ("intake_seconds", "weekly_seconds", "reconcile_seconds", "statement_seconds", "peak_mb"):
        assert result[key] > 0, key
    stages = {s["name"]: s for s in result["stages"]}
    assert list(stages) == STAGES
    for stage in result["stages"]:
        assert set(stage) >= {"name", "seconds", "rows", "peak_mb"}
        assert stage["seconds"] > 0 and stage["peak_mb"] > 0
    assert stages["intake"]["rows"] == 1000
    weekly = ("collection_files", "collection_release", "payout_files", "payout_release")
    assert result["weekly_seconds"] == round(sum(stages[s]["seconds"] for s in weekly), 3)

    # Every refund went the whole way, once.
    checks = result["checks"]
    assert checks["refunds_by_status"] == {"completed": 1000}
    assert checks["payouts_released"] == stages["payout_files"]["rows"] == stages["reconcile_book"]["rows"] == 1000
    assert checks["refunds_paid_twice"] == 0
    assert checks["unaccounted_lines"] == checks["unbalanced_transfers"] == checks["ledger_total_cents"] == 0
    assert checks["reused_transfer_ids"] == checks["repeated_lines"] == 0
    assert result["written"]["payout_files"] >= 1 and result["written"]["collection_files"] >= 1

    # Both baselines ran side by side on the same rows, and agree with us on what they read.
    sepaxml, pycamt = result["baselines"]["sepaxml"], result["baselines"]["pycamt"]
    assert sepaxml["library"].startswith("sepaxml") and pycamt["library"].startswith("pycamt")
    for baseline in (sepaxml, pycamt):
        assert baseline["rows"] == 1000
        assert baseline["ours"]["seconds"] > 0 and baseline["theirs"]["seconds"] > 0
        assert baseline["speedup"] == round(baseline["theirs"]["seconds"] / baseline["ours"]["seconds"], 1)
    assert pycamt["same_count"] is True

    # The human-readable table came first, one line per stage.
    for name in STAGES:
        assert any(line.startswith(name + " ") for line in done.stdout.splitlines()), name
