"""`./dev bench --suite versus`: scenario 1 in the product beside the same journey written by
hand as its own Temporal workflow (bench/handwritten.py), in one run, with the product's
guardrail defaults (global frequency cap, the 250 ms arbitration window; quiet hours off,
which would hold sends for hours on both sides alike).

Each side is deployed as in production: the product as an API process and a worker process,
the hand-written workflow as a worker process (its backend calls Temporal directly from this
process), each with its own SQLite database and task queue, on one dev server. Every
enrollment takes the reminder path (no clubs: a nudge, then an email) with its days
shortened to a tenth of a second. The sides take turns in rounds of alternating order.

Figures: enrollments completed per second; latency from the entry event to the
enrollment's end beyond its scheduled waits (p50, p99); worker and API CPU milliseconds per
enrollment; billable actions per enrollment (Temporal Cloud's rules, bench/sizing.py);
history bytes per enrollment.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.handwritten import NudgeInput, OnboardingNudgeByHand
from bench.operations import publish, side
from bench.sizing import actions, histories
from bench.stack import Row, alternate, bench_stack, cpu_seconds, idle, pct, tag, worker_process
from cli.embedded import load_examples, open_stores
from examples.onboarding_nudge import JOURNEY as ONBOARDING
from schemas.events import CustomerEvent
from schemas.profile import Profile
from schemas.settings import Settings
from storage.stores import Stores
from workflows import search_attributes as sa

SCALE = 864_000.0  # a day lasts a tenth of a second
SCHEDULED = 3 * 86_400 / SCALE  # the reminder path's waits, in seconds


@dataclass
class Hand:
    """The hand-written side: its worker process, its store, this process's client."""

    settings: Settings
    stores: Stores
    client: Client
    pid: int


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    workflow_ids: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def hand_side(base: Settings, scratch: Path, client: Client) -> AsyncIterator[Hand]:
    data = scratch / "by-hand"
    data.mkdir()
    settings = base.model_copy(update={"data_dir": data, "task_queue": "bench-by-hand"})
    stores = await open_stores(settings)
    await load_examples(stores)  # the templates the nudge and the email use
    try:
        with worker_process(settings, "bench.handwritten", settings.task_queue) as process:
            yield Hand(settings, stores, client, process.pid)
    finally:
        await stores.close()


def start_attributes(customer_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.JOURNEY_ID, "onboarding-by-hand"),
            SearchAttributePair(sa.JOURNEY_VERSION, 1),
            SearchAttributePair(sa.CUSTOMER_ID, customer_id),
            SearchAttributePair(sa.JOURNEY_STEP, "wait-club"),
            SearchAttributePair(sa.JOURNEY_STATUS, "active"),
        ]
    )


async def measure(n: int, c: int, console: Console) -> list[Row]:
    defaults = Settings()
    guardrails = {
        "frequency_caps": defaults.frequency_caps,
        "arbitration_seconds": defaults.arbitration_seconds,
        "quiet_hours": None,
    }
    spec = ONBOARDING.model_copy(update={"time_scale": SCALE})
    async with bench_stack(worker=False, examples=True, **guardrails) as (stack, _, server):
        with tempfile.TemporaryDirectory() as scratch:
            async with (
                side(stack.settings, "product", False, Path(scratch)) as ours,
                hand_side(stack.settings, Path(scratch), stack.client) as hand,
            ):
                journey, entry = await publish(ours.api, spec)
                run = tag()
                tallies = {"product": Tally(), "by hand": Tally()}

                async def product(i: int) -> None:
                    cid = f"p{run}-{i}"
                    put = await ours.api.put(f"/v1/customers/{cid}", json={"email": f"{cid}@x.io"})
                    assert put.status_code == 200, put.text
                    started = time.perf_counter()
                    sent = await ours.api.post(
                        "/v1/events", json={"customer_id": cid, "name": entry}
                    )
                    assert sent.status_code == 202, sent.text
                    workflow_id = f"journey/{journey}/{cid}"
                    await ours.client.get_workflow_handle(workflow_id).result()
                    tallies["product"].latencies.append(time.perf_counter() - started)
                    tallies["product"].workflow_ids.append(workflow_id)

                async def by_hand(i: int) -> None:
                    cid = f"h{run}-{i}"
                    await hand.stores.profiles.put(Profile(customer_id=cid, email=f"{cid}@x.io"))
                    started = time.perf_counter()
                    trigger = CustomerEvent.create(cid, "registration.completed")
                    handle = await hand.client.start_workflow(
                        OnboardingNudgeByHand.run,
                        NudgeInput(customer_id=cid, trigger=trigger, scale=SCALE),
                        id=f"by-hand/{cid}",
                        task_queue=hand.settings.task_queue,
                        start_signal="event",
                        start_signal_args=[trigger],
                        search_attributes=start_attributes(cid),
                    )
                    await handle.result()
                    tallies["by hand"].latencies.append(time.perf_counter() - started)
                    tallies["by hand"].workflow_ids.append(handle.id)

                pids = {"product": ours.pids, "by hand": [hand.pid]}
                cpu = {k: [cpu_seconds(p) for p in v] for k, v in pids.items()}
                console.print(f"versus: {n} enrollments a side, {c} in flight ...")
                rate = await alternate(
                    n,
                    c,
                    {"product": product, "by hand": by_hand},
                    settle=lambda _: idle([server, *ours.pids, hand.pid]),
                )
                used = {
                    k: [cpu_seconds(p) - b for p, b in zip(pids[k], cpu[k], strict=True)]
                    for k in pids
                }
                cost = {k: await _history_cost(stack.client, t) for k, t in tallies.items()}
    return _rows(rate, tallies, used, cost, n)


async def _history_cost(client: Client, tally: Tally) -> tuple[float, float]:
    """(billable actions, history bytes) per enrollment, from 20 of its enrollments."""
    sample = tally.workflow_ids[:: max(1, len(tally.workflow_ids) // 20)]
    runs = [r for wid in sample for r in await histories(client, wid)]
    per = len(sample)
    return sum(actions(r) for r in runs) / per, sum(e.ByteSize() for r in runs for e in r) / per


def _rows(
    rate: dict[str, float],
    tallies: dict[str, Tally],
    used: dict[str, list[float]],
    cost: dict[str, tuple[float, float]],
    n: int,
) -> list[Row]:
    def overhead(name: str, q: float) -> float:
        return 1000 * max(0.0, pct(tallies[name].latencies, q) - SCHEDULED)

    p, h = "product", "by hand"
    return [
        ("scenario 1: enrollments completed /s (vs by hand)", rate[p], rate[h], ">= 0.9x"),
        ("  end beyond its waits, p50 (ms)", overhead(p, 0.5), overhead(h, 0.5), "-"),
        ("  end beyond its waits, p99 (ms)", overhead(p, 0.99), overhead(h, 0.99), "<= 1.5x"),
        ("  worker CPU ms / enrollment", 1000 * used[p][1] / n, 1000 * used[h][0] / n, "-"),
        ("  API CPU ms / enrollment (by hand: none)", 1000 * used[p][0] / n, 0.0, "-"),
        ("  billable actions / enrollment", cost[p][0], cost[h][0], "<= 1.1x"),
        ("  history bytes / enrollment", cost[p][1], cost[h][1], "<= 2x"),
    ]
