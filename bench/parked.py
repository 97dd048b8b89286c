"""`./dev bench --suite parked --audience N`: N enrollments parked at a 30-day wait (entered
by an audience run at a steady rate), the worker in its own process: the worker's and the
API's memory at peak and once parked. A parked enrollment is a timer in Temporal, not state
in the worker, whose workflow cache is bounded; the figure checks that (target: worker RSS
at most 300 MB at peak).

No raw baseline beside it: at 100,000 the dev server (SQLite, in memory, on the same two
cores) is the limit, and the raw side's 500 starts in flight made it time out
(bench/RESULTS.md)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from rich.console import Console

from bench.stack import Row, api_client, bench_stack, drained, rss_mb, tag, worker_process
from schemas.journey import Audience, Entry, ExitStep, JourneySpec, WaitStep

RATE = 400.0  # enrollments per second the run paces itself at


async def measure(n: int, console: Console) -> list[Row]:
    async with bench_stack(worker=False) as (stack, base, server):
        with worker_process(stack.settings, "cli.main", "worker") as worker:
            async with await api_client(stack.stores, base) as api:
                run = tag()
                list_id = f"parked-{run}"
                ids = [f"p{run}-{k:07d}" for k in range(n)]
                for i in range(0, n, 10_000):
                    added = await api.post(
                        f"/v1/audiences/{list_id}/members",
                        json={"customer_ids": ids[i : i + 10_000]},
                    )
                    assert added.status_code == 200, added.text
                spec = JourneySpec(
                    id=f"parked-{run}",
                    name="parked",
                    entry=Entry(audience=Audience(list=list_id, rate_per_second=RATE)),
                    steps=[
                        WaitStep(id="wait", duration=timedelta(days=30), next="end"),
                        ExitStep(id="end"),
                    ],
                )
                published = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
                assert published.status_code == 201, published.text
                before = {"worker": rss_mb(worker.pid), "api": rss_mb(), "server": rss_mb(server)}
                peak = dict(before)
                started = time.perf_counter()
                begun = await api.post(f"/v1/journeys/{spec.id}/audience-runs", json={})
                assert begun.status_code == 202, begun.text
                name = begun.json()["run"]
                shown = 0
                while True:
                    for key, pid in (("worker", worker.pid), ("api", "self"), ("server", server)):
                        peak[key] = max(peak[key], rss_mb(pid))
                    state = (await api.get(f"/v1/journeys/{spec.id}/audience-runs/{name}")).json()
                    done = state["progress"]["done"]
                    if done >= shown + 10_000:
                        shown = done - done % 10_000
                        console.print(
                            f"  parked {done:,}/{n:,}; worker RSS {rss_mb(worker.pid):.0f} MB"
                        )
                    if state["progress"]["status"] == "completed":
                        break
                    await asyncio.sleep(0.5)
                await drained(stack.client, stack.settings.task_queue)
                wall = time.perf_counter() - started
                after = {"worker": rss_mb(worker.pid), "api": rss_mb(), "server": rss_mb(server)}
    return [
        (f"{n:,} parked enrollments: entered /s (paced at {RATE:.0f})", n / wall, RATE, "-"),
        ("  worker RSS peak (MB) vs the 300 MB bound", peak["worker"], 300.0, "<= 1.0x"),
        ("  worker RSS before / after (MB)", before["worker"], after["worker"], "-"),
        ("  API process RSS peak (MB; it also polls the run)", peak["api"], before["api"], "-"),
        ("  dev server RSS peak (MB)", peak["server"], before["server"], "-"),
    ]
