"""`./dev bench --suite parked --audience N`: N enrollments parked at a 30-day wait (entered
by an audience run at a steady rate), the worker in its own process: the worker's and the
API's memory at peak and once parked. A parked enrollment is a timer in Temporal, not state
in the worker, whose workflow cache is bounded; the figure checks that (target: worker RSS
at most 300 MB at peak).

The dev server keeps its state in a SQLite file (WAL, no fsync): in memory it stopped
answering past 80,000 parked enrollments. No raw baseline beside it: at 100,000 the dev
server on the same two cores is the limit, and the raw side's 500 starts in flight made it
time out (bench/RESULTS.md)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from rich.console import Console

from bench.ingestion import audience_journey, run_audience
from bench.stack import Row, api_client, bench_stack, drained, rss_mb, worker_process

RATE = 400.0  # enrollments per second the run paces itself at


async def measure(n: int, console: Console) -> list[Row]:
    async with bench_stack(worker=False, server_on_disk=True) as (stack, base, server):
        with worker_process(stack.settings, "journeys.cli.main", "worker") as worker:
            async with await api_client(stack.stores, base) as api:
                spec = await audience_journey(api, n, RATE, timedelta(days=30))
                pids: dict[str, int | str] = {"worker": worker.pid, "api": "self", "server": server}
                before = {k: rss_mb(p) for k, p in pids.items()}
                peak = dict(before)
                shown = [0]
                done_sampling = asyncio.Event()

                async def sample() -> None:
                    """Every half second until the backlog is drained: the worker does
                    most of its work after the last start, taking first tasks."""
                    while not done_sampling.is_set():
                        for key, pid in pids.items():
                            peak[key] = max(peak[key], rss_mb(pid))
                        await asyncio.sleep(0.5)

                def look(done: int) -> None:
                    if done >= shown[0] + 10_000:
                        shown[0] = done - done % 10_000
                        mb = rss_mb(worker.pid)
                        console.print(f"  parked {done:,}/{n:,}; worker RSS {mb:.0f} MB")

                sampler = asyncio.create_task(sample())
                started = time.perf_counter()
                await run_audience(api, spec, n, look)
                await drained(stack.client, stack.settings.task_queue)
                wall = time.perf_counter() - started
                done_sampling.set()
                await sampler
                after = {k: rss_mb(p) for k, p in pids.items()}
                peak = {k: max(peak[k], after[k]) for k in peak}
    return [
        (f"{n:,} parked enrollments: entered /s (paced at {RATE:.0f})", n / wall, RATE, "-"),
        ("  worker RSS peak (MB) vs the 300 MB bound", peak["worker"], 300.0, "<= 1.0x"),
        ("  worker RSS before / after (MB)", before["worker"], after["worker"], "-"),
        ("  API process RSS peak (MB; it also polls the run)", peak["api"], before["api"], "-"),
        ("  dev server RSS peak (MB)", peak["server"], before["server"], "-"),
    ]
