"""The chaos run: N customers through a journey that sends on three channels (email over
SMTP, a signed webhook, in-app), while the worker is killed with SIGKILL again and again,
the API is killed once and Temporal is restarted once. It then counts what arrived at each
receiver (the SMTP server, the webhook endpoint, the inbox) and in the ledger, and prints
lost, duplicated and stuck. Exit status 1 when anything was lost or stuck, or the ledger
holds a duplicate (copies at a receiver are reported: see the README's per-channel table).

    ./dev chaos                       1,000 customers on SQLite
    ./dev chaos --db postgres -n 1000 the same on PostgreSQL (127.0.0.1:5432, database test)
    ./dev chaos --small               the bounded version CI runs (tests/test_chaos.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from journeys.schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep
from journeys.schemas.settings import Settings
from journeys.services.mailbox import Mailbox, start_smtp
from journeys.stack.embedded import dev_server_command, free_port, spawn
from journeys.storage.stores import Stores

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
API = ("journeys.cli.main", "api")
CHANNELS = ["email", "webhook", "in_app"]
STEPS = ("mail", "hook", "inbox")


@dataclass
class Plan:
    customers: int
    worker_kills: int
    db: str
    timeout: float = 900.0
    provider_delay: float = 0.0
    """Seconds the webhook endpoint takes to answer after taking a message: a kill in that
    window leaves a message delivered but not settled, so it goes again."""


@dataclass
class Report:
    customers: int
    completed: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    ledger_duplicates: int = 0
    receiver_copies: dict[str, int] = field(default_factory=dict)
    stuck: int = 0
    chaos: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.lost.values()) and not self.ledger_duplicates and not self.stuck

    def lines(self) -> list[str]:
        return [
            f"customers {self.customers}, completed {self.completed} in {self.seconds:.0f} s",
            "chaos: " + ", ".join(self.chaos),
            "lost (no message at the receiver): "
            + ", ".join(f"{k} {v}" for k, v in self.lost.items()),
            f"duplicates in the ledger: {self.ledger_duplicates}",
            "copies at a receiver (customers who got a message twice or more): "
            + ", ".join(f"{k} {v}" for k, v in self.receiver_copies.items()),
            f"stuck (not completed): {self.stuck}",
        ]


class Hooks(ThreadingHTTPServer):
    """The brand's webhook endpoint: records the customer of every POST, then answers."""

    customers: list[str]
    delay: float


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        customer = json.loads(body).get("customer_id", "")
        self.server.customers.append(customer)  # type: ignore[attr-defined]
        time.sleep(self.server.delay)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def journey(hook_url: str) -> JourneySpec:
    return JourneySpec(
        id="chaos",
        name="Three channels",
        entry=Entry(event="chaos.go"),
        steps=[
            SendStep(
                id="mail",
                channel="email",
                topic="transactional",
                content=MessageContent(subject="Hello", body="Hello"),
                next="hook",
            ),
            SendStep(
                id="hook",
                channel="webhook",
                topic="transactional",
                content=MessageContent(body="hello", url=hook_url),
                next="inbox",
            ),
            SendStep(
                id="inbox",
                channel="in_app",
                topic="transactional",
                content=MessageContent(body="hello"),
                next="end",
            ),
            ExitStep(id="end"),
        ],
    )


async def run(plan: Plan, say: Any = print) -> Report:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        port, api_port = free_port(), free_port()
        mailbox = Mailbox()
        smtp = start_smtp(mailbox, port=free_port())
        hooks = Hooks(("127.0.0.1", free_port()), _Hook)
        hooks.customers, hooks.delay = [], plan.provider_delay
        threading.Thread(target=hooks.serve_forever, daemon=True).start()
        hook_url = hooks_url(hooks)
        schema = f"chaos_{uuid.uuid4().hex[:8]}" if plan.db == "postgres" else None
        settings = Settings(
            data_dir=data,
            generate_secrets=True,
            sandbox=True,
            temporal_address=f"127.0.0.1:{port}",
            api_port=api_port,
            public_url=f"http://127.0.0.1:{api_port}",
            smtp_port=smtp.port,
            task_queue="chaos",
            database_url=POSTGRES if schema else None,
            database_schema=schema,
            egress_allow=[hook_url],
            frequency_caps=[],
            quiet_hours=None,
            rate_limit_per_second=0,
            read_rate_limit_per_second=0,
            anonymous_rate_limit_per_second=0,
            tracing=False,
            metrics_address=None,
        )
        if schema:
            await _create_schema(schema)
        temporal_cmd = dev_server_command(port=port, ui_port=None, db_file=data / "temporal.db")
        processes: dict[str, subprocess.Popen[bytes]] = {}
        stores = await Stores.open(settings.db_url(), channels=CHANNELS, schema=schema)
        try:
            processes["temporal"] = _start(temporal_cmd)
            processes["api"] = spawn(settings, *API)
            api = await _api(settings, stores)
            processes["worker"] = spawn(settings)
            try:
                return await _drive(
                    plan, settings, stores, api, processes, temporal_cmd, mailbox, hooks, say
                )
            finally:
                await api.aclose()
        finally:
            for process in processes.values():
                process.kill()
                process.wait()
            await stores.engine.dispose()
            smtp.stop()
            hooks.shutdown()


async def _drive(
    plan: Plan,
    settings: Settings,
    stores: Stores,
    api: httpx.AsyncClient,
    processes: dict[str, subprocess.Popen[bytes]],
    temporal_cmd: list[str],
    mailbox: Mailbox,
    hooks: Hooks,
    say: Any,
) -> Report:
    report = Report(customers=plan.customers)
    started = time.monotonic()
    spec = journey(hooks_url(hooks))
    await _retry(lambda: api.post("/v1/journeys", json=spec.model_dump(mode="json")), 201)
    tag = uuid.uuid4().hex[:6]
    ids = [f"chaos-{tag}-{i:05d}" for i in range(plan.customers)]
    sending = asyncio.create_task(_send_all(api, ids))

    async def chaos() -> None:
        steps = ["worker"] * plan.worker_kills
        steps.insert(len(steps) // 3, "api")
        steps.insert(2 * len(steps) // 3, "temporal")
        for what in steps:
            await asyncio.sleep(3)  # a restarted worker gets to work before the next kill
            if what == "temporal":
                processes["temporal"].terminate()
                processes["temporal"].wait()
                processes["temporal"] = _start(temporal_cmd)
                report.chaos.append("temporal restarted")
            else:
                processes[what].send_signal(signal.SIGKILL)
                processes[what].wait()
                processes[what] = spawn(settings, *(API if what == "api" else ()))
                report.chaos.append(f"{what} killed")
            say(f"  {report.chaos[-1]}")

    await asyncio.gather(sending, chaos())
    expected = len(ids) * len(STEPS)
    deadline = time.monotonic() + plan.timeout
    while (done := await _settled(stores, spec.id)) < expected and time.monotonic() < deadline:
        say(f"  {done} of {expected} messages settled")
        await asyncio.sleep(3)
    sent: Counter[tuple[str, str]] = Counter()
    inbox: Counter[str] = Counter()
    for cid in ids:  # once, at the end: per customer, to find a duplicate or a gap
        rows = await stores.ledger.for_customer(cid)
        sent.update((cid, d.step_id) for d in rows if d.status == "sent")
        inbox[cid] = len(await stores.inbox.for_customer(cid))
    report.completed = sum(all(sent[(c, s)] for s in STEPS) for c in ids)
    report.stuck = plan.customers - report.completed
    report.ledger_duplicates = sum(n - 1 for n in sent.values() if n > 1)
    mails = Counter(r for m in mailbox.received for r in m.recipients)
    got = {
        "email": Counter({c: mails[_email(c)] for c in ids}),
        "webhook": Counter(hooks.customers),
        "in_app": inbox,
    }
    report.lost = {k: sum(1 for c in ids if v[c] == 0) for k, v in got.items()}
    report.receiver_copies = {k: sum(1 for c in ids if v[c] > 1) for k, v in got.items()}
    report.seconds = time.monotonic() - started
    return report


def hooks_url(hooks: Hooks) -> str:
    return f"http://127.0.0.1:{hooks.server_address[1]}/hook"


def _email(customer_id: str) -> str:
    return f"{customer_id}@chaos.example"


async def _send_all(api: httpx.AsyncClient, ids: list[str]) -> None:
    """Identify each customer and send their entry event, 50 to a Segment batch, each
    batch retried with the same message ids until the API takes it."""
    for start in range(0, len(ids), 50):
        batch = []
        for cid in ids[start : start + 50]:
            batch.append(
                {
                    "type": "identify",
                    "userId": cid,
                    "messageId": f"{cid}-id",
                    "traits": {"email": _email(cid)},
                }
            )
            batch.append(
                {"type": "track", "userId": cid, "event": "chaos.go", "messageId": f"{cid}-go"}
            )
        await _retry(lambda b=batch: api.post("/v1/batch", json={"batch": b}), 200)
        await asyncio.sleep(0.05)


async def _retry(call: Any, status: int, attempts: int = 120) -> httpx.Response:
    for _ in range(attempts):
        try:
            response: httpx.Response = await call()
            if response.status_code == status:
                return response
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the API did not answer {status} after {attempts} attempts")


async def _settled(stores: Stores, journey_id: str) -> int:
    """Messages sent so far: one GROUP BY over the ledger."""
    counts = await stores.ledger.step_counts(journey_id, 1)
    return sum(n for _, status, _, n in counts if status == "sent")


async def _api(settings: Settings, stores: Stores) -> httpx.AsyncClient:
    key = await stores.keys.create("chaos", ["admin"])
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.api_port}",
        timeout=60,
        headers={"Authorization": f"Bearer {key.token}"},
    )
    await _retry(lambda: client.get("/healthz"), 200)
    return client


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


async def _create_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="./dev chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", "--customers", type=int, default=1000)
    parser.add_argument("--worker-kills", type=int, default=8)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--provider-delay",
        type=float,
        default=0.0,
        help="seconds the webhook endpoint takes to answer (kills then land mid-call)",
    )
    parser.add_argument("--small", action="store_true", help="60 customers, 3 worker kills")
    args = parser.parse_args()
    plan = Plan(args.customers, args.worker_kills, args.db, provider_delay=args.provider_delay)
    if args.small:
        plan = Plan(60, 3, args.db)
    print(
        f"chaos run: {plan.customers} customers on {plan.db}, provider delay "
        f"{plan.provider_delay} s, {os.cpu_count()} cores"
    )
    report = asyncio.run(run(plan))
    for line in report.lines():
        print(line)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
