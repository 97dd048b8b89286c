"""The chaos run, small and bounded (`./dev chaos --small` is a little larger): 40
customers through email, webhook and in-app while the worker is killed twice, the API once
and Temporal is restarted; nothing lost, nothing stuck, no duplicate in the ledger."""

from __future__ import annotations

import pytest

from bench.chaos import Plan, run

pytestmark = pytest.mark.slow


async def test_nothing_lost_or_duplicated_through_kills_and_a_temporal_restart() -> None:
    report = await run(Plan(customers=40, worker_kills=2, db="sqlite", timeout=300))
    assert report.chaos.count("worker killed") == 2
    assert {"api killed", "temporal restarted"} <= set(report.chaos)
    assert report.completed == 40 and report.stuck == 0
    assert report.lost == {"email": 0, "webhook": 0, "in_app": 0}
    assert report.ledger_duplicates == 0
    assert report.receiver_copies["in_app"] == 0  # written in the ledger's transaction
