"""Tracking (issue 30): an email's tracked link and open pixel on one API process, beside a
bare Starlette app that only redirects, served the same way (uvicorn, in this process) in
the same run; and the cost of a reaction through the router.

Requests come from a load process of its own (`bench/load.py`, keep-alive connections), so
the client's work is on neither server's loop.

- redirect: `GET /v1/track/click/{token}` (token check, one ledger read, the 302; the
  reaction is counted after the answer) vs a Starlette route answering the same 302;
- pixel: `GET /v1/track/open/{token}` vs a Starlette route answering the same GIF;
- reaction: `usecases.reactions.react` for a repeat click (one UPDATE) and a first one
  (an INSERT and the event through the log and router), per call, beside routing one
  plain customer event that enters no journey (`ingest`).

Rounds alternate (AB, BA, ...) so neither side always meets the warmer process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bench.stack import Row, api_client, bench_stack, pct, tag
from journeys.api.routes.tracking import PIXEL
from journeys.schemas import reactions
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep
from journeys.stack.embedded import free_port
from journeys.storage.secrets import tracking_key
from journeys.usecases.reactions import react
from journeys.usecases.routing import EventRouter, ingest

LINK = "https://shop.example/deal?id=7"


def bare_app() -> Starlette:
    """The baseline: what a hand-written redirect service would be."""

    async def click(request: Any) -> Response:
        return RedirectResponse(LINK, status_code=302, headers={"Cache-Control": "no-store"})

    async def pixel(request: Any) -> Response:
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/click/{token}", click), Route("/open/{token}", pixel)])


async def _sent_message(stack: Any, api: httpx.AsyncClient) -> int:
    """A real email with a tracked link, sent through the stack: its ledger row."""
    t = tag()
    spec = JourneySpec(
        id=f"bench-track-{t}",
        name="Tracked",
        entry=Entry(event=f"bench.track.{t}"),
        steps=[
            SendStep(
                id="mail",
                channel="email",
                content=MessageContent(
                    subject="Deal", body="x", html=f'<a href="{LINK}">the deal</a>'
                ),
                next="end",
            ),
            ExitStep(id="end"),
        ],
    )
    await stack.stores.journeys.publish(spec)
    customer = f"bench-{t}"
    await api.put(f"/v1/customers/{customer}", json={"email": f"{customer}@example.com"})
    answer = await api.post("/v1/events", json={"customer_id": customer, "name": spec.entry.event})
    assert answer.status_code == 202, answer.text
    for _ in range(600):
        rows = await stack.stores.ledger.for_customer(customer)
        if rows and rows[0].status == "sent":
            assert rows[0].id is not None
            return rows[0].id
        await asyncio.sleep(0.05)
    raise RuntimeError("the tracked email was not sent")


async def _load(url: str, n: int, concurrency: int, status: int) -> tuple[float, list[float]]:
    """(seconds, latencies in ms) of n GETs from a load process of its own."""
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.load", url, str(n), str(concurrency), str(status),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await run.communicate()
    if run.returncode != 0:
        raise RuntimeError(f"the load process failed on {url}")
    found = json.loads(out)
    return float(found["seconds"]), list(found["ms"])


async def _compare(
    product: str, baseline: str, n: int, concurrency: int, status: int, rounds: int = 4
) -> dict[str, tuple[float, list[float]]]:
    """Requests/s and latencies of each side, in rounds whose order alternates."""
    sides = {"product": product, "bare": baseline}
    spent = dict.fromkeys(sides, 0.0)
    ms: dict[str, list[float]] = {side: [] for side in sides}
    for r in range(rounds):
        for side in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            seconds, took = await _load(sides[side], n // rounds, concurrency, status)
            spent[side] += seconds
            ms[side] += took
    return {side: (len(ms[side]) / spent[side], ms[side]) for side in sides}


async def measure(n: int, concurrency: int, console: Console) -> list[Row]:
    rows: list[Row] = []
    async with bench_stack(worker=True) as (stack, base, _):
        api = await api_client(stack.stores, base)
        delivery = await _sent_message(stack, api)
        key = tracking_key(stack.settings)
        click = f"{base}/v1/track/click/{reactions.token(key, delivery, 0)}"
        opened = f"{base}/v1/track/open/{reactions.token(key, delivery, reactions.OPEN)}"
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(bare_app(), host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        bare = f"http://127.0.0.1:{port}"
        try:
            for what, product, baseline, status in (
                ("redirect", click, f"{bare}/click/x", 302),
                ("pixel", opened, f"{bare}/open/x", 200),
                ("healthz (the API's floor)", f"{base}/healthz", f"{bare}/open/x", 200),
            ):
                console.print(f"tracking: {what} ...")
                await _compare(product, baseline, 200, concurrency, status, rounds=2)  # warm
                found = await _compare(product, baseline, n, concurrency, status)
                (rate, ms), (bare_rate, bare_ms) = found["product"], found["bare"]
                target = "-" if what.startswith("healthz") else ">= 0.8x"
                rows.append((f"{what}, req/s (vs bare Starlette)", rate, bare_rate, target))
                rows.append(
                    (f"{what}, p99 ms (vs bare Starlette)", pct(ms, 0.99), pct(bare_ms, 0.99),
                     "-" if target == "-" else "<= 1.5x")
                )  # fmt: skip
            rows += await _reaction_cost(stack, delivery, max(n // 4, 200), console)
        finally:
            server.should_exit = True
            await serving
            await api.aclose()
    return rows


async def _reaction_cost(stack: Any, delivery: int, n: int, console: Console) -> list[Row]:
    """Per call: a repeat reaction, a first reaction (a new message each), beside routing
    one plain event that enters no journey."""
    console.print("tracking: the cost of a reaction ...")
    stores = stack.stores
    router = EventRouter(stack.client, stores.journeys, task_queue=stack.settings.task_queue)
    found = await stores.ledger.sent_message(delivery)
    assert found is not None
    sent = found[0]
    max_bytes = stack.settings.max_event_bytes

    async def repeat() -> None:
        await react(stores, router, sent, "clicked", datetime.now(UTC), max_bytes=max_bytes)

    async def first(i: int) -> None:
        other = reactions.Sent(
            10_000_000 + i, sent.customer_id, sent.journey_id, sent.version, sent.step_id, "email"
        )
        await react(stores, router, other, "clicked", datetime.now(UTC), max_bytes=max_bytes)

    async def plain(i: int) -> None:
        event = CustomerEvent.create(sent.customer_id, f"bench.nothing.{tag()}", {"i": i})
        await ingest([event], router, stores, max_bytes)

    timings: dict[str, float] = {}
    for name, call in (
        ("repeat", lambda i: repeat()),
        ("first", first),
        ("plain", plain),
    ):
        started = time.perf_counter()
        for i in range(n):
            await call(i)
        timings[name] = (time.perf_counter() - started) * 1000 / n
    return [
        ("a repeat reaction, ms (vs routing a plain event)",
         timings["repeat"], timings["plain"], "-"),
        ("a first reaction, ms (vs routing a plain event)",
         timings["first"], timings["plain"], "-"),
    ]  # fmt: skip
