"""The deployment as an operator starts it, without Docker: the environment compose.yaml
gives its journeys services (with .env.example's secrets), and the one the self-hosted
Kubernetes overlay gives its pods (the ConfigMap, the container variables and the Secret
recipe), each run as uid 65534 from a read-only copy of the code with nothing else in the
environment: the migration, a key made as the operator would, the API and the worker; an
event goes through to an email. Only what a cluster resolves by name points here instead:
Temporal (for Kubernetes, behind a TLS frontend asking for the client certificate the
overlay mounts), PostgreSQL, the SMTP relay, and free ports on loopback."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from journeys.services.mailbox import Mailbox
from journeys.stack.embedded import PROJECT
from tests.conftest import POSTGRES_URL, eventually, free_port
from tests.helpers import one_send
from tests.test_deploy import (
    DEPLOY,
    ENV_EXAMPLE,
    SECRET_RECIPE,
    env_file,
    process_environments,
)
from tests.test_temporal_tls import make_pki, tls_frontend

NOBODY = 65534
SITE = next(
    p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "temporalio").is_dir()
)


def interpreter() -> str:
    """A CPython 3.11 that uid 65534 may run: this venv's links to one under /root (mode
    0700), so Debian's, with the venv's packages on PYTHONPATH (the image's venv, in effect)."""
    for candidate in (Path(sys.executable).resolve(), Path("/usr/bin/python3.11")):
        if all(os.stat(p).st_mode & 0o005 for p in (candidate, *candidate.parents)):
            return str(candidate)
    pytest.skip("no Python 3.11 that another user can run on this machine")


def as_nobody() -> dict[str, Any]:
    if os.getuid() != 0:
        pytest.skip("running as uid 65534 needs root")
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


@pytest.fixture
def readonly_copy() -> Iterator[Path]:
    """The packages the image holds, copied and made read-only, in a folder uid 65534 can
    read but not write; with their bytecode, as the image compiles it (`./dev` compiles
    it here), so no process compiles every module again on each start."""
    folder = Path(tempfile.mkdtemp(prefix="journeys-deploy-"))
    folder.chmod(0o755)
    code = folder / "app"
    packages = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["hatch"]
    code.mkdir()
    for package in packages["build"]["targets"]["wheel"]["packages"]:
        shutil.copytree(PROJECT / package, code / package)
    for path in [code, *code.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield code
    finally:
        for path in [code, *code.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(folder)


def image_environment() -> dict[str, str]:
    """The Dockerfile's ENV (its runtime stage), as the container starts with it."""
    text = (DEPLOY / "Dockerfile").read_text().split("FROM ${PYTHON_IMAGE}\n")[-1]
    block = re.search(r"^ENV (.*?)(?<!\\)$", text, re.M | re.S)
    assert block is not None
    pairs = dict(re.findall(r"(\w+)=(\S+)", block.group(1)))
    pairs["PATH"] = "/usr/bin:/bin"
    pairs["PYTHONPATH"] = str(SITE)  # the image's venv
    return pairs


def filled(recipe: dict[str, str]) -> dict[str, str]:
    """A recipe with each CHANGE-ME made a fresh key, as the operator does."""
    return {k: secrets.token_hex(32) if v == "CHANGE-ME" else v for k, v in recipe.items()}


def run(code: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [interpreter(), "-m", "journeys.cli.main", *args],
        env=env,
        cwd=code,
        **as_nobody(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(code: Path, env: dict[str, str], command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [interpreter(), "-m", "journeys.cli.main", command],
        env=env,
        cwd=code,
        **as_nobody(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def ready(url: str, process: subprocess.Popen[str]) -> None:
    async def probe() -> int:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited: {process.communicate()[1]}")
        try:
            async with httpx.AsyncClient(timeout=3) as http:
                return (await http.get(url)).status_code
        except httpx.TransportError:
            return 0

    await eventually(probe, lambda status: status == 200, timeout=60)


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return err


@pytest.mark.slow
@pytest.mark.parametrize("where", ["compose", "self-hosted"])
async def test_the_manifests_environment_runs_an_event_through_to_an_email(
    where: str,
    readonly_copy: Path,
    temporal_address: str,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, smtp_port = mailbox
    environments = process_environments()
    recipe = filled(env_file(ENV_EXAMPLE if where == "compose" else SECRET_RECIPE))
    schema = f"deploy_{uuid.uuid4().hex[:8]}"
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    health = f"127.0.0.1:{free_port()}"
    pki = readonly_copy.parent / "pki"
    pki.mkdir()
    make_pki(pki)
    for path in pki.iterdir():
        path.chmod(0o444)  # as the mounted Secret (fsGroup) lets the pod read it
    here = {  # what the cluster would resolve by name
        "JOURNEYS_DATABASE_URL": POSTGRES_URL,
        "JOURNEYS_DATABASE_SCHEMA": schema,
        "JOURNEYS_SMTP_HOST": "127.0.0.1",
        "JOURNEYS_SMTP_PORT": str(smtp_port),
        "JOURNEYS_SMTP_STARTTLS": "false",  # the test relay speaks no TLS, takes no login
        "JOURNEYS_SMTP_USERNAME": "null",
        "JOURNEYS_SMTP_PASSWORD": "null",
        "JOURNEYS_API_PORT": str(api_port),
        "JOURNEYS_SERVICES_URL": api_url,
        "JOURNEYS_PUBLIC_URL": api_url,
        "JOURNEYS_TASK_QUEUE": f"deploy-{uuid.uuid4().hex[:6]}",
        "OTEL_TRACES_EXPORTER": "none",  # no collector here
    }

    def env_of(part: str, tls_frontend_address: str | None) -> dict[str, str]:
        name = f"compose:{part}" if where == "compose" else f"self-hosted:{part}"
        env = {**image_environment(), **environments[name], **recipe, **here}
        env["JOURNEYS_METRICS_ADDRESS"] = f"127.0.0.1:{free_port()}"
        env["TEMPORAL_ADDRESS"] = tls_frontend_address or temporal_address
        for key, value in env.items():
            if key.startswith("TEMPORAL_TLS_") and value.startswith("/etc/temporal-tls/"):
                file = {"ca.crt": "ca.pem", "tls.crt": "client.pem", "tls.key": "client.key"}
                env[key] = str(pki / file[value.rsplit("/", 1)[1]])
        if env.get("TEMPORAL_TLS_SERVER_NAME"):
            env["TEMPORAL_TLS_SERVER_NAME"] = "localhost"  # the test certificate's name
        if part == "worker":
            env["JOURNEYS_WORKER_HEALTH_ADDRESS"] = health
        return env

    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        async with tls_frontend(pki, temporal_address) as frontend:
            address = frontend if where == "self-hosted" else None
            api_env, worker_env = env_of("api", address), env_of("worker", address)
            if where == "self-hosted":
                assert worker_env["TEMPORAL_TLS_CLIENT_CERT_PATH"].endswith("client.pem")
            migrated = run(readonly_copy, worker_env, "db", "upgrade")
            assert migrated.returncode == 0, migrated.stderr
            made = run(
                readonly_copy, api_env, "keys", "create", "--name", "ops", "--scope", "admin"
            )
            assert made.returncode == 0, made.stderr
            key = made.stdout.strip().splitlines()[-1]
            api = start(readonly_copy, api_env, "api")
            worker = start(readonly_copy, worker_env, "worker")
            try:
                await ready(f"{api_url}/readyz", api)
                await ready(f"http://{health}/readyz", worker)
                await an_event_becomes_an_email(api_url, key, box)
            finally:
                # Off the event loop: the TLS frontend on it forwards the worker's shutdown.
                errors = [await asyncio.to_thread(stop, process) for process in (api, worker)]
                print(*errors, sep="\n", file=sys.stderr)  # shown when the test fails
            assert not any("Traceback" in e for e in errors), errors
    finally:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    assert sorted(p.name for p in readonly_copy.iterdir()) == sorted(
        p.name for p in readonly_copy.iterdir() if (PROJECT / p.name).is_dir()
    )  # nothing written beside the code: no .journeys folder, no generated keys


async def an_event_becomes_an_email(api_url: str, key: str, box: Mailbox) -> None:
    # Transactional: the manifests keep the default quiet hours, and this runs at any hour.
    journey = one_send(
        f"deploy-{uuid.uuid4().hex[:6]}", channel="email", subject="Deployed", topic="transactional"
    )
    customer = f"deploy-{uuid.uuid4().hex[:8]}"
    address = f"{customer}@test.example"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http:
        published = await http.post("/v1/journeys", json=journey.model_dump(mode="json"))
        assert published.status_code == 201, published.text
        put = await http.put(f"/v1/customers/{customer}", json={"email": address})
        assert put.status_code == 200, put.text
        sent = await http.post("/v1/events", json={"customer_id": customer, "name": "go"})
        assert sent.status_code == 202, sent.text
    mails = await eventually(lambda: asyncio.sleep(0, box.to(address)), bool, timeout=60)
    assert [m.subject for m in mails] == ["Deployed"]
