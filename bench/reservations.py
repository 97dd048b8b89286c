"""Reservation throughput and latency under 50 concurrent senders, beside a bare insert
into the same ledger table, on SQLite and PostgreSQL (issue 4).

Each reservation is the whole guardrail decision in one transaction (customer lock, key
lookup, profile, consent, channel, quiet hours, cap counts, insert); the bare insert is one
ledger row in one transaction. Senders spread over customers with a cap of 3 per week, so
most customers are contended; afterwards every customer is checked for cap violations.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.stack import Row
from journeys.schemas.delivery import SendRequest
from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import FrequencyCap
from journeys.schemas.journey import MessageContent
from journeys.schemas.send_decision import Rules
from journeys.storage.stores import Stores
from journeys.storage.tables import DeliveryRow

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CAP = FrequencyCap(limit=3, window=timedelta(days=7))


def _request(customer: str, i: int, at: datetime) -> SendRequest:
    return SendRequest(
        idempotency_key=f"bench/{customer}/{i}",
        journey_id=f"j{i % 20}",
        version=1,
        step_id="send",
        customer_id=customer,
        channel="in_app",
        content=MessageContent(body="x"),
        event=CustomerEvent.create(customer, "go", timestamp=at, message_id=str(i)),
        priority=i % 20,
        at=at,
    )


async def _run(n: int, concurrency: int, one: object) -> tuple[float, list[float]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    latencies: list[float] = []

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await one(i)  # type: ignore[operator]
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return n / (time.perf_counter() - started), latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_one(name: str, url: str, schema: str | None, n: int, c: int) -> list[Row]:
    stores = await Stores.open(url, channels=["in_app"], schema=schema)
    try:
        ledger, sessions = stores.ledger, stores.ledger._sessions
        tag = uuid.uuid4().hex[:6]
        now = datetime.now(UTC)
        customers = [f"{tag}-c{k}" for k in range(max(1, n // 6))]  # ~6 sends per customer

        async def bare(i: int) -> None:
            async with sessions() as session:
                session.add(
                    DeliveryRow(
                        idempotency_key=f"bare/{tag}/{i}",
                        customer_id=customers[i % len(customers)],
                        journey_id="j",
                        version=1,
                        step_id="send",
                        channel="in_app",
                        status="pending",
                        reserved_at=now,
                    )
                )
                await session.commit()

        rules = Rules(caps=[CAP])

        async def reserve(i: int) -> None:
            await ledger.reserve(_request(customers[i % len(customers)], i, now), rules)

        await _run(50, 10, reserve)  # warm up connections and caches
        bare_rate, bare_ms = await _run(n, c, bare)
        rate, ms = await _run(n, c, reserve)
        granted: Counter[str] = Counter()
        for customer in customers:
            rows = await ledger.for_customer(customer)
            granted[customer] = sum(
                1 for r in rows if r.status == "pending" and r.idempotency_key.startswith("bench/")
            )
        violations = sum(1 for v in granted.values() if v > CAP.limit)
        return [
            (f"{name}: throughput (/s)", rate, bare_rate, ">= 0.5x"),
            (f"{name}: p50 latency (ms)", statistics.median(ms), statistics.median(bare_ms), "-"),
            (f"{name}: p99 latency (ms)", _pct(ms, 0.99), _pct(bare_ms, 0.99), "-"),
            (f"{name}: cap violations", float(violations), 0.0, "= 0"),
        ]
    finally:
        await stores.close()


async def measure(n: int, concurrency: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        rows += await measure_one("SQLite", url, None, n, concurrency)
    schema = f"journeys_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            rows += await measure_one("PostgreSQL", POSTGRES, schema, n, concurrency)
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return rows
