"""What operating features cost: scenario 1 with tracing (console exporter to a file),
Prometheus metrics and the payload codec all on, beside the same with them all off.

Each side is deployed as in production: an API process and a worker process of its own
(own task queue, own SQLite database), both sides on one dev server. This process only
sends HTTP requests. The sides take turns in rounds of alternating order, so neither
always meets the emptier server, and a round ends when its side's worker has drained its
task queue. Target: at most 10% slower (ratio >= 0.90x)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from rich.console import Console
from temporalio.client import Client

from activities.channels import CHANNEL_NAMES
from bench.stack import Row, bench_stack, bounded, cpu_seconds, drained, free_port, tag
from cli.embedded import load_examples, spawn
from examples.onboarding_nudge import JOURNEY as ONBOARDING
from schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep
from schemas.settings import Settings
from storage.stores import Stores
from workers.codec import new_key
from workers.temporal import connect

ONE_SEND = JourneySpec(
    id="one-send",
    name="Bench: one send",
    entry=Entry(event="unused"),
    steps=[
        SendStep(id="push", channel="in_app", content=MessageContent(body="Hi"), next="end"),
        ExitStep(id="end"),
    ],
)


@dataclass
class Side:
    settings: Settings
    api: httpx.AsyncClient
    client: Client
    """This process's client, with the side's converter (to read results)."""
    pids: list[int]
    """Its API and worker processes."""

    def cpu(self) -> float:
        """CPU seconds its API and worker have used so far."""
        return sum(cpu_seconds(pid) for pid in self.pids)


@contextlib.contextmanager
def processes(settings: Settings, out: IO[bytes] | None) -> Iterator[list[int]]:
    """The side's API and worker, each in its own process, stopped at the end."""
    api = spawn(settings, "cli.main", "api", stdout=out)
    other = settings.model_copy(update={"metrics_address": _next_port(settings)})
    worker = spawn(other, "cli.main", "worker", stdout=out)
    try:
        yield [api.pid, worker.pid]
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(30)


def _next_port(settings: Settings) -> str | None:
    return f"127.0.0.1:{free_port()}" if settings.metrics_address else None


@contextlib.asynccontextmanager
async def side(base: Settings, name: str, on: bool, scratch: Path) -> AsyncIterator[Side]:
    api_port = free_port()
    data = scratch / name
    data.mkdir()
    settings = Settings.model_validate(
        base.model_dump()
        | {
            "data_dir": data,
            "task_queue": f"bench-ops-{name}",
            "api_port": api_port,
            "public_url": f"http://127.0.0.1:{api_port}",
            "tracing": on,
            "metrics_address": f"127.0.0.1:{free_port()}" if on else None,
            "payload_key": new_key() if on else None,
        }
    )
    stores = await Stores.open(settings.db_url(), channels=CHANNEL_NAMES)
    await load_examples(stores)  # the templates scenario 1 sends
    await stores.close()
    with (
        (scratch / f"{name}-traces.log").open("wb") as out,
        processes(settings, out) as pids,
    ):
        client = await connect(settings.model_copy(update={"metrics_address": None}))
        async with httpx.AsyncClient(base_url=settings.public_url, timeout=60) as api:
            await _ready(api)
            yield Side(settings, api, client, pids)


async def _ready(api: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await api.get("/healthz")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.2)


async def publish(api: httpx.AsyncClient, spec: JourneySpec) -> tuple[str, str]:
    t = tag()
    body = spec.model_copy(update={"id": f"ops-{t}", "entry": Entry(event=f"ops.{t}")})
    response = await api.post("/v1/journeys", json=body.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return body.id, f"ops.{t}"


async def turns(
    n: int, c: int, rounds: int, sides: dict[str, Side], one: Callable[[Side, int], Awaitable[None]]
) -> dict[str, float]:
    """Items per second per side over `rounds` rounds of n/rounds items, the sides' order
    alternating (ABBA...), each round timed until its worker drained its task queue."""
    seconds = dict.fromkeys(sides, 0.0)
    cpu = dict.fromkeys(sides, 0.0)
    per = n // rounds
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            s, base = sides[name], r * per

            async def shifted(i: int, s: Side = s, base: int = base) -> None:
                await one(s, base + i)

            started, used = time.perf_counter(), s.cpu()
            await bounded(per, c, shifted)
            await drained(s.client, s.settings.task_queue)
            seconds[name] += time.perf_counter() - started
            cpu[name] += s.cpu() - used
    rates = {name: per * rounds / spent for name, spent in seconds.items()}
    cpu_ms = {f"{name} cpu": 1000 * used / (per * rounds) for name, used in cpu.items()}
    return rates | cpu_ms


async def measure(n: int, c: int, console: Console) -> list[Row]:
    async with bench_stack(worker=False) as (stack, _, _pid):
        with tempfile.TemporaryDirectory() as scratch:
            async with (
                side(stack.settings, "off", False, Path(scratch)) as off,
                side(stack.settings, "on", True, Path(scratch)) as on,
            ):
                sides = {"off": off, "on": on}
                entries = {k: await publish(s.api, ONBOARDING) for k, s in sides.items()}
                sends = {k: await publish(s.api, ONE_SEND) for k, s in sides.items()}
                run = tag()

                async def enter(s: Side, i: int, prefix: str = run) -> None:
                    name = "on" if s is on else "off"
                    event = {"customer_id": f"{prefix}-{i}", "name": entries[name][1]}
                    response = await s.api.post("/v1/events", json=event)
                    assert response.status_code == 202, response.text

                async def complete(s: Side, i: int) -> None:
                    journey, entry = sends["on" if s is on else "off"]
                    cid = f"{run}-done-{i}"
                    event = {"customer_id": cid, "name": entry}
                    response = await s.api.post("/v1/events", json=event)
                    assert response.status_code == 202, response.text
                    await s.client.get_workflow_handle(f"journey/{journey}/{cid}").result()

                await turns(40, 10, 2, sides, lambda s, i: enter(s, i, f"warm-{run}"))
                console.print(f"n={n}, concurrency={c}: scenario 1 entry, telemetry on vs off")
                entry = await turns(n, c, 6, sides, enter)
                console.print("one-send completion, telemetry on vs off ...")
                done = await turns(n, c, 6, sides, complete)
            size = (Path(scratch) / "on-traces.log").stat().st_size / 1e6
    console.print(f"console traces written while on: {size:.1f} MB")
    return [
        ("scenario 1 entry, tracing+metrics+codec (/s)", entry["on"], entry["off"], ">= 0.90x"),
        ("  API + worker CPU per entry (ms)", entry["on cpu"], entry["off cpu"], "-"),
        ("one-send completion, all on (/s)", done["on"], done["off"], ">= 0.90x"),
        ("  API + worker CPU per completion (ms)", done["on cpu"], done["off cpu"], "-"),
    ]
