"""What every benchmark suite shares: the stack it runs on (its own Temporal dev server in
memory, SMTP mailbox, database in a temporary folder, worker and API, with the global
guardrails off so only the work measured differs), and how a side is timed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from journeys.schemas.pace import UNPACED
from journeys.schemas.settings import Settings
from journeys.services.mailbox import Mailbox, start_smtp
from journeys.stack.embedded import (
    Stack,
    dev_server,
    dev_server_command,
    free_port,
    running_stack,
    spawn,
)
from journeys.storage.stores import Stores

Row = tuple[str, float, float, str]
"""One figure: (what, measured, baseline, target)."""


@contextlib.asynccontextmanager
async def bench_stack(
    *,
    examples: bool = False,
    worker: bool = True,
    server_on_disk: bool = False,
    mailbox: Mailbox | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[Stack, str, int]]:
    """(the stack, its API's base URL, the dev server's pid); `examples` loads the
    example journeys' templates and offers; without `worker`, start one with
    `worker_process`; `server_on_disk`: the dev server keeps its state in a SQLite file
    (WAL, no fsync: a benchmark's server need not survive a power cut) instead of memory;
    `mailbox`: the SMTP server's, to read what arrived."""
    port = free_port()
    smtp = start_smtp(mailbox or Mailbox(), port=free_port())
    try:
        with (
            tempfile.TemporaryDirectory() as data,
            dev_server(
                _server_command(port, Path(data) / "temporal.db" if server_on_disk else None)
            ) as server,
        ):
            api_port = free_port()
            settings = Settings(
                data_dir=Path(data),
                generate_secrets=True,
                sandbox=True,
                temporal_address=f"127.0.0.1:{port}",
                api_port=api_port,
                public_url=f"http://127.0.0.1:{api_port}",
                smtp_port=smtp.port,
                task_queue="bench-journeys",
                **(
                    {
                        "frequency_caps": [],
                        "quiet_hours": None,
                        "arbitration_seconds": 0,
                        # Telemetry off unless a suite measures it (bench/operations.py).
                        "tracing": False,
                        "metrics_address": None,
                        # One key sends everything here: a per-key limit would pace it.
                        "rate_limit_per_second": 0,
                        "read_rate_limit_per_second": 0,
                        "anonymous_rate_limit_per_second": 0,
                        # Providers unpaced (the baseline has no ceilings either), unless
                        # a suite measures pacing (bench/pace.py).
                        **UNPACED,
                    }
                    | overrides
                ),
            )
            async with running_stack(settings, examples=examples, worker=worker) as stack:
                yield stack, f"http://127.0.0.1:{api_port}", server.pid
    finally:
        smtp.stop()


def product_guardrails() -> dict[str, Any]:
    """`bench_stack` overrides for the product's guardrail defaults (the global frequency
    cap, the arbitration window), quiet hours off: they would hold sends for hours."""
    defaults = Settings()
    return {
        "frequency_caps": defaults.frequency_caps,
        "arbitration_seconds": defaults.arbitration_seconds,
        "quiet_hours": None,
    }


def _server_command(port: int, db_file: Path | None) -> list[str]:
    pragmas = ["journal_mode=wal", "synchronous=off"] if db_file else []
    extra = [flag for p in pragmas for flag in ("--sqlite-pragma", p)]
    return dev_server_command(port=port, ui_port=None, db_file=db_file, extra=extra)


@contextlib.contextmanager
def worker_process(
    settings: Settings, *module_and_args: str, stdout: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m module args` with these settings, stopped at the end: a worker in its
    own process, so its memory and CPU are its own (`stdout` takes what it prints)."""
    process = spawn(settings, *module_and_args, stdout=stdout)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drained(client: Client, task_queue: str) -> None:
    """Until no workflow task waits on `task_queue` (twice in a row): the work started so
    far has been picked up by its worker, not merely accepted by the server."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        report_stats=True,
    )
    empty = 0
    while empty < 2:
        described = await client.workflow_service.describe_task_queue(request)
        empty = empty + 1 if described.stats.approximate_backlog_count == 0 else 0
        await asyncio.sleep(0.25)


async def idle(pids: list[int], *, busy: float = 0.05, every: float = 0.2) -> float:
    """Until these processes (the dev server, the workers) together use less than `busy`
    of a core: the work a round left behind (visibility writes, workflow tasks after a
    result) is done, and counted to the side that caused it (`alternate`'s `settle`).
    Returns the seconds of the last, idle, look: not the side's work."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p) for p in pids)
        await asyncio.sleep(every)
        if (sum(cpu_seconds(p) for p in pids) - before) / every < busy:
            return every
    return 0.0


def tag() -> str:
    return uuid.uuid4().hex[:8]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run `one(i)` for i < n with at most `concurrency` in flight; wall seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def drain() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(drain() for _ in range(concurrency)))
    return time.perf_counter() - started


async def alternate(
    n: int,
    concurrency: int,
    sides: Mapping[str, Callable[[int], Awaitable[None]]],
    *,
    rounds: int = 4,
    settle: Callable[[str], Awaitable[float | None]] | None = None,
) -> dict[str, float]:
    """Run every side in `rounds` rounds of n/rounds items, the order alternating (AB, BA,
    ...) so no side always meets the emptier (or busier) server; items per second for each
    side. A round's clock stops after `settle(side)` (e.g. its worker drained its queue),
    less the seconds it returns (time it spent that was no side's work)."""
    seconds = dict.fromkeys(sides, 0.0)
    per = n // rounds
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:

            async def shifted(
                i: int, one: Callable[[int], Awaitable[None]] = sides[name], at: int = r * per
            ) -> None:
                await one(i + at)

            started = time.perf_counter()
            await bounded(per, concurrency, shifted)
            spare = (await settle(name) or 0.0) if settle is not None else 0.0
            seconds[name] += time.perf_counter() - started - spare
    return {name: per * rounds / spent for name, spent in seconds.items()}


async def api_client(stores: Stores, base: str, timeout: float = 60) -> httpx.AsyncClient:
    """The API at `base` as an admin calls it (a key made in its database)."""
    key = await stores.keys.create("bench", ["admin"])
    return httpx.AsyncClient(
        base_url=base, timeout=timeout, headers={"Authorization": f"Bearer {key.token}"}
    )
