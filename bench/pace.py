"""Sends at the providers' ceilings (issue 32): an audience enters a one-send journey (the
bank's direct-debit prompt, each customer on their preferred channel), with the provider
sandboxes keeping the ceilings as the providers do: SES's 14 emails/s (the mailbox answers
`454 Throttling` over a token bucket of one second's sends, as SES allows short bursts),
Twilio's 1 segment/s per number over a pool of numbers (each number's queue, as Twilio
queues over the rate), and FCM's quota (429 over it). The worker runs in its own process.

The baseline is each provider's ceiling itself: the product should send at >= 0.95x of it
once the limits, not the machine, bound the rate, with nothing refused or queued at the
provider, nothing lost or sent twice, and the drain time it predicted (the queues'
`drain_seconds` once every send is booked) close to the one it took. The arrival figures
(the gaps and the most in one second) are at the provider's side: they add the spread of
the time between a send's slot and its arrival to the slots' exact spacing. Push's ceiling
(10,000/s) is beyond this machine: its rate is the machine's."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import psycopg
from rich.console import Console
from sqlmodel import col, func, select

from bench.stack import Row, api_client, bench_stack, tag, worker_process
from journeys.schemas.journey import (
    BEST_CHANNEL,
    Audience,
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
)
from journeys.schemas.profile import Profile
from journeys.services.mailbox import Mailbox
from journeys.stack.embedded import Stack
from journeys.storage.pace import PaceBook
from journeys.storage.stores import Stores
from journeys.storage.tables import DeliveryRow

EMAIL_RATE, SMS_RATE, PUSH_RATE = 14.0, 1.0, 10_000.0
NUMBERS = [f"+1500555{k:04d}" for k in range(3)]
ENTRY_RATE = 40.0
"""Customers entered a second: above what the ceilings let out (14 + 3 a second), so they
bind (this machine's one worker sends ~22 a second in all)."""
SHARES = (("email", 0.8), ("sms", 0.17), ("push", 0.03))


def journey(list_id: str, rate: float) -> JourneySpec:
    return JourneySpec(
        id=f"bench-pace-{tag()}",
        name="Bench: the direct-debit prompt",
        entry=Entry(audience=Audience(list=list_id, rate_per_second=rate)),
        steps=[
            SendStep(
                id="prompt",
                channel=BEST_CHANNEL,
                fallbacks=["email", "sms", "push"],
                topic="transactional",
                content=MessageContent(subject="Set up your direct debit", body="Tap to set it up"),
                next="end",
            ),
            ExitStep(id="end"),
        ],
    )


def channel_of(k: int, n: int) -> str:
    edge = 0.0
    for channel, share in SHARES:
        edge += share
        if k < edge * n:
            return channel
    return SHARES[-1][0]


def steady(times: list[float]) -> float:
    """Sends a second over the middle 80% of the span (ramp-up and tail left out)."""
    if len(times) < 10:
        return 0.0
    start, end = times[0], times[-1]
    low, high = start + (end - start) * 0.1, start + (end - start) * 0.9
    inside = [t for t in times if low <= t <= high]
    return len(inside) / (high - low) if high > low else 0.0


def most_in_a_second(times: list[float]) -> int:
    """The most arrivals in any one-second window (sliding: any start)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def most_in_a_clock_second(times: list[float]) -> int:
    """The most arrivals in one second of the clock (windows starting on whole seconds)."""
    return max(Counter(int(t) for t in times).values(), default=0)


async def measure(n: int, console: Console) -> list[Row]:
    overrides: dict[str, Any] = {
        "pace_email_per_second": EMAIL_RATE,
        "pace_sms_per_second": SMS_RATE,
        "pace_push_per_second": PUSH_RATE,
        "sms_from": NUMBERS[0],
        "sms_numbers": NUMBERS[1:],
    }
    mailbox = Mailbox()
    mailbox.throttle_at(EMAIL_RATE)  # SES's: 454 Throttling over it
    async with bench_stack(mailbox=mailbox, worker=False, **overrides) as (stack, base, _):
        api = await api_client(stack.stores, base)
        # The worker in its own process, as deployed: its sends' timing is not the API's.
        with worker_process(stack.settings):
            async with api:
                return await _measure(stack, api, mailbox, n, console)


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WRITERS, EACH = 8, 250


async def bookings_a_second(pace: PaceBook) -> float:
    """Bookings a second in one bucket, `WRITERS` workers at once (each booking takes the
    bucket's lock): the most sends a second one provider bucket can pace."""
    bucket = f"bench:{tag()}"

    async def writer() -> None:
        for _ in range(EACH):
            await pace.book([bucket], lambda _: 1e6, poll=timedelta(seconds=1))

    began = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return WRITERS * EACH / (time.perf_counter() - began)


async def postgres_bookings_a_second() -> float | None:
    """The same on PostgreSQL (127.0.0.1:5432/test, in a schema of its own), if it runs."""
    schema = f"bench_pace_{tag()}"
    try:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        return None
    try:
        stores = await Stores.open(POSTGRES_URL, channels=[], schema=schema)
        try:
            return await bookings_a_second(stores.pace)
        finally:
            await stores.close()
    finally:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def _measure(stack: Stack, api: Any, mailbox: Mailbox, n: int, console: Console) -> list[Row]:
    booking = [
        (
            "pace book: bookings/s in one bucket (SQLite)",
            await bookings_a_second(stack.stores.pace),
            PUSH_RATE,
            "-",
        ),
    ]
    if (postgres := await postgres_bookings_a_second()) is not None:
        booking.append(
            ("pace book: bookings/s in one bucket (PostgreSQL)", postgres, PUSH_RATE, "-")
        )
    for provider, rate in (("twilio", SMS_RATE), ("fcm", PUSH_RATE)):
        answer = await api.put("/sandbox/ceilings", json={"provider": provider, "per_second": rate})
        assert answer.status_code == 204, answer.text
    run = tag()
    list_id = f"pace-{run}"
    ids = [f"p{run}-{k:07d}" for k in range(n)]
    console.print(f"pace: {n:,} profiles ...")
    for k, cid in enumerate(ids):
        channel = channel_of(k % 100, 100)
        await stack.stores.profiles.put(
            Profile(
                customer_id=cid,
                email=f"{cid}@bench.example",
                phone=f"+1555{k:07d}",
                push_tokens=[f"token-{cid}"],
                preferred_channel=channel,  # type: ignore[arg-type]
            )
        )
    for i in range(0, n, 10_000):
        added = await api.post(
            f"/v1/audiences/{list_id}/members", json={"customer_ids": ids[i : i + 10_000]}
        )
        assert added.status_code == 200, added.text
    spec = journey(list_id, rate=ENTRY_RATE)
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).status_code == 201
    started = await api.post(f"/v1/journeys/{spec.id}/audience-runs", json={})
    assert started.status_code == 202, started.text
    name = started.json()["run"]
    began = time.monotonic()
    while True:  # entry, with the queues as they grow
        progress = (await api.get(f"/v1/journeys/{spec.id}/audience-runs/{name}")).json()
        if progress["progress"]["status"] == "completed":
            break
        await asyncio.sleep(5)
        queues = (await api.get("/v1/pace")).json()["queues"]
        waiting = {q["bucket"]: q["waiting"] for q in queues if q["waiting"]}
        console.print(f"  entered {progress['progress']['done']:,}/{n:,}; queued {waiting}")
    console.print(f"  all entered in {time.monotonic() - began:.0f} s")
    await _all_booked(stack, spec.id, n)  # every send in the ledger: the queues hold it all
    entered = time.time()
    queues = {q["bucket"]: q for q in (await api.get("/v1/pace")).json()["queues"]}
    predicted = {
        "email": queues["email"]["drain_seconds"],
        "sms": max(queues[f"sms:{x}"]["drain_seconds"] for x in NUMBERS),
    }
    console.print(f"  all booked; predicted drain {predicted}")
    rows = await _wait_for_sends(stack, spec.id, n, console)
    arrivals = await _arrivals(api, mailbox)
    door = await _provider_side(api) | {"throttled": mailbox.throttled}
    return booking + _figures(rows, n, predicted, entered, arrivals, door)


async def _all_booked(stack: Stack, journey_id: str, n: int) -> None:
    async with stack.stores.ledger._sessions() as session:  # (a bench reads the table)
        ours = DeliveryRow.journey_id == journey_id
        while (await session.exec(select(func.count()).where(ours))).one() < n:
            await asyncio.sleep(0.5)


async def _wait_for_sends(
    stack: Stack, journey_id: str, n: int, console: Console
) -> list[DeliveryRow]:
    ours = DeliveryRow.journey_id == journey_id
    settled = col(DeliveryRow.status).in_(("sent", "failed", "suppressed"))
    async with stack.stores.ledger._sessions() as session:  # (a bench reads the table)
        while True:  # a count, not the rows: the sandboxes share this process's loop
            done = (await session.exec(select(func.count()).where(ours, settled))).one()
            if done >= n:
                return list((await session.exec(select(DeliveryRow).where(ours))).all())
            console.print(f"  settled {done:,}/{n:,}")
            await asyncio.sleep(10)


async def _arrivals(api: Any, mailbox: Mailbox) -> dict[str, list[float]]:
    """When each send reached its provider (epoch seconds, sorted), by sender: `email`,
    `sms:<number>` and `push` (the mailbox's and the sandboxes' clocks, not the ledger's)."""
    found: dict[str, list[float]] = {"email": sorted(m.at for m in mailbox.received)}
    for r in (await api.get("/sandbox/twilio/received")).json():
        found.setdefault(f"sms:{r['form']['From']}", []).append(_epoch(r["at"]))
    found["push"] = [_epoch(r["at"]) for r in (await api.get("/sandbox/fcm/received")).json()]
    return {sender: sorted(times) for sender, times in found.items()}


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


async def _provider_side(api: Any) -> dict[str, Any]:
    ceilings = (await api.get("/sandbox/ceilings")).json()
    twilio = Counter(r["form"]["To"] for r in (await api.get("/sandbox/twilio/received")).json())
    fcm = Counter(r["message"]["token"] for r in (await api.get("/sandbox/fcm/received")).json())
    return {
        "over": sum(ceilings["over"].values()),
        "queued": max(ceilings["longest_wait_seconds"].values(), default=0.0),
        "twice": sum(1 for c in (*twilio.values(), *fcm.values()) if c > 1),
    }


def _figures(
    rows: list[DeliveryRow],
    n: int,
    predicted: dict[str, float],
    entered: float,
    arrivals: dict[str, list[float]],
    provider: dict[str, Any],
) -> list[Row]:
    sent = [r for r in rows if r.status == "sent"]
    numbers = [arrivals.get(f"sms:{x}", []) for x in NUMBERS]
    pools = {"email": [arrivals["email"]], "sms": numbers}
    figures: list[Row] = []
    for channel, limit in (("email", EMAIL_RATE), ("sms", SMS_RATE)):
        times = sorted(t for sender in pools[channel] for t in sender)
        pool = limit * len(pools[channel])
        figures.append(
            (
                f"{channel}: steady sends/s at the provider vs its ceiling",
                steady(times),
                pool,
                ">= 0.95x",
            )
        )
        gaps = sorted(b - a for t in pools[channel] for a, b in itertools.pairwise(t))
        if gaps:  # how much earlier than its slot spacing a send reached the provider
            figures.append(
                (
                    f"{channel}: shortest gap between sends of one sender (1st pct, s)",
                    gaps[len(gaps) // 100],
                    1 / limit,
                    ">= 1.0x",
                )
            )
        sliding = max(most_in_a_second(t) for t in pools[channel])
        clock = max(most_in_a_clock_second(t) for t in pools[channel])
        per = "a number's" if channel == "sms" else "the account's"
        figures.append((f"{channel}: most in any 1 s vs {per} ceiling", sliding, limit, "<= 1.0x"))
        figures.append(
            (f"{channel}: most in one clock second vs {per} ceiling", clock, limit, "<= 1.0x")
        )
        taken = times[-1] - entered if times else 0.0
        figures.append(
            (f"{channel}: drain taken vs predicted (s)", taken, predicted[channel], "~1.0x")
        )
    figures += [
        (
            "push: steady sends/s (the machine's; FCM's ceiling 10,000/s)",
            steady(arrivals["push"]),
            PUSH_RATE,
            "-",
        ),
        ("emails SES-throttled (454; a 1 s burst, as SES allows)", provider["throttled"], 0, "0"),
        ("requests over FCM's quota (429) or queued at Twilio > 1 s", provider["over"], 0, "0"),
        ("longest wait in a Twilio number's queue (s)", provider["queued"], 1 / SMS_RATE, "< 1.0x"),
        ("lost (customers with no send)", n - len({r.customer_id for r in sent}), 0, "0"),
        ("sent twice at the provider (SMS, push)", provider["twice"], 0, "0"),
    ]
    return figures
