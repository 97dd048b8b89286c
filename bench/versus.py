"""`./dev bench --suite versus`: every example journey in the product beside the same
journey written by hand as its own Temporal workflow (bench/handwritten.py), in one run,
with the product's guardrail defaults (global frequency cap, the 250 ms arbitration window;
quiet hours off, which would hold sends for hours on both sides alike).

Each side is deployed as in production: the product as an API process and a worker process,
the hand-written workflows as a worker process and a services process (provider sandboxes,
decisioning), their backend calling Temporal directly from this process; each side with its
own SQLite database and task queue, on one dev server. Customers exist before they enter:
this process writes their profiles into each side's database. Every
enrollment takes its journey's longest path (no goal event: every reminder goes out) with
its days shortened to a tenth of a second. The direct-debit journey, entered from an
audience in the product, is entered here by an event on both sides (the audience run's own
cost is the ingestion suite's figure). The sides take turns in rounds of alternating order.

Figures per journey: enrollments completed per second; latency from the entry event to the
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

import httpx
from rich.console import Console
from temporalio.client import Client

from bench import handwritten as hand_written
from bench.handwritten import ByHand, HandInput
from bench.operations import Side, publish, ready, side
from bench.sizing import actions, histories
from bench.stack import (
    Row,
    alternate,
    bench_stack,
    cpu_seconds,
    idle,
    pct,
    product_guardrails,
    tag,
    worker_process,
)
from journeys.examples import (
    cart_abandonment,
    direct_debit,
    onboarding_nudge,
    subscription_renewal,
    welcome_series,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import JourneySpec
from journeys.schemas.profile import Profile
from journeys.schemas.settings import Settings
from journeys.stack.embedded import free_port, load_examples, open_stores
from journeys.storage.stores import Stores
from journeys.workflows import search_attributes as sa

SCALE = 864_000.0  # a day lasts a tenth of a second
ROUNDS = 4  # per side, alternating: with two, one slow wave moved a rate by a third
DAY = 86_400 / SCALE


def _customer(cid: str, i: int) -> Profile:
    """Reachable on every channel the journeys use; every third one on the Pro plan."""
    return Profile(
        customer_id=cid,
        email=f"{cid}@example.com",
        phone="+4915112345678",
        push_tokens=[f"token-{cid}"],
        consent={"whatsapp": True},
        attributes={"plan": "pro" if i % 3 == 0 else "free"},
    )


@dataclass(frozen=True)
class Pair:
    """One example journey and its hand-written twin."""

    label: str
    spec: JourneySpec
    by_hand: type[ByHand]
    event: str
    """The hand-written side's entry event."""
    scheduled: float
    """Seconds of scheduled waits on the path every enrollment takes."""


PAIRS = [
    Pair(
        "scenario 1, onboarding nudge",
        onboarding_nudge.JOURNEY,
        hand_written.OnboardingNudgeByHand,
        "registration.completed",
        3 * DAY,
    ),
    Pair(
        "scenario 2, cart abandonment",
        cart_abandonment.JOURNEY,
        hand_written.CartAbandonmentByHand,
        "cart.updated",
        DAY + DAY / 24,
    ),
    Pair(
        "scenario 3, subscription renewal",
        subscription_renewal.JOURNEY,
        hand_written.SubscriptionRenewalByHand,
        "subscription.expiring",
        6 * DAY,
    ),
    Pair(
        "scenario 4, direct-debit prompt",
        direct_debit.JOURNEY,
        hand_written.DirectDebitByHand,
        "direct_debit.eligible",
        14 * DAY,
    ),
    Pair(
        "welcome series",
        welcome_series.JOURNEY,
        hand_written.WelcomeSeriesByHand,
        "signup.completed",
        DAY / 144,
    ),
]


@dataclass
class Hand:
    """The hand-written side: its services and worker processes, its store, this process's
    client."""

    settings: Settings
    stores: Stores
    client: Client
    pids: list[int]
    """Its services process (provider sandboxes, decisioning), then its worker."""


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    workflow_ids: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def hand_side(base: Settings, scratch: Path, client: Client) -> AsyncIterator[Hand]:
    """The hand-written workflows' worker, and the services they call (the provider
    sandboxes and the decisioning service, which the product serves from its API) in a
    process of their own, as the product's are: each side's provider calls cost its own
    processes' CPU."""
    data = scratch / "by-hand"
    data.mkdir()
    port = free_port()
    settings = base.model_copy(
        update={
            "data_dir": data,
            "task_queue": "bench-by-hand",
            "api_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            # A team's own workflow code, changed with every journey, keeps Temporal's
            # sandbox (with its module imported once, as the product's was before).
            "workflow_sandbox": "passthrough",
        }
    )
    stores = await open_stores(settings)
    await load_examples(stores)  # the templates and offers the journeys use
    try:
        with (
            worker_process(settings, "journeys.cli.main", "api") as services,
            worker_process(settings, "bench.handwritten", settings.task_queue) as worker,
        ):
            async with httpx.AsyncClient(base_url=settings.public_url) as api:
                await ready(api)
            yield Hand(settings, stores, client, [services.pid, worker.pid])
    finally:
        await stores.close()


async def measure(n: int, c: int, console: Console, only: str | None = None) -> list[Row]:
    """`only`: the pairs whose label contains it (default every one)."""
    guardrails = product_guardrails()
    pairs = [p for p in PAIRS if only is None or only in p.label]
    rows: list[Row] = []
    async with bench_stack(worker=False, examples=True, **guardrails) as (stack, _, server):
        with tempfile.TemporaryDirectory() as scratch:
            async with (
                side(stack.settings, "product", False, Path(scratch)) as ours,
                hand_side(stack.settings, Path(scratch), stack.client) as hand,
            ):
                # Customers exist before they enter, on both sides: their profiles are
                # written here, into each side's database, off both sides' processes.
                profiles = await open_stores(ours.settings)
                try:
                    for pair in pairs:
                        console.print(
                            f"versus, {pair.label}: {n} enrollments a side, {c} in flight"
                        )
                        rows += await _measure_pair(
                            pair, n, c, (ours, profiles), hand, stack.client, server
                        )
                finally:
                    await profiles.close()
    return rows


async def _measure_pair(
    pair: Pair,
    n: int,
    c: int,
    product_side: tuple[Side, Stores],
    hand: Hand,
    client: Client,
    server: int,
) -> list[Row]:
    ours, our_stores = product_side
    journey, entry = await publish(ours.api, pair.spec.model_copy(update={"time_scale": SCALE}))
    run = tag()
    tallies = {"product": Tally(), "by hand": Tally()}

    async def product(i: int) -> None:
        cid = f"p{run}-{i}"
        await our_stores.profiles.put(_customer(cid, i))
        started = time.perf_counter()
        sent = await ours.api.post("/v1/events", json={"customer_id": cid, "name": entry})
        assert sent.status_code == 202, sent.text
        workflow_id = f"journey/{journey}/{cid}"
        await ours.client.get_workflow_handle(workflow_id).result()
        tallies["product"].latencies.append(time.perf_counter() - started)
        tallies["product"].workflow_ids.append(workflow_id)

    async def by_hand(i: int) -> None:
        cid = f"h{run}-{i}"
        await hand.stores.profiles.put(_customer(cid, i))
        started = time.perf_counter()
        # Reaching this one journey alone, as the product's router marks an event that
        # reaches one journey sending marketing: neither side pays an arbitration window.
        trigger = CustomerEvent.create(cid, pair.event).model_copy(update={"contested": False})
        handle = await hand.client.start_workflow(
            pair.by_hand.run,  # type: ignore[attr-defined]
            HandInput(customer_id=cid, trigger=trigger, scale=SCALE),
            id=f"by-hand/{pair.by_hand.JOURNEY}/{cid}",
            task_queue=hand.settings.task_queue,
            start_signal="event",
            start_signal_args=[trigger],
            search_attributes=sa.at_start(pair.by_hand.JOURNEY, 1, cid, pair.by_hand.FIRST),
        )
        await handle.result()
        tallies["by hand"].latencies.append(time.perf_counter() - started)
        tallies["by hand"].workflow_ids.append(handle.id)

    pids = {"product": ours.pids, "by hand": hand.pids}
    cpu = {k: [cpu_seconds(p) for p in v] for k, v in pids.items()}
    rate = await alternate(
        n,
        c,
        {"product": product, "by hand": by_hand},
        rounds=ROUNDS,
        settle=lambda _: idle([server, *ours.pids, *hand.pids]),
    )
    used = {k: [cpu_seconds(p) - b for p, b in zip(pids[k], cpu[k], strict=True)] for k in pids}
    cost = {k: await _history_cost(client, t) for k, t in tallies.items()}
    return _rows(pair, rate, tallies, used, cost, n)


async def _history_cost(client: Client, tally: Tally) -> tuple[float, float]:
    """(billable actions, history bytes) per enrollment, from 20 of its enrollments."""
    sample = tally.workflow_ids[:: max(1, len(tally.workflow_ids) // 20)]
    runs = [r for wid in sample for r in await histories(client, wid)]
    per = len(sample)
    return sum(actions(r) for r in runs) / per, sum(e.ByteSize() for r in runs for e in r) / per


def _rows(
    pair: Pair,
    rate: dict[str, float],
    tallies: dict[str, Tally],
    used: dict[str, list[float]],
    cost: dict[str, tuple[float, float]],
    n: int,
) -> list[Row]:
    def overhead(name: str, q: float) -> float:
        return 1000 * max(0.0, pct(tallies[name].latencies, q) - pair.scheduled)

    def per(seconds: float) -> float:
        return 1000 * seconds / n

    p, h = "product", "by hand"
    return [
        (f"{pair.label}: enrollments completed /s", rate[p], rate[h], ">= 0.9x"),
        ("  end beyond its waits, p50 (ms)", overhead(p, 0.5), overhead(h, 0.5), "-"),
        ("  end beyond its waits, p99 (ms)", overhead(p, 0.99), overhead(h, 0.99), "<= 1.5x"),
        ("  worker CPU ms / enrollment", per(used[p][1]), per(used[h][1]), "-"),
        (
            "  API CPU ms (by hand: its services) / enrollment",
            per(used[p][0]),
            per(used[h][0]),
            "-",
        ),
        ("  billable actions / enrollment", cost[p][0], cost[h][0], "<= 1.1x"),
        ("  history bytes / enrollment", cost[p][1], cost[h][1], "<= 2x"),
    ]
