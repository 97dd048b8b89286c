"""What operating features cost: scenario 1 with tracing (console exporter to a file),
Prometheus metrics and the payload codec all on, beside the same journeys with them all
off, on one dev server in one run. Two stacks (worker + API each, on their own task
queues and databases) take turns, in rounds of alternating order, so neither always meets
the emptier server. Target: at most 10% slower (ratio >= 0.90x)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from rich.console import Console

from bench.stack import Row, bench_stack, bounded, free_port, tag
from cli.embedded import Stack, running_stack
from examples.onboarding_nudge import JOURNEY as ONBOARDING
from schemas.journey import Entry, ExitStep, JourneySpec, SendStep
from workers.codec import new_key
from workers.telemetry import install_tracing

ONE_SEND = JourneySpec(
    id="one-send",
    name="Bench: one send",
    entry=Entry(event="unused"),
    steps=[
        SendStep(id="push", channel="in_app", template="come-back", next="end"),
        ExitStep(id="end"),
    ],
)


@contextlib.asynccontextmanager
async def telemetry_on(off: Stack, traces: Path) -> AsyncIterator[tuple[Stack, str]]:
    """A second stack on the same dev server with every operating feature on."""
    api_port = free_port()
    with tempfile.TemporaryDirectory() as data, traces.open("w") as out:
        settings = off.settings.model_copy(
            update={
                "data_dir": Path(data),
                "task_queue": "bench-telemetry-on",
                "api_port": api_port,
                "public_url": f"http://127.0.0.1:{api_port}",
                "tracing": True,
                "metrics_address": f"127.0.0.1:{free_port()}",
                "payload_key": new_key(),
            }
        )
        settings = type(settings).model_validate(settings.model_dump())  # key as a secret
        install_tracing(settings, console=out)
        async with running_stack(settings, examples=True) as on:
            yield on, f"http://127.0.0.1:{api_port}"


async def publish(api: httpx.AsyncClient, spec: JourneySpec) -> tuple[str, str]:
    t = tag()
    body = spec.model_copy(update={"id": f"ops-{t}", "entry": Entry(event=f"ops.{t}")})
    response = await api.post("/v1/journeys", json=body.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return body.id, f"ops.{t}"


async def turns(
    n: int, c: int, rounds: int, sides: dict[str, Callable[[int], Awaitable[None]]]
) -> dict[str, float]:
    """Items per second per side, over `rounds` rounds of n/rounds items each, the sides'
    order alternating (ABBA...)."""
    seconds = dict.fromkeys(sides, 0.0)
    per = n // rounds
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            one = sides[name]
            base = r * per

            async def shifted(i: int, one: Callable = one, base: int = base) -> None:  # type: ignore[type-arg]
                await one(base + i)

            seconds[name] += await bounded(per, c, shifted)
    return {name: per * rounds / spent for name, spent in seconds.items()}


async def measure(n: int, c: int, console: Console) -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        traces = Path(scratch) / "traces.log"
        async with (
            bench_stack(examples=True) as (off, off_base, _),
            telemetry_on(off, traces) as (on, on_base),
            httpx.AsyncClient(base_url=off_base, timeout=60) as off_api,
            httpx.AsyncClient(base_url=on_base, timeout=60) as on_api,
        ):
            sides = {"off": (off, off_api), "on": (on, on_api)}
            run = tag()

            def enter(name: str, entry: str, run: str = run) -> Callable[[int], Awaitable[None]]:
                api = sides[name][1]

                async def one(i: int) -> None:
                    event = {"customer_id": f"{name}-{run}-{i}", "name": entry}
                    response = await api.post("/v1/events", json=event)
                    assert response.status_code == 202, response.text

                return one

            def complete(name: str, journey: str, entry: str) -> Callable[[int], Awaitable[None]]:
                stack, api = sides[name]

                async def one(i: int) -> None:
                    cid = f"{name}-{run}-done-{i}"
                    response = await api.post(
                        "/v1/events", json={"customer_id": cid, "name": entry}
                    )
                    assert response.status_code == 202, response.text
                    await stack.client.get_workflow_handle(f"journey/{journey}/{cid}").result()

                return one

            entries = {k: await publish(api, ONBOARDING) for k, (_, api) in sides.items()}
            sends = {k: await publish(api, ONE_SEND) for k, (_, api) in sides.items()}
            await turns(40, 10, 2, {k: enter(k, entries[k][1], f"warm-{run}") for k in sides})
            console.print(f"n={n}, concurrency={c}: scenario 1 entry, telemetry on vs off ...")
            entry = await turns(n, c, 6, {k: enter(k, entries[k][1]) for k in sides})
            console.print("one-send completion, telemetry on vs off ...")
            done = await turns(n, c, 6, {k: complete(k, *sends[k]) for k in sides})
            size = traces.stat().st_size / 1e6
    console.print(f"console traces written while on: {size:.1f} MB")
    return [
        ("scenario 1 entry, tracing+metrics+codec (/s)", entry["on"], entry["off"], ">= 0.90x"),
        ("one-send completion, all on (/s)", done["on"], done["off"], ">= 0.90x"),
    ]
