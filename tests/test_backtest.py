"""Backtests (issue 29): the step engine's simulated runtime over recorded events gives the
same paths and counts as the real interpreter in Temporal did over those events."""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import FrequencyCap, QuietHours
from journeys.schemas.journey import (
    BranchCase,
    BranchStep,
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForEventStep,
    WaitStep,
)
from journeys.schemas.predicates import Comparison
from journeys.schemas.profile import Profile
from journeys.schemas.send_decision import Rules
from journeys.schemas.settings import Settings
from journeys.stack.embedded import Stack, running_stack
from journeys.usecases.backtest import backtest, recorded, simulate
from journeys.workflows.engine import Interpreter
from journeys.workflows.journey import JourneyWorkflow
from journeys.workflows.simulation import Simulation, World
from tests.conftest import eventually, own_settings, unique
from tests.helpers import journeys_ok, state

N = 120  # customers, 20 of each kind
SCALE = 4320.0  # a day of the journey's clock is 20 s
HOUR = 3600 / SCALE
PRO = Comparison(
    field="profile.attributes.plan", op="eq", value="pro"
)  # seconds of real time in an hour of it
QUIET = QuietHours(start=time(22), end=time(6), channels=["sms"])
ZONES = [
    "UTC", "Europe/Berlin", "Asia/Tokyo", "America/New_York", "America/Los_Angeles",
    "Asia/Kolkata", "Australia/Sydney", "America/Sao_Paulo", "Asia/Dubai",
    "Pacific/Auckland", "Africa/Lagos", "Asia/Singapore", "Pacific/Honolulu",
]  # fmt: skip


def welcome(journey_id: str, entry: str) -> JourneySpec:
    """Email at once; an app open within a day gets an in-app tip; else pro customers get
    an SMS (quiet hours 22:00-06:00 their time) and the others an email reminder; 14 hours
    later a last email, which the journey's cap (2 emails a week) suppresses for those
    who had the reminder. A purchase converts at any step."""

    def content(body: str) -> MessageContent:
        return MessageContent(subject=body, body=body)

    return JourneySpec(
        id=journey_id,
        name="Backtest fidelity",
        entry=Entry(event=entry),
        goal=EventCondition(event="purchased"),
        time_scale=SCALE,
        quiet_hours=QUIET,
        frequency_caps=[FrequencyCap(limit=2, window=timedelta(days=7), channel="email")],
        steps=[
            SendStep(id="welcome", channel="email", content=content("Welcome"), next="opened"),
            WaitForEventStep(
                id="opened",
                event="opened_app",
                timeout=timedelta(days=1),
                on_event="tip",
                on_timeout="plan",
            ),
            SendStep(id="tip", channel="in_app", content=content("A tip"), next="end"),
            BranchStep(
                id="plan",
                cases=[BranchCase(when=PRO, next="offer")],
                default="reminder",
            ),
            SendStep(id="offer", channel="sms", content=content("An offer"), next="later"),
            SendStep(id="reminder", channel="email", content=content("Still there?"), next="later"),
            WaitStep(id="later", duration=timedelta(hours=14), next="last"),
            SendStep(id="last", channel="email", content=content("Last call"), next="end"),
            ExitStep(id="end"),
        ],
    )


def zones_clear_of_the_quiet_edges(at: datetime) -> tuple[list[str], list[str]]:
    """(zones in quiet hours at `at`, zones out of them), each 2 hours from either edge:
    the real clocks lag the recorded ones by a little, never by that much."""
    inside, outside = [], []
    for name in ZONES:
        local = at.astimezone(ZoneInfo(name))
        hour = local.hour + local.minute / 60
        if 0 <= hour <= 4:
            inside.append(name)
        elif 8 <= hour <= 20:
            outside.append(name)
    return inside, outside


def test_the_two_runtimes_share_every_step() -> None:
    """No step is written twice: the workflow and the simulation inherit each one."""
    steps = [n for n, f in vars(Interpreter).items() if inspect.isfunction(f)]
    assert {"_send", "_wait", "_wait_for_event", "_branch", "_split", "_until"} <= set(steps)
    for name in steps:
        if name.startswith("_") and not name.startswith("__") and name not in Interpreter.EFFECTS:
            assert name not in vars(JourneyWorkflow), f"JourneyWorkflow overrides {name}"
            assert name not in vars(Simulation), f"Simulation overrides {name}"


async def test_a_simulated_enrollment_waits_holds_and_converts() -> None:
    """Virtual time: a 1-day wait for an event that comes 3 hours in, an SMS held by
    quiet hours in the customer's zone, a cap, and a goal, with nothing sent."""
    spec = welcome("sim", "signup").model_copy(update={"time_scale": 1.0})
    start = datetime(2026, 6, 1, 12, tzinfo=UTC)
    signup = CustomerEvent.create("c1", "signup", timestamp=start, message_id="m0")
    late = CustomerEvent.create("c1", "purchased", timestamp=start + timedelta(hours=30))
    profile = Profile(customer_id="c1", email="c1@x.test", phone="+15550100",
                      timezone="Asia/Tokyo", attributes={"plan": "pro"})  # fmt: skip
    world = World(profile=profile, events=[], rules=Rules(), until=start + timedelta(days=5))
    [outcome] = await simulate(spec, 1, "c1", [signup, late], world)
    steps = [(p.step, p.outcome) for p in outcome.path]
    assert steps == [
        ("welcome", "sent"), ("opened", "timeout"), ("plan", "case 0"), ("offer", "sent"),
        ("later", "converted: goal purchased"),
    ]  # fmt: skip
    # Noon UTC + 1 day is 21:00 in Tokyo: not quiet yet, so the SMS goes at once.
    assert [s.step for s in outcome.sends] == ["welcome", "offer"] and not outcome.held
    tokyo_night = start + timedelta(hours=2)  # 23:00 in Tokyo a day later: held to 06:00
    signup = signup.model_copy(update={"timestamp": tokyo_night})
    world = World(profile=profile, events=[], rules=Rules(), until=start + timedelta(days=5))
    [outcome] = await simulate(spec, 1, "c1", [signup], world)
    [held] = outcome.held
    assert held.step == "offer" and held.reason == "quiet_hours"
    offer = [s for s in outcome.sends if s.step == "offer"][0]
    assert offer.at.astimezone(ZoneInfo("Asia/Tokyo")).time() == time(6)
    assert outcome.status == "completed"


@pytest.mark.slow
async def test_a_backtest_of_recorded_traffic_matches_what_temporal_did(
    settings: Settings, tmp_path: Path
) -> None:
    """Fidelity: a day and a half of traffic through the product (a few hundred customers,
    opens, purchases, quiet hours, a cap), then the same spec backtested over the events
    recorded meanwhile: every customer's path, and every per-step count, is the same.
    On a stack of its own, as production runs it (the workflow sandbox off: the shared
    stack polices every workflow in strict mode, a few hundred at once starve it)."""
    own = own_settings(settings, tmp_path, workflow_sandbox="off", rate_limit_per_second=0)
    async with running_stack(own) as stack:
        key = (await stack.stores.keys.create("fidelity", ["admin"])).token
        async with httpx.AsyncClient(
            base_url=own.public_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as api:
            await _fidelity(api, stack)


async def _fidelity(api: httpx.AsyncClient, stack: Stack) -> None:
    entry = unique("signup")
    spec = welcome(unique("fidelity"), entry)
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).status_code == 201
    t0 = datetime.now(UTC)
    inside, outside = zones_clear_of_the_quiet_edges(t0 + timedelta(days=1))
    assert inside and outside, (t0, inside, outside)
    customers = [unique("fid") for _ in range(N)]
    plan: dict[str, str] = {}
    for i, cid in enumerate(customers):
        kind = ["opens", "buys early", "quiet", "buys late", "free", "no phone"][i % 6]
        plan[cid] = kind
        profile: dict[str, Any] = {"email": f"{cid}@test.example", "phone": "+15550100"}
        zones = inside if kind == "quiet" else outside
        profile["timezone"] = zones[i % len(zones)]
        # Late buyers are on the free plan: their reminder is an email. (SMS leave at the
        # provider's pace, a second each from one number: thirty at once take half a
        # minute, hours of this journey's clock, and a purchase would land mid-send, which
        # a simulation, whose calls take no time, cannot see.)
        if kind not in ("free", "buys late"):
            profile["attributes"] = {"plan": "pro"}
        if kind == "no phone":
            del profile["phone"]
        assert (await api.put(f"/v1/customers/{cid}", json=profile)).status_code == 200

    # Each customer's day on their own clock: signed up 50 ms after the one before (as
    # traffic comes, not all at once, so a send takes milliseconds, not a queue's seconds:
    # a second is 1.2 hours of this journey's clock), then their events at set hours.
    later = {"opens": ("opened_app", 6), "buys early": ("purchased", 12)}
    later["buys late"] = ("purchased", 35)
    planned = [(i * 0.05, cid, entry) for i, cid in enumerate(customers)]
    planned += [
        (i * 0.05 + later[plan[cid]][1] * HOUR, cid, later[plan[cid]][0])
        for i, cid in enumerate(customers)
        if plan[cid] in later
    ]
    planned.sort()
    since = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    began = loop.time()
    while planned:
        await asyncio.sleep(max(0.0, began + planned[0][0] - loop.time()))
        due = [p for p in planned if p[0] <= loop.time() - began]
        planned = planned[len(due) :]
        batch = [{"customer_id": cid, "name": name} for _, cid, name in due]
        sent = await api.post("/v1/events", json={"events": batch})
        assert sent.status_code == 202, sent.text
    await eventually(
        lambda: api.get(f"/v1/journeys/{spec.id}/funnel"),
        lambda f: f.json()["converted"] + f.json()["completed"] == len(customers),
        timeout=90,
        interval=1,
    )
    real = {cid: await state(api, spec.id, cid) for cid in customers}
    until = datetime.now(UTC) + timedelta(seconds=1)

    # Per customer: the same path, step by step and outcome by outcome.
    events = await recorded(stack.stores, since, until, customers)
    assert sum(len(e) for e in events.by_customer.values()) == N + N // 6 * 3
    profiles = await stack.stores.profiles.many(customers)
    rules = Rules.of(stack.settings)
    differ = {}
    for cid in customers:
        world = World(profile=profiles[cid], events=[], rules=rules, until=until)
        [outcome] = await simulate(spec, 1, cid, events.by_customer[cid], world)
        simulated = [(p.step, p.outcome) for p in outcome.path]
        happened = [(p["step"], p["outcome"]) for p in real[cid]["path"]]
        if simulated != happened or outcome.status != real[cid]["status"]:
            differ[cid] = (plan[cid], happened, simulated)
    assert differ == {}
    statuses = Counter(s["status"] for s in real.values())
    assert statuses == {"converted": N // 3, "completed": N * 2 // 3}, statuses

    # Per step: the backtest's report against the funnel of what happened.
    report = await backtest(stack.stores, spec, events, since, until, rules=rules)
    funnel = await eventually(
        lambda: api.get(f"/v1/journeys/{spec.id}/funnel"),
        lambda f: f.json()["converted"] + f.json()["completed"] == N,
    )
    funnel = funnel.json()
    by_step = {s["id"]: s for s in funnel["steps"]}
    for step in report.steps:
        counted = by_step[step.id]
        assert sum(step.sent.values()) == counted["sent"], step
        suppressed: Counter[str] = Counter()
        for reasons in step.suppressed.values():
            suppressed.update(reasons)
        assert dict(suppressed) == counted["suppressed"], step
        assert step.converted == counted["converted"], step
    assert report.by_status == statuses
    held = {s.id: s.held for s in report.steps if s.held}
    assert held == {"offer": {"quiet_hours": N // 6}}  # the pro customers in a quiet zone
    capped = {s.id: s.suppressed for s in report.steps if s.suppressed}
    assert capped["last"] == {"email": {"capped": N // 6}}  # the free plan's third email
    [(channel, reasons)] = capped["offer"].items()  # the pro customers without a phone
    assert channel == "sms" and sum(reasons.values()) == N // 6, reasons


async def recorded_past(api: httpx.AsyncClient, entry: str) -> tuple[list[str], datetime]:
    """Six customers' last few days, sent now with the times they happened: sign-ups
    three days ago, an app open for two, a purchase (the goal) for two more. No journey
    enters on these events: they are only recorded."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    customers = []
    events: list[dict[str, Any]] = []
    for i in range(6):
        cid = unique("bt")
        customers.append(cid)
        profile = {"email": f"{cid}@test.example", "phone": "+15550100", "timezone": "UTC"}
        profile["attributes"] = {"plan": "pro" if i < 3 else "free"}
        assert (await api.put(f"/v1/customers/{cid}", json=profile)).status_code == 200
        events.append({"customer_id": cid, "name": entry, "timestamp": start.isoformat()})
        follow = {0: "opened_app", 3: "opened_app", 1: "purchased", 4: "purchased"}.get(i)
        if follow:
            at = start + timedelta(hours=5)
            events.append({"customer_id": cid, "name": follow, "timestamp": at.isoformat()})
    assert (await api.post("/v1/events", json={"events": events})).status_code == 202
    return customers, start


async def test_a_backtest_job_reports_and_compares_over_the_api_and_the_cli(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    entry = unique("bt-signup")
    customers, start = await recorded_past(api, entry)
    draft = welcome(unique("bt"), entry).model_copy(update={"time_scale": 1.0, "quiet_hours": None})
    # The change under review: the pro plan's SMS becomes an email (which the cap then
    # holds down at the last step).
    steps = [
        s.model_copy(update={"channel": "email"}) if s.id == "offer" else s for s in draft.steps
    ]
    changed = draft.model_copy(update={"steps": steps})
    body = {
        "journey": changed.model_dump(mode="json"),
        "compare": draft.model_dump(mode="json"),
        "since": (start - timedelta(hours=1)).isoformat(),
        "customers": customers,
    }
    started = await api.post("/v1/journeys/backtests", json=body)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    job = await eventually(
        lambda: api.get(f"/v1/journeys/backtests/{job_id}"),
        lambda r: r.json()["status"] != "running",
    )
    found = job.json()
    assert found["status"] == "done", found
    old, new = found["comparison"]["baseline"], found["comparison"]["candidate"]
    assert old["enrolled"] == new["enrolled"] == 6
    assert old["by_status"] == {"completed": 4, "converted": 2}
    steps_old = {s["id"]: s for s in old["steps"]}
    assert steps_old["welcome"]["sent"] == {"email": 6}
    assert steps_old["tip"]["sent"] == {"in_app": 2}
    assert steps_old["offer"]["sent"] == {"sms": 1}  # pro, no open, no purchase
    assert steps_old["last"]["suppressed"] == {"email": {"capped": 1}}  # free: third email
    steps_new = {s["id"]: s for s in new["steps"]}
    assert steps_new["offer"]["sent"] == {"email": 1}
    assert steps_new["last"]["suppressed"] == {"email": {"capped": 2}}
    assert found["comparison"]["messages"] == {"email": 0, "in_app": 0, "sms": -1}
    assert new["assumptions"] and "reached" in new["mermaid"]
    assert old["top_customers"][0] == {"customer_id": customers[2], "messages": 3}

    # The same from the CLI, with its table and the difference.
    (tmp_path / "draft.json").write_text(draft.model_dump_json())
    (tmp_path / "changed.json").write_text(changed.model_dump_json())
    since = (start - timedelta(hours=1)).isoformat()
    url = str(api.base_url)
    shown = await journeys_ok(
        "backtest", str(tmp_path / "changed.json"), "--since", since,
        "--compare", str(tmp_path / "draft.json"), "--api-url", url,
    )  # fmt: skip
    assert "reached compare - draft" in shown or "reached draft - compare" in shown, shown
    assert "sms" in shown and "assumed:" in shown
    refused = await api.post("/v1/journeys/backtests", json={**body, "until": body["since"]})
    assert refused.status_code == 422
