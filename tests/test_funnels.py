"""Funnels after a scripted set of enrollments: counts per step and split arm over the API
and the CLI, and the diagram page drawn by Mermaid in a real headless Chromium."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from temporalio.client import Client

from journeys.schemas.journey import (
    Entry,
    EventCondition,
    JourneySpec,
    MessageContent,
    SendStep,
    SplitPath,
    SplitStep,
    WaitForEventStep,
)
from journeys.stack.embedded import Stack
from journeys.usecases.funnels import mermaid
from journeys.workflows.split import bucket, choose
from tests.conftest import eventually, unique
from tests.helpers import customer, event, get_json, journeys_ok, state, wait_then_end

pytestmark = pytest.mark.both_databases

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def spec() -> JourneySpec:
    content = MessageContent(subject="Hi", body="Hello")
    return JourneySpec(
        id=unique("funnel"),
        name="Funnel test",
        entry=Entry(event=unique("signed-up")),
        goal=EventCondition(event="purchased"),
        steps=[
            SplitStep(
                id="ab",
                paths=[
                    SplitPath(name="email", weight=1, next="mail"),
                    SplitPath(name="inbox", weight=1, next="nudge"),
                ],
            ),
            SendStep(id="mail", channel="email", content=content, next="wait"),
            SendStep(id="nudge", channel="in_app", content=content, next="wait"),
            *wait_then_end(),
        ],
    )


def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran, from headless Chromium."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def scripted(api: httpx.AsyncClient) -> tuple[JourneySpec, dict[str, Any]]:
    """Eight customers: three without an email address, two who buy, one exited by an
    operator, the rest still waiting. Returns the spec and the counts expected."""
    journey = spec()
    response = await api.post("/v1/journeys", json=journey.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    split = journey.steps[0]
    assert isinstance(split, SplitStep)
    customers = [await customer(api, **({"email": None} if i < 3 else {})) for i in range(8)]
    arm = {c: choose(split.paths, bucket(journey.id, "ab", c)).name for c in customers}
    for c in customers:
        await event(api, c, str(journey.entry.event))
    for c in customers:
        await eventually(lambda c=c: state(api, journey.id, c), lambda s: s["step"] == "wait")
    buyers, leaver = customers[3:5], customers[5]
    for c in buyers:
        await event(api, c, "purchased")
    url = f"/v1/journeys/{journey.id}/enrollments/{leaver}/exit"
    assert (await api.post(url, json={"reason": "test"})).status_code == 200
    mail = [c for c in customers if arm[c] == "email"]
    expected = {
        "entered": 8,
        "converted": 2,
        "exited": 1,
        "active": 5,
        "reached": {
            "ab": 8,
            "mail": len(mail),
            "nudge": 8 - len(mail),
            "wait": 8,
            "end": 0,
        },
        "here": {"wait": 5},
        "sent": {"mail": len([c for c in mail if c not in customers[:3]]), "nudge": 8 - len(mail)},
        "suppressed": {"mail": len([c for c in mail if c in customers[:3]]), "nudge": 0},
        "arms": {
            name: (
                len([c for c in customers if arm[c] == name]),
                len([c for c in buyers if arm[c] == name]),
            )
            for name in ("email", "inbox")
        },
    }
    return journey, expected


def observed(funnel: dict[str, Any]) -> dict[str, Any]:
    steps = {s["id"]: s for s in funnel["steps"]}
    return {
        "entered": funnel["entered"],
        "converted": funnel["converted"],
        "exited": funnel["exited"],
        "active": funnel["active"],
        "reached": {k: s["reached"] for k, s in steps.items()},
        "here": {k: s["here"] for k, s in steps.items() if s["here"]},
        "sent": {k: s["sent"] for k, s in steps.items() if s["type"] == "send"},
        "suppressed": {
            k: sum(s["suppressed"].values()) for k, s in steps.items() if s["type"] == "send"
        },
        "arms": {a["arm"]: (a["entered"], a["converted"]) for a in funnel["arms"]},
    }


async def test_funnel_counts_a_scripted_set_of_enrollments(api: httpx.AsyncClient) -> None:
    journey, expected = await scripted(api)
    url = f"/v1/journeys/{journey.id}/funnel"

    async def funnel() -> dict[str, Any]:
        response = await api.get(url)
        assert response.status_code == 200, response.text
        return response.json()

    # Visibility is eventually consistent: the counts settle within a second or so.
    found = await eventually(funnel, lambda f: observed(f) == expected)
    mail = next(s for s in found["steps"] if s["id"] == "mail")
    if expected["suppressed"]["mail"]:
        assert list(mail["suppressed"]) == ["no_address"]
    assert found["conversion"] == 0.25 and found["version"] == 1 and found["versions"] == [1]
    for arm in found["arms"]:
        entered, converted = expected["arms"][arm["arm"]]
        assert arm["conversion"] == (round(converted / entered, 4) if entered else None)
    assert f"reached {expected['reached']['mail']}" in found["mermaid"]
    assert (await api.get(url, params={"version": 2})).status_code == 404

    out = await journeys_ok("funnel", journey.id, "--api-url", str(api.base_url).rstrip("/"))
    assert "entered 8" in out and "converted 2" in out and "conversion 25.0%" in out
    entered, converted = expected["arms"]["email"]
    assert re.search(rf"│ ab\s+│ email\s+│\s+{entered}\s+│\s+{converted}\s+│", out), out


async def test_each_step_links_to_its_enrollments_and_the_goal_is_drawn(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    journey, expected = await scripted(api)
    url = f"/v1/journeys/{journey.id}/funnel"

    def settled(f: dict[str, Any]) -> bool:
        """Visibility has caught up with the script (the exit too, not only the buys)."""
        here = {s["id"]: s["here"] for s in f["steps"] if s["here"]}
        return f["converted"] == 2 and here == expected["here"]

    funnel = await eventually(lambda: get_json(api, url), settled)
    steps = {s["id"]: s for s in funnel["steps"]}
    assert {k: s["converted"] for k, s in steps.items()} == {
        "ab": 0, "mail": 0, "nudge": 0, "wait": 2, "end": 0
    }  # fmt: skip
    assert funnel["goal"] == "purchased"
    assert 'goal(["<b>goal</b><br/>purchased<br/>converted 2"])' in funnel["mermaid"]
    assert "-.->|2| goal" in funnel["mermaid"]
    ui = f"http://127.0.0.1:{stack.settings.temporal_ui_port}/namespaces/default/workflows?query="
    for link, field in (("ui_reached", "reached"), ("ui_here", "here")):
        for step in steps.values():
            assert step[link].startswith(ui)
            query = parse_qs(urlsplit(step[link]).query)["query"][0]
            # The list the link opens holds exactly the enrollments the count says.
            assert (await stack.client.count_workflows(query)).count == step[field], link
    everyone = parse_qs(urlsplit(funnel["ui_entered"]).query)["query"][0]
    assert (await stack.client.count_workflows(everyone)).count == 8


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (./dev installs it)")
async def test_funnel_page_draws_the_journey_with_live_counts(api: httpx.AsyncClient) -> None:
    journey, expected = await scripted(api)

    async def converted() -> int:
        return int((await api.get(f"/v1/journeys/{journey.id}/funnel")).json()["converted"])

    await eventually(converted, lambda n: n == 2)
    key = api.headers["authorization"].split()[1]
    page = f"{str(api.base_url).rstrip('/')}/journeys/{journey.id}/funnel#key={key}"
    dom = await asyncio.to_thread(dump_dom, page)
    assert 'data-ready="true"' in dom, dom[-3000:]
    assert "<svg" in dom and "flowchart" in dom
    for step in ("ab", "mail", "nudge", "wait", "end"):
        assert f"<b>{step}</b>" in dom
    assert f"reached {expected['reached']['nudge']}" in dom
    assert 'data-count="converted">converted <b>2</b>' in dom
    assert '<div id="error"></div>' in dom
    wait = re.search(r'<tr data-step="wait">(.*?)</tr>', dom)
    assert wait is not None, dom[-3000:]
    assert '<a href="http://127.0.0.1:' in wait.group(1) and "JourneyStep" in wait.group(1)
    assert wait.group(1).endswith("<td>2</td><td></td>")  # converted there; sends nothing
    mail = re.search(r'<tr data-step="mail">(.*?)</tr>', dom)
    assert mail is not None and " sent" in mail.group(1)  # the send step's messages
    # The split as an experiment: per arm, the interval and the verdict in words.
    experiment = re.search(r'<section data-experiment="ab">(.*?)</section>', dom)
    assert experiment is not None, dom[-3000:]
    assert "<h2>ab (split)</h2>" in experiment.group(1)
    assert '<tr data-arm="inbox">' in experiment.group(1)
    if all(expected["arms"][arm][0] for arm in ("email", "inbox")):  # (8 customers, by hash)
        assert " pts (" in experiment.group(1)
        assert 'class="verdict">inbox converts' in experiment.group(1)


async def test_enrollments_at_their_first_step_count_as_reaching_it(
    api: httpx.AsyncClient,
) -> None:
    """An enrollment that has not left its first step (or ended there) has no
    `JourneyReached` list yet: the funnel still counts it at that step."""
    journey = JourneySpec(
        id=unique("funnel-first"),
        name="First step",
        entry=Entry(event=unique("go")),
        steps=[
            *wait_then_end(),
        ],
    )
    assert (await api.post("/v1/journeys", json=journey.model_dump(mode="json"))).status_code == 201
    cids = [await customer(api) for _ in range(3)]
    for cid in cids:
        await event(api, cid, str(journey.entry.event))
    url = f"/v1/journeys/{journey.id}/enrollments/{cids[0]}/exit"
    assert (await api.post(url, json={"reason": "test"})).status_code == 200

    async def funnel() -> dict[str, Any]:
        return (await api.get(f"/v1/journeys/{journey.id}/funnel")).json()

    def steps(f: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {s["id"]: (s["reached"], s["here"]) for s in f["steps"]}

    found = await eventually(funnel, lambda f: (f["entered"], f["exited"]) == (3, 1))
    assert steps(found) == {"wait": (3, 2), "end": (0, 0)}


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (./dev installs it)")
async def test_a_hostile_journey_name_is_shown_as_text_not_run(api: httpx.AsyncClient) -> None:
    hostile = '<img src=x onerror="document.body.dataset.pwned=1">'
    journey = spec().model_copy(update={"name": hostile, "goal": EventCondition(event=hostile)})
    wait = WaitForEventStep(
        id="wait", event=hostile, timeout=timedelta(days=1), on_event="end", on_timeout="end"
    )
    journey = journey.model_copy(update={"steps": [*journey.steps[:-2], wait, journey.steps[-1]]})
    source = mermaid(journey, [], [])
    assert "<img" not in source and "&lt;img" in source  # event names are text in labels
    assert (await api.post("/v1/journeys", json=journey.model_dump(mode="json"))).status_code == 201
    key = api.headers["authorization"].split()[1]
    page = f"{str(api.base_url).rstrip('/')}/journeys/{journey.id}/funnel#key={key}"
    dom = await asyncio.to_thread(dump_dom, page)
    assert 'data-ready="true"' in dom, dom[-3000:]
    assert "pwned" not in dom.split("<h1")[0] and "data-pwned" not in dom
    assert "&lt;img src=x onerror=" in dom  # the name, as text in the title
    assert "<img" not in dom


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (./dev installs it)")
async def test_the_funnel_page_without_a_key_asks_for_one(api: httpx.AsyncClient) -> None:
    page = f"{str(api.base_url).rstrip('/')}/journeys/{spec().id}/funnel"
    dom = await asyncio.to_thread(dump_dom, page)
    assert '<form id="key-form">' in dom and "data-ready" not in dom


async def test_a_run_ended_in_temporal_is_stopped_not_active(
    api: httpx.AsyncClient, client: Client
) -> None:
    """Issue 14, item 3: a run terminated in the Temporal UI is `stopped` in the API and
    no longer counted `here` in the funnel."""
    journey = JourneySpec(
        id=unique("funnel-stopped"),
        name="Stopped",
        entry=Entry(event=unique("go")),
        steps=wait_then_end(),
    )
    assert (await api.post("/v1/journeys", json=journey.model_dump(mode="json"))).is_success
    cids = [await customer(api) for _ in range(2)]
    for cid in cids:
        await event(api, cid, journey.entry.event or "")
    handle = client.get_workflow_handle(f"journey/{journey.id}/{cids[0]}")
    await handle.terminate(reason="operator in the Temporal UI")
    stopped = await state(api, journey.id, cids[0])
    assert stopped["status"] == "stopped" and stopped["ended_reason"] == "terminated in Temporal"
    assert (await state(api, journey.id, cids[1]))["status"] == "active"

    async def funnel() -> dict[str, Any]:
        return (await api.get(f"/v1/journeys/{journey.id}/funnel")).json()

    found = await eventually(funnel, lambda f: f["stopped"] == 1 and f["active"] == 1)
    assert found["steps"][0]["here"] == 1 and found["entered"] == 2


async def test_callers_of_one_funnel_share_one_count(api: httpx.AsyncClient) -> None:
    """Issue 34, item 6: pages refreshing one funnel at once cost one count between them
    (a 1,000-step journey's funnel is thousands of visibility counts)."""
    journey, _ = await scripted(api)
    url = f"/v1/journeys/{journey.id}/funnel"
    answers = await asyncio.gather(*(api.get(url) for _ in range(6)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["counted_at"] for a in answers}) == 1
    again = await eventually(
        lambda: get_json(api, url),
        lambda f: f["counted_at"] != answers[0].json()["counted_at"],
    )
    assert again["entered"] == answers[0].json()["entered"]  # a later count: a new one
