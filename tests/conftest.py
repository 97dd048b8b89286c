"""Shared servers for the whole session: one Temporal dev server, one SMTP server, and one
stack (worker + API) per database (SQLite and PostgreSQL). Tests stay independent through
unique journey and customer ids, never by restarting servers."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import pytest_asyncio
from hypothesis import settings as hypothesis_settings
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from journeys.runtime.codec import new_key
from journeys.runtime.telemetry import install_tracing
from journeys.schemas.pace import UNPACED
from journeys.schemas.settings import Settings
from journeys.services.email_sandbox import SesSandbox, hook
from journeys.services.mailbox import Mailbox, start_smtp
from journeys.stack.embedded import Stack, free_port, running_stack, wait_for_temporal
from journeys.testkit.kit import temporal_server

# The same examples on every run, so CI gives one answer for one commit (a property that
# fails does so every time); JOURNEYS_HYPOTHESIS=explore draws new ones for a long hunt.
hypothesis_settings.register_profile("ci", derandomize=True)
hypothesis_settings.register_profile("explore", max_examples=2000)
hypothesis_settings.load_profile(os.environ.get("JOURNEYS_HYPOTHESIS", "ci"))

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "both_databases: run on the PostgreSQL stack too (where the database is the point: "
        "storage, races, pagination, migrations); other stack tests run on SQLite only",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test runs on the PostgreSQL stack (with encrypted payloads) only when marked
    `both_databases`: the interpreter and the API behave the same on both, and the kit's
    tests and the storage tests cover each database's own code."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        postgres = callspec is not None and callspec.params.get("settings") == "postgres"
        both = item.get_closest_marker("both_databases") is not None
        (dropped if postgres and not both else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """One dev server for the session: the testing kit's (time skipping, timers that fire
    on time: by default the server batches timer tasks within a 1 s shift, so a 1,000-step
    journey took 1,000 s; now ~30 ms a timer; a re-entry at once), with an early
    continue-as-new suggestion (every ~50 events) so long journeys exercise it."""
    with temporal_server(
        "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=50"
    ) as address:
        yield address


@pytest.fixture(scope="session")
def journeys_temporal(temporal_address: str) -> str:
    """The testing kit's server (`testkit.plugin`) is the session's one dev server."""
    return temporal_address


@pytest_asyncio.fixture(scope="session")
async def temporal_client(temporal_address: str) -> Client:
    """A plain client of the session's dev server, for tests without a stack."""
    settings = Settings(temporal_address=temporal_address, metrics_address=None)
    return await wait_for_temporal(settings, timeout=60)


@pytest.fixture(scope="session")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = start_smtp(box, port=port)
    yield box, port
    controller.stop()


def _postgres_schema() -> Iterator[str]:
    schema = f"journeys_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield schema
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


class Receiver(ThreadingHTTPServer):
    """A brand's own endpoint on this machine (for `action` steps): POST /offers answers
    an offer, /unavailable 503, anything else 404. It is on loopback, so the stacks allow
    it by prefix."""

    url: str


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        found = self.path == "/offers"
        body = json.dumps({"offers": [{"name": "called"}]} if found else {"error": "nope"})
        self.send_response(200 if found else 503 if self.path == "/unavailable" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", free_port()), _Answer)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span the test process records (its API, worker and provider sandboxes)."""
    exporter = InMemorySpanExporter()
    install_tracing(Settings(), processor=SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def metrics_address() -> str:
    """Where the test process serves Prometheus metrics (one SDK runtime for both stacks)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def settings(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    temporal_address: str,
    mailbox: tuple[Mailbox, int],
    spans: InMemorySpanExporter,
    metrics_address: str,
    receiver: Receiver,
) -> Iterator[Settings]:
    """Settings of one stack; every test that uses it runs on SQLite and on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    api_port = free_port()
    common: dict[str, Any] = dict(
        data_dir=data_dir,
        generate_secrets=True,
        sandbox=True,
        temporal_address=temporal_address,
        task_queue=f"journeys-{request.param}-{uuid.uuid4().hex[:6]}",
        api_port=api_port,
        public_url=f"http://127.0.0.1:{api_port}",
        smtp_port=mailbox[1],
        workflow_sandbox="strict",  # police workflows/ on every run (production: off)
        # Global guardrails off for the shared stack, so tests run at any time of day and
        # stay independent; guardrail tests set journey-level ones or run their own worker.
        quiet_hours=None,
        frequency_caps=[],
        arbitration_seconds=0,
        metrics_address=metrics_address,
        egress_allow=[f"{receiver.url}/"],
        # One address (127.0.0.1) makes every test's calls, the scope checks' 401s among
        # them: the per-address limits are tested on apps of their own.
        auth_failure_burst=1_000_000,
        anonymous_rate_limit_burst=1_000_000,
        # Emails go "through SES": the mailbox answers each with SES's notifications.
        email_provider="ses",
        ses_configuration_set=f"journeys-{request.param}",
        bandit_refresh_seconds=0,  # a bandit's weights from the latest counts, every time
        # Providers unpaced on the shared stack: the pace tests use buckets of their own.
        **UNPACED,
    )
    if request.param == "sqlite":
        yield _hearing(Settings(**common), mailbox[0])
    else:
        schemas = _postgres_schema()
        schema = next(schemas)
        # The PostgreSQL stack also encrypts its payloads, so every test runs both ways.
        yield _hearing(
            Settings(
                **common,
                database_url=POSTGRES_URL,
                database_schema=schema,
                payload_key=new_key(),
                payload_key_id="test",
            ),
            mailbox[0],
        )
        next(schemas, None)


def _hearing(settings: Settings, mailbox: Mailbox) -> Settings:
    """The settings, with the shared mailbox telling their stack what SES would say about
    each email naming its configuration set."""
    mailbox.listeners.append(hook(SesSandbox(settings)))
    return settings


API_KEYS: dict[str, str] = {}
"""The admin key of each stack's API, by its base URL (the CLI helper passes it on)."""
WRITE_KEYS: dict[int, str] = {}
"""An `events:write` key of each stack, by its API port."""


@pytest_asyncio.fixture(scope="session")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(settings) as running:
        admin = await running.stores.keys.create("tests", ["admin"])
        API_KEYS[f"http://{settings.api_host}:{settings.api_port}"] = admin.token
        segment = await running.stores.keys.create("segment", ["events:write"])
        WRITE_KEYS[settings.api_port] = segment.token
        yield running


@pytest.fixture(scope="session")
def admin_key(stack: Stack) -> str:
    """A key with every scope, made in the stack's own database."""
    s = stack.settings
    return API_KEYS[f"http://{s.api_host}:{s.api_port}"]


def write_key(stack: Stack) -> str:
    """An `events:write` key of this stack: what a Segment library sends as write key."""
    return WRITE_KEYS[stack.settings.api_port]


@pytest_asyncio.fixture(scope="session")
async def api(stack: Stack, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The stack's API as an admin calls it."""
    s = stack.settings
    async with httpx.AsyncClient(
        base_url=f"http://{s.api_host}:{s.api_port}",
        timeout=30,
        headers={"Authorization": f"Bearer {admin_key}"},
    ) as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The stack's API as anyone on the network calls it: no key."""
    s = stack.settings
    async with httpx.AsyncClient(
        base_url=f"http://{s.api_host}:{s.api_port}", timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def skipper(stack: Stack) -> TimeSkipper:
    """A client whose workflows run in virtual time: their clocks stand still unless a test
    moves one with `fast_forward`."""
    return TimeSkipper(stack.client, config=TimeSkippingConfig(enabled=False))


@pytest.fixture
def client(stack: Stack) -> Client:
    return stack.client


def own_settings(settings: Settings, data_dir: Path, **changes: Any) -> Settings:
    """`settings` for a stack of a test's own (its data, API port and task queue), beside
    the shared one on the same dev server; `changes` to the rest."""
    port = free_port()
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "api_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "task_queue": unique("own"),
            **changes,
        }
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until `check` holds on its result; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
