"""Issue 31 end to end: a holdout gets nothing and is counted; a bandit split moves traffic
to the arm that converts better, its weights are in each enrollment's history (a replay
takes the same arm), and operators can freeze it or declare a winner (audited)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import TimeSkipper
from temporalio.worker import Replayer

from journeys.schemas.enrollment import EnrollmentInput, enrollment_workflow_id
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import (
    ContentVariant,
    Entry,
    EventCondition,
    ExitStep,
    Holdout,
    JourneySpec,
    MessageContent,
    SendStep,
    SplitPath,
    SplitStep,
    WaitForEventStep,
)
from journeys.services.mailbox import Mailbox
from journeys.stack.embedded import Stack
from journeys.testing import JourneyKit
from journeys.workflows.journey import JourneyWorkflow
from journeys.workflows.split import bucket
from tests.conftest import eventually, unique
from tests.helpers import customer, deliveries, event, get_json, journeys_ok, state

LONG = timedelta(days=30)


def _wait(step_id: str, then: str = "end") -> WaitForEventStep:
    return WaitForEventStep(
        id=step_id, event="never.happens", timeout=LONG, on_event=then, on_timeout=then
    )


async def _publish(api: httpx.AsyncClient, spec: JourneySpec) -> None:
    response = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
    assert response.status_code == 201, response.text


async def _experiment(api: httpx.AsyncClient, journey_id: str, split: str) -> dict[str, Any]:
    return await get_json(api, f"/v1/journeys/{journey_id}/experiments/{split}")


async def test_a_holdout_gets_nothing_and_is_counted(
    api: httpx.AsyncClient, mailbox: tuple[Mailbox, int]
) -> None:
    goal = unique("bought")
    spec = JourneySpec(
        id=unique("holdout"),
        name="Holdout",
        entry=Entry(event=unique("go")),
        goal=EventCondition(event=goal),
        holdout=Holdout(share=0.5, window=timedelta(days=7)),
        steps=[
            SendStep(
                id="send",
                channel="email",
                content=MessageContent(subject="Hi", body="Hi"),
                next="end",
            ),
            ExitStep(id="end"),
        ],
    )
    await _publish(api, spec)
    groups: dict[str, list[str]] = {"control": [], "treated": []}
    while min(len(g) for g in groups.values()) < 2:
        cid = await customer(api)
        held = bucket(spec.id, "holdout", cid) < 0.5
        groups["control" if held else "treated"].append(cid)
        await event(api, cid, spec.entry.event or "")
    for cid in groups["treated"]:
        await eventually(
            lambda c=cid: deliveries(api, c), lambda d: [x["status"] for x in d] == ["sent"]
        )  # type: ignore[misc]
    for cid in groups["control"]:
        held = await state(api, spec.id, cid)
        assert held["status"] == "active" and held["context"]["splits"] == {"holdout": "control"}
        assert held["waiting"] is not None  # for the window, converting or not
        assert await deliveries(api, cid) == []
        assert mailbox[0].to(f"{cid}@test.example") == []
    for cid in groups["treated"]:  # past its exit step, watching for the goal for the window
        watching = await eventually(lambda c=cid: state(api, spec.id, c), lambda s: s["waiting"])  # type: ignore[misc]
        assert watching["status"] == "active" and watching["waiting"]["event"] == goal
    await event(api, groups["control"][0], goal)
    await event(api, groups["treated"][0], goal)

    async def funnel() -> dict[str, Any]:
        return await get_json(api, f"/v1/journeys/{spec.id}/funnel")

    counted = await eventually(
        funnel, lambda f: f["converted"] == 2 and f["entered"] == sum(map(len, groups.values()))
    )
    arms = {a["arm"]: a for a in counted["arms"] if a["split"] == "holdout"}
    assert (
        arms["control"]["entered"] == len(groups["control"]) and arms["control"]["converted"] == 1
    )
    assert (
        arms["treated"]["entered"] == len(groups["treated"]) and arms["treated"]["converted"] == 1
    )
    assert counted["steps"][0]["reached"] == len(groups["treated"])  # the held out reach no step
    [holdout] = [e for e in counted["experiments"] if e["id"] == "holdout"]
    assert holdout["kind"] == "holdout" and [a["name"] for a in holdout["arms"]] == [
        "control",
        "treated",
    ]
    assert (
        holdout["arms"][1]["difference"] is not None and holdout["arms"][1]["interval"] is not None
    )

    cli = ("--api-url", str(api.base_url).rstrip("/"))
    out = await journeys_ok("experiments", spec.id, *cli)
    assert "holdout (holdout)" in out and "treated converts" in out, out
    exported_cli = await journeys_ok("experiments", spec.id, "--export", "holdout", *cli)
    assert exported_cli.splitlines()[0].startswith("experiment,arm,enrollment,customer_id")
    exported = await api.get(f"/v1/journeys/{spec.id}/experiments/holdout/exposures.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["customer_id"] for r in rows if r["arm"] == "control"} == set(groups["control"])
    assert sum(int(r["converted"]) for r in rows) == 2


def _totals(experiment: dict[str, Any]) -> tuple[int, int]:
    """(conversions, exposures) over its arms."""
    arms = experiment["arms"]
    return sum(a["conversions"] for a in arms), sum(a["exposures"] for a in arms)


def _basis(enrollment: dict[str, Any]) -> str:
    """What the split's weights were (`prior`, `thompson`, ...), from the path's outcome."""
    outcome = str(enrollment["path"][0]["outcome"])
    return outcome.split("(")[1].split(",")[0]


def _held(spec: JourneySpec, control: bool) -> str:
    """A customer id the holdout puts in the control group (or not)."""
    assert spec.holdout is not None
    while True:
        cid = unique("cust")
        if (bucket(spec.id, "holdout", cid) < spec.holdout.share) == control:
            return cid


async def test_both_groups_are_watched_for_exactly_the_window_in_virtual_time(
    stack: Stack, skipper: TimeSkipper
) -> None:
    """A held-out customer and a treated one who finished the journey at once both end
    when the week is over, neither converted; one who converts on day 6 counts."""
    spec = JourneySpec(
        id=unique("window"),
        name="Window",
        entry=Entry(event="go"),
        goal=EventCondition(event=unique("bought")),
        holdout=Holdout(share=0.5, window=timedelta(days=7)),
        steps=[
            _wait("wait", then="end").model_copy(update={"timeout": timedelta(hours=1)}),
            ExitStep(id="end"),
        ],
    )
    version, _ = await stack.stores.journeys.publish(spec)
    handles = {}
    for name, control in [("control", True), ("treated", False), ("buyer", False)]:
        cid = _held(spec, control)
        handles[name] = await skipper.client.start_workflow(
            JourneyWorkflow.run,
            EnrollmentInput(
                journey=spec,
                version=version,
                customer_id=cid,
                trigger=CustomerEvent.create(cid, "go"),
            ),
            id=enrollment_workflow_id(spec.id, cid),
            task_queue=stack.settings.task_queue,
        )
    for handle in handles.values():
        await skipper.fast_forward(handle, timedelta(days=6))
    buyer = handles["buyer"]
    await buyer.signal(
        JourneyWorkflow.event, CustomerEvent.create(buyer.id.rsplit("/", 1)[1], spec.goal.event)
    )  # type: ignore[union-attr]
    for handle in (handles["control"], handles["treated"]):
        await skipper.fast_forward(handle, timedelta(days=1, hours=1))
    control, treated, bought = [await h.result() for h in handles.values()]
    assert (control.status, control.ended_reason) == ("completed", "holdout window over")
    assert (treated.status, treated.ended_reason) == ("completed", "exit step end")
    assert [p.step for p in treated.path] == ["wait", "end"]
    assert bought.status == "converted"


def _bandit(goal: str) -> JourneySpec:
    return JourneySpec(
        id=unique("bandit"),
        name="Bandit",
        entry=Entry(event=unique("go")),
        goal=EventCondition(event=goal),
        steps=[
            SplitStep(
                id="split",
                mode="bandit",
                min_sample=15,
                exploration=0.05,
                paths=[
                    SplitPath(name="a", weight=1, next="wait-a"),
                    SplitPath(name="b", weight=1, next="wait-b"),
                ],
            ),
            _wait("wait-a"),
            _wait("wait-b"),
            ExitStep(id="end"),
        ],
    )


async def _enter(api: httpx.AsyncClient, spec: JourneySpec, n: int) -> dict[str, str]:
    """n customers enter; the arm each took."""
    cids = list(await asyncio.gather(*(customer(api) for _ in range(n))))
    await asyncio.gather(*(event(api, cid, spec.entry.event or "") for cid in cids))

    async def arm(cid: str) -> str:
        found = await eventually(
            lambda: state(api, spec.id, cid), lambda s: "split" in s["context"].get("splits", {})
        )
        return str(found["context"]["splits"]["split"])

    return dict(zip(cids, await asyncio.gather(*map(arm, cids)), strict=True))


@pytest.mark.slow  # ~100 enrollments in three rounds of counts: 17 s
async def test_a_bandit_moves_traffic_to_the_arm_that_converts_and_replays(
    api: httpx.AsyncClient, client: Client
) -> None:
    goal = unique("bought")
    spec = _bandit(goal)
    await _publish(api, spec)
    rates = {"a": 0.15, "b": 0.45}  # b converts three times better
    taken: dict[str, str] = {}

    async def counted() -> dict[str, Any]:
        """The experiment, once visibility has every exposure and conversion so far (the
        next entrants' weights come from these counts)."""
        wanted = (sum(round(rates[a] * n) for a, n in Counter(taken.values()).items()), len(taken))
        return await eventually(
            lambda: _experiment(api, spec.id, "split"), lambda e: _totals(e) == wanted
        )

    async def enter(n: int) -> dict[str, str]:
        """n customers enter; of each arm's entrants so far, exactly its rate convert."""
        batch = await _enter(api, spec, n)
        before = Counter(taken.values())
        taken.update(batch)
        buying = []
        for arm, rate in rates.items():
            mine = [c for c, a in taken.items() if a == arm]
            buying += mine[round(rate * before[arm]) : round(rate * len(mine))]
        await asyncio.gather(*(event(api, cid, goal) for cid in buying))
        await counted()
        return batch

    while min(Counter(taken.values()).get(arm, 0) for arm in rates) < 15:  # the minimum sample
        batch = await enter(20)
        if len(taken) == 20:  # the first 20 cannot give both arms 15: the written weights
            assert {_basis(await state(api, spec.id, c)) for c in batch} == {"prior"}
    later = await enter(40)
    assert list(later.values()).count("b") / len(later) > 0.7, later
    found = await _experiment(api, spec.id, "split")
    assert found["kind"] == "bandit" and found["sample_ratio_p"] is None  # shares move on purpose
    assert {a["name"]: a["probability_best"] for a in found["arms"]}["b"] > 0.9

    # The weights each enrollment took its arm by are in its history: a replay agrees.
    cid = next(c for c, arm in later.items() if arm == "b")
    path = (await state(api, spec.id, cid))["path"]
    assert path[0]["outcome"].startswith("path b (thompson, weight 0.")
    handle = client.get_workflow_handle(enrollment_workflow_id(spec.id, cid))
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[JourneyWorkflow], data_converter=client.data_converter)
    await replayer.replay_workflow(history)  # raises on any nondeterminism


@pytest.mark.both_databases  # the decisions table
async def test_operators_declare_a_winner_or_freeze_a_bandit(api: httpx.AsyncClient) -> None:
    spec = _bandit(unique("bought"))
    await _publish(api, spec)
    url = f"/v1/journeys/{spec.id}/experiments/split/decision"
    declared = await api.post(url, json={"action": "winner", "arm": "b", "reason": "b wins"})
    assert declared.status_code == 200, declared.text
    assert declared.json()["decision"] == "winner: b"
    assert set((await _enter(api, spec, 6)).values()) == {"b"}

    frozen = await api.post(url, json={"action": "freeze", "reason": "hold it"})
    assert frozen.status_code == 200 and frozen.json()["decision"] == "frozen"
    cid, _ = (await _enter(api, spec, 1)).popitem()
    assert "(frozen, weight 0.50)" in (await state(api, spec.id, cid))["path"][0]["outcome"]
    released = await api.post(url, json={"action": "release"})
    assert released.status_code == 200 and released.json()["decision"] is None

    cli = ("--api-url", str(api.base_url).rstrip("/"))
    out = await journeys_ok("bandit", spec.id, "split", "winner", "--arm", "a", *cli)
    assert "split (bandit), winner: a" in out, out
    released_cli = await journeys_ok("bandit", spec.id, "split", "release", *cli)
    assert "winner" not in released_cli
    wrong = await api.post(url, json={"action": "winner", "arm": "zzz"})
    assert wrong.status_code == 422
    missing = await api.post(
        f"/v1/journeys/{spec.id}/experiments/nope/decision", json={"action": "release"}
    )
    assert missing.status_code == 404
    audit = (await api.get("/v1/audit")).json()["items"]
    decided = [
        e["target"]["action"]
        for e in audit
        if e["action"] == "POST /v1/journeys/{journey_id}/experiments/{split_id}/decision"
        and e["target"]["journey_id"] == spec.id
        and e["status"] == 200
    ]
    assert sorted(decided) == [
        "freeze",
        "release",
        "release",
        "winner",
        "winner",
    ]  # each decision is on record


async def test_content_variants_are_judged_on_opens_per_message(journey_kit: JourneyKit) -> None:
    """Issue 31, item 4: a send step tests a subject line; each customer gets one variant
    by a stable hash and keeps it; opens by people count, a machine's do not."""
    spec = JourneySpec(
        id=unique("subject"),
        name="Subject line test",
        entry=Entry(event="go"),
        steps=[
            SendStep(
                id="mail",
                channel="email",
                content=MessageContent(subject="Your cart", body="<p>Come back</p>"),
                variants=[
                    ContentVariant(
                        name="urgent",
                        content=MessageContent(subject="Last day!", body="<p>Come back</p>"),
                    )
                ],
                metric="opened",
                next="end",
            ),
            ExitStep(id="end"),
        ],
    )
    await journey_kit.publish(spec)
    got: dict[str, list[str]] = {"control": [], "urgent": []}
    for _ in range(12):
        cid = unique("c")
        await journey_kit.profile(cid, email=f"{cid}@example.com")
        await journey_kit.event(cid, "go")
        run = journey_kit.run(spec.id, cid)
        state = await run.finish()
        [email] = journey_kit.emails(f"{cid}@example.com")
        variant = state.context["splits"]["mail"]
        assert email.subject == ("Last day!" if variant == "urgent" else "Your cart")
        got[variant].append(cid)
        if variant == "urgent" or len(got["control"]) == 1:  # all urgent ones, one control
            assert await journey_kit.open(run, "mail") == 200
        else:
            assert await journey_kit.open(run, "mail", user_agent="Mozilla/5.0") == 200
    assert got["control"] and got["urgent"]
    [found] = await journey_kit.experiments(spec.id)
    assert (found.kind, found.metric) == ("content", "opened")
    counts = {a.name: (a.exposures, a.conversions) for a in found.arms}
    assert counts == {"control": (len(got["control"]), 1), "urgent": (len(got["urgent"]),) * 2}
    assert found.arms[0].control and found.sample_ratio_p is None  # (messages, not customers)
