"""`journeys up` as a new user runs it: it makes an admin key and prints it, the CLI finds
it, anonymous callers are refused, and history holds no email, phone or name (payloads are
encrypted with a key kept in the data folder, and activities return only what workflows
need), while the embedded UI still decrypts them through the codec endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.conftest import free_port, repo_root, unique

EMAIL, PHONE, NAME = "ana.secret@example.com", "+15557654321", "Anastasia"


@dataclass
class Up:
    api: str
    temporal: str
    data: Path
    banner: list[str]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data = tmp_path_factory.mktemp("up")
    ports = [free_port() for _ in range(5)]
    out = data / "up.log"
    with out.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "journeys.cli.main", "up", "--data-dir", str(data),
             "--api-port", str(ports[0]), "--temporal-port", str(ports[1]),
             "--ui-port", str(ports[2]), "--smtp-port", str(ports[3]),
             "--metrics-port", str(ports[4])],
            cwd=repo_root(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200", "OTEL_TRACES_EXPORTER": "none"},
        )  # fmt: skip
    api = f"http://127.0.0.1:{ports[0]}"
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything" not in out.read_text():
            assert process.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.25)
        yield Up(api, f"127.0.0.1:{ports[1]}", data, out.read_text().splitlines())
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def tiered(*, send: bool) -> dict[str, Any]:
    """A journey that branches on `profile.attributes.tier`, marks gold customers, and (with
    `send`) emails them by first name: every way a profile could reach history."""
    end = "mail" if send else "end"
    steps: list[dict[str, Any]] = [
        {"id": "tier", "type": "branch", "default": end,
         "cases": [{"when": {"field": "profile.attributes.tier", "op": "eq", "value": "gold"},
                    "next": "mark"}]},
        {"id": "mark", "type": "update_profile", "attributes": {"vip": True}, "next": end},
        {"id": "end", "type": "exit"},
    ]  # fmt: skip
    if send:  # transactional: no quiet hours, so the test runs at any hour
        content = {"subject": "Hi {{ profile.attributes.first_name }}", "body": "Hello"}
        steps.insert(2, {"id": "mail", "type": "send", "channel": "email", "next": "end",
                         "topic": "transactional", "content": content})  # fmt: skip
    return {"id": unique("pii"), "name": "pii check", "entry": {"event": unique("go")},
            "steps": steps}  # fmt: skip


def test_up_prints_the_admin_key_that_the_cli_finds(up: Up) -> None:
    key = (up.data / "api-key").read_text().strip()
    assert oct((up.data / "api-key").stat().st_mode & 0o777) == "0o600"
    [line] = [line for line in up.banner if "API key" in line]
    assert key in line and key.startswith("jk_")
    anonymous = httpx.get(f"{up.api}/v1/journeys")
    assert anonymous.status_code == 401
    keyed = httpx.get(f"{up.api}/v1/journeys", headers={"Authorization": f"Bearer {key}"})
    assert {j["id"] for j in keyed.json()["items"]} >= {"onboarding-nudge", "cart-abandonment"}
    # The CLI finds up's address and key in the data folder: no flags, no variables.
    plain = {
        k: v for k, v in os.environ.items() if k not in ("JOURNEYS_API_URL", "JOURNEYS_API_KEY")
    }
    listed = subprocess.run(
        [sys.executable, "-m", "journeys.cli.main", "funnel", "onboarding-nudge", "--json"],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env={**plain, "JOURNEYS_DATA_DIR": str(up.data)},
        timeout=60,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert json.loads(listed.stdout)["name"] == "Onboarding nudge"
    assert (up.data / "api-url").read_text().strip() == up.api


def test_up_checks_every_port_before_it_starts_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "journeys.cli.main", "up", "--data-dir", str(tmp_path / "data"),
             "--api-port", str(free_port()), "--temporal-port", str(free_port()),
             "--ui-port", str(free_port()), "--smtp-port", str(free_port()),
             "--metrics-port", str(port)],
            capture_output=True, text=True, cwd=repo_root(), timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"port {port} (metrics) is already in use: stop the other process or pick another "
        "port (see `journeys up --help`)."
    )
    assert not (tmp_path / "data").exists()  # nothing was made or started


async def test_history_under_the_embedded_defaults_holds_no_pii(up: Up) -> None:
    key = (up.data / "api-key").read_text().strip()
    cid = unique("pii")
    journey = tiered(send=True)
    async with httpx.AsyncClient(
        base_url=up.api, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as api:
        profile = {"email": EMAIL, "phone": PHONE, "attributes": {"first_name": NAME,
                   "tier": "gold"}}  # fmt: skip
        assert (await api.put(f"/v1/customers/{cid}", json=profile)).status_code == 200
        assert (await api.post("/v1/journeys", json=journey)).status_code == 201
        entered = await api.post(
            "/v1/events",
            json={"customer_id": cid, "name": journey["entry"]["event"],
                  "properties": {"note": NAME}},
        )  # fmt: skip
        assert entered.status_code == 202
        state: dict[str, Any] = {}
        for _ in range(200):
            state = (await api.get(f"/v1/journeys/{journey['id']}/enrollments/{cid}")).json()
            if state.get("status") == "completed":
                break
            await asyncio.sleep(0.1)
        assert state["status"] == "completed", state
        [sent] = (await api.get(f"/v1/customers/{cid}/deliveries")).json()["items"]
        assert sent["status"] == "sent" and sent["content"]["subject"] == f"Hi {NAME}"

    # What the Temporal server holds, read without the key.
    plain = await Client.connect(up.temporal)
    handle = plain.get_workflow_handle(f"journey/{journey['id']}/{cid}")
    history = (await handle.fetch_history()).to_json()
    for secret in (EMAIL, PHONE, NAME, "tier", "gold"):
        assert secret not in history
    encodings = {
        p["metadata"]["encoding"]
        for event in json.loads(history)["events"]
        for attrs in event.values()
        if isinstance(attrs, dict)
        for p in attrs.get("input", {}).get("payloads", [])
    }
    assert encodings == {"YmluYXJ5L2VuY3J5cHRlZA=="}  # base64 of binary/encrypted

    # `journeys replay` finds the key in the data folder, as the CLI finds the API key.
    replayed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "journeys.cli.main", "replay"]
        + ["--query", f'JourneyId = "{journey["id"]}"'],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env={**os.environ, "JOURNEYS_DATA_DIR": str(up.data),
             "JOURNEYS_TEMPORAL_ADDRESS": up.temporal},
        timeout=120,
    )  # fmt: skip
    assert replayed.returncode == 0 and "1 of 1 replay" in replayed.stdout, replayed.stdout

    # The embedded UI (no login) decrypts through the codec endpoint without a key.
    started = json.loads(history)["events"][0]["workflowExecutionStartedEventAttributes"]
    async with httpx.AsyncClient() as ui:
        decoded = await ui.post(
            f"{up.api}/codec/decode", json={"payloads": started["input"]["payloads"]}
        )
    assert decoded.status_code == 200
    assert NAME.encode() in base64.b64decode(decoded.json()["payloads"][0]["data"])


async def test_activities_put_only_what_workflows_need_into_history(
    api: httpx.AsyncClient, client: Client, stack: Any
) -> None:
    """On the plain-payload stack: the profile lookup returns the fields the branch reads,
    and the profile update returns nothing, so no address or name is in history."""
    if stack.settings.payload_key is not None:
        pytest.skip("this stack encrypts its payloads")
    cid = unique("lean")
    profile = {"email": EMAIL, "phone": PHONE, "attributes": {"first_name": NAME, "tier": "gold"}}
    assert (await api.put(f"/v1/customers/{cid}", json=profile)).status_code == 200
    spec = tiered(send=False)
    assert (await api.post("/v1/journeys", json=spec)).status_code == 201
    entry = spec["entry"]["event"]
    assert (await api.post("/v1/events", json={"customer_id": cid, "name": entry})).is_success
    handle = client.get_workflow_handle(f"journey/{spec['id']}/{cid}")
    await handle.result()
    history = json.loads((await handle.fetch_history()).to_json())
    results = [
        e["activityTaskCompletedEventAttributes"].get("result", {}).get("payloads", [])
        for e in history["events"]
        if "activityTaskCompletedEventAttributes" in e
    ]
    decoded = [json.loads(base64.b64decode(p["data"])) for r in results for p in r if "data" in p]
    assert {"attributes": {"tier": "gold"}} in decoded
    text = json.dumps(history)
    for secret in (EMAIL, PHONE, NAME):
        assert secret not in text
