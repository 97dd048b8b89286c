"""Processes as an operator runs them: what a worker or the API cannot reach at start is
one line and exit status 1; the API's readiness answers for the database and Temporal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from journeys.stack.embedded import PROJECT, Stack
from tests.conftest import free_port


def run_cli(stack: Stack, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = stack.settings.model_copy(update={"tracing": False, "metrics_address": None})
    return subprocess.run(
        [sys.executable, "-m", "journeys.cli.main", command],
        env={**os.environ, **settings.as_environment(), **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_temporal_is_one_line(stack: Stack) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = run_cli(
        stack,
        "worker",
        JOURNEYS_TEMPORAL_ADDRESS=address,
        JOURNEYS_TEMPORAL_CONNECT_SECONDS="1",
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"journeys: cannot reach Temporal at {address}")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_an_unreachable_database_is_one_line_without_its_password(stack: Stack) -> None:
    url = f"postgresql+psycopg://journeys:hunter2@127.0.0.1:{free_port()}/journeys"
    done = run_cli(stack, "api", JOURNEYS_DATABASE_URL=url)
    assert done.returncode == 1
    assert done.stderr.startswith("journeys: cannot open the database postgresql+psycopg://")
    assert "hunter2" not in done.stderr and "***" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_readiness_answers_for_the_database_and_temporal(
    anonymous: httpx.AsyncClient,
) -> None:
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "temporal": "ok"}


def test_missing_secrets_are_named_in_one_line_and_nothing_is_written(
    stack: Stack, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    done = run_cli(
        stack,
        "worker",
        JOURNEYS_GENERATE_SECRETS="false",
        JOURNEYS_DATA_DIR=str(data),
        JOURNEYS_UNSUBSCRIBE_SECRET="null",
        JOURNEYS_WEBHOOK_SECRET="null",
        JOURNEYS_TRACKING_SECRET="0" * 64,
        JOURNEYS_SERVICES_KEY="0" * 64,
        JOURNEYS_SANDBOX="false",
    )
    assert done.returncode == 1
    assert done.stderr.startswith(
        "journeys: missing secrets: JOURNEYS_UNSUBSCRIBE_SECRET, JOURNEYS_WEBHOOK_SECRET ("
    )
    assert len(done.stderr.strip().splitlines()) == 1
    assert not data.exists()  # no key was generated in its place
    # With the sandboxes on, they want the credentials the channels send (issue 34).
    sandboxed = run_cli(
        stack,
        "worker",
        JOURNEYS_GENERATE_SECRETS="false",
        JOURNEYS_DATA_DIR=str(data),
        JOURNEYS_SERVICES_KEY="0" * 64,
        JOURNEYS_UNSUBSCRIBE_SECRET="0" * 64,
        JOURNEYS_WEBHOOK_SECRET="0" * 64,
        JOURNEYS_TRACKING_SECRET="0" * 64,
        JOURNEYS_SANDBOX="true",
    )
    assert sandboxed.stderr.startswith(
        "journeys: missing secrets: JOURNEYS_FCM_ACCESS_TOKEN, JOURNEYS_TWILIO_AUTH_TOKEN ("
    ), sandboxed.stderr
