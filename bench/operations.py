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
import functools
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from temporalio.client import Client

from bench.stack import (
    Row,
    alternate,
    bench_stack,
    cpu_seconds,
    drained,
    tag,
    worker_process,
)
from journeys.activities.channels import CHANNEL_NAMES
from journeys.examples.onboarding_nudge import JOURNEY as ONBOARDING
from journeys.runtime.codec import new_key
from journeys.runtime.temporal import connect
from journeys.schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep
from journeys.schemas.settings import Settings
from journeys.stack.embedded import free_port, load_examples
from journeys.storage.stores import Stores

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
    key = await stores.keys.create("bench", ["admin"])
    await stores.close()
    worker = settings.model_copy(update={"metrics_address": _next_port(settings)})
    with (
        (scratch / f"{name}-traces.log").open("wb") as out,
        worker_process(settings, "journeys.cli.main", "api", stdout=out) as api_process,
        worker_process(worker, "journeys.cli.main", "worker", stdout=out) as worker_process_,
    ):
        client = await connect(settings.model_copy(update={"metrics_address": None}))
        async with httpx.AsyncClient(
            base_url=settings.public_url,
            timeout=60,
            headers={"Authorization": f"Bearer {key.token}"},
        ) as api:
            await ready(api)
            yield Side(settings, api, client, [api_process.pid, worker_process_.pid])


async def ready(api: httpx.AsyncClient) -> None:
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


async def phase(
    n: int, c: int, sides: dict[str, Side], one: Callable[[str, int], Awaitable[None]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Items per second per side, in six rounds of alternating order, each round timed
    until its worker drained its task queue; and the milliseconds of API + worker CPU
    each side spent per item."""
    used = {name: s.cpu() for name, s in sides.items()}

    async def settle(name: str) -> None:
        await drained(sides[name].client, sides[name].settings.task_queue)

    each = {name: functools.partial(one, name) for name in sides}
    rates = await alternate(n, c, each, rounds=6, settle=settle)
    cpu = {name: 1000 * (s.cpu() - used[name]) / n for name, s in sides.items()}
    return rates, cpu


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

                async def enter(name: str, i: int, prefix: str = run) -> None:
                    event = {"customer_id": f"{prefix}-{i}", "name": entries[name][1]}
                    response = await sides[name].api.post("/v1/events", json=event)
                    assert response.status_code == 202, response.text

                async def complete(name: str, i: int) -> None:
                    journey, entry = sends[name]
                    cid = f"{run}-done-{i}"
                    event = {"customer_id": cid, "name": entry}
                    response = await sides[name].api.post("/v1/events", json=event)
                    assert response.status_code == 202, response.text
                    handle = sides[name].client.get_workflow_handle(f"journey/{journey}/{cid}")
                    await handle.result()

                await phase(40, 10, sides, functools.partial(enter, prefix=f"warm-{run}"))
                console.print(f"n={n}, concurrency={c}: scenario 1 entry, telemetry on vs off")
                entry, entry_cpu = await phase(n, c, sides, enter)
                console.print("one-send completion, telemetry on vs off ...")
                done, done_cpu = await phase(n, c, sides, complete)
            size = (Path(scratch) / "on-traces.log").stat().st_size / 1e6
    console.print(f"console traces written while on: {size:.1f} MB")
    return [
        ("scenario 1 entry, tracing+metrics+codec (/s)", entry["on"], entry["off"], ">= 0.90x"),
        ("  API + worker CPU per entry (ms)", entry_cpu["on"], entry_cpu["off"], "-"),
        ("one-send completion, all on (/s)", done["on"], done["off"], ">= 0.90x"),
        ("  API + worker CPU per completion (ms)", done_cpu["on"], done_cpu["off"], "-"),
    ]
