"""The interpreter alone: `JourneyWorkflow` on the session's dev server in virtual time, with
fake activities that answer what each test says (no database, no API, no channels). Each
behaviour of a step kind, of the operator controls, of migration and of continue-as-new is
checked here in well under a second; the stack tests keep what needs the integration."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import TimeSkipper, TimeSkippingConfig
from temporalio.worker import Worker

from journeys.clients.enrollments import Enrollment
from journeys.schemas import activities as names
from journeys.schemas.activities import (
    INVALID_REQUEST,
    ActionRequest,
    LocalTimeRequest,
    ProfileRequest,
    ProfileUpdate,
    SendTimeRequest,
)
from journeys.schemas.decision import Chosen, DecisionRequest, DecisionResult
from journeys.schemas.delivery import SendRequest, SendResult
from journeys.schemas.enrollment import (
    ControlRequest,
    EnrollmentInput,
    EnrollmentState,
    MigrateRequest,
    enrollment_workflow_id,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import (
    ActionStep,
    BranchCase,
    BranchStep,
    DecideStep,
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    SplitPath,
    SplitStep,
    Step,
    UpdateProfileStep,
    WaitForEventStep,
    WaitStep,
)
from journeys.schemas.predicates import Comparison
from journeys.testkit.kit import settled
from journeys.workers.replay import recorded_patches
from journeys.workers.sandbox import sandbox
from journeys.workflows.journey import PATCH_SET, PATCH_SET_MEMBERS, JourneyWorkflow
from journeys.workflows.split import bucket, choose
from tests.helpers import keep_history

DAY = timedelta(days=1)


@dataclass
class Fakes:
    """The activities, answering from what a test put here, recording what they were
    asked."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    send_answers: list[SendResult] = field(default_factory=list)
    """Answers of the next sends, in order (then: sent)."""
    offers: list[Chosen] = field(default_factory=list)
    sent: list[SendRequest] = field(default_factory=list)
    updates: list[ProfileUpdate] = field(default_factory=list)
    actions: list[ActionRequest] = field(default_factory=list)

    @activity.defn(name=names.SEND)
    async def send(self, request: SendRequest) -> SendResult:
        self.sent.append(request)
        if request.best_time_within is not None:  # the customer is usually around in 2 h
            until = (request.at or datetime.now(UTC)) + timedelta(hours=2)
            return SendResult(status="deferred", reason="best_time", until=until)
        if self.send_answers:
            answer = self.send_answers.pop(0)
            if answer.status == "failed":
                raise ApplicationError(answer.reason or "failed", type=INVALID_REQUEST)
            return answer
        channel = request.fallbacks[0] if request.channel == "best_channel" else request.channel
        return SendResult(status="sent", channel=channel, delivery_id=len(self.sent))

    @activity.defn(name=names.GET_PROFILE)
    async def get_profile(self, request: ProfileRequest) -> dict[str, Any]:
        return self.profiles.get(request.customer_id, {})

    @activity.defn(name=names.NEXT_LOCAL_TIME)
    async def next_local_time(self, request: LocalTimeRequest) -> datetime:
        at = datetime.combine(request.after.date(), request.at, tzinfo=UTC)
        return at if at > request.after else at + DAY

    @activity.defn(name=names.BEST_SEND_TIME)
    async def best_send_time(self, request: SendTimeRequest) -> datetime:
        return request.at + timedelta(hours=2)

    @activity.defn(name=names.UPDATE_PROFILE)
    async def update_profile(self, update: ProfileUpdate) -> None:
        self.updates.append(update)

    @activity.defn(name=names.DECIDE)
    async def decide(self, request: DecisionRequest) -> DecisionResult:
        return DecisionResult(placement=request.placement, offers=self.offers[: request.limit])

    @activity.defn(name=names.ACTION)
    async def action(self, request: ActionRequest) -> dict[str, Any]:
        self.actions.append(request)
        if request.input.get("fail"):
            raise ApplicationError("the brand's endpoint refused", type=INVALID_REQUEST)
        return {"done": request.input}


@dataclass
class Interpreter:
    client: Client
    skipper: TimeSkipper
    task_queue: str
    fakes: Fakes

    async def start(
        self,
        steps: list[Step],
        *,
        version: int = 1,
        patch_set: str | None = None,
        **journey: Any,
    ) -> tuple[JourneySpec, str, WorkflowHandle[JourneyWorkflow, EnrollmentState]]:
        """`patch_set`: as the API's starts name it (default: none, as a starter from
        before the field, so the run records the set's marker)."""
        spec = journey_of(steps, **journey)
        customer_id = f"c-{uuid.uuid4().hex[:10]}"
        trigger = CustomerEvent.create(customer_id, "go", {"plan": "pro"})
        handle = await self.skipper.client.start_workflow(
            JourneyWorkflow.run,
            EnrollmentInput(
                journey=spec,
                version=version,
                customer_id=customer_id,
                trigger=trigger,
                patch_set=patch_set,
            ),
            id=enrollment_workflow_id(spec.id, customer_id),
            task_queue=self.task_queue,
        )
        return spec, customer_id, handle

    def enrollment(self, handle: WorkflowHandle[Any, Any]) -> Enrollment:
        return Enrollment(self.client, handle.id)

    async def settled(self, handle: WorkflowHandle[Any, Any]) -> EnrollmentState:
        """The state once what a timer or a signal set off is done."""
        await settled(handle)
        return await handle.query(JourneyWorkflow.state)

    async def event(self, handle: WorkflowHandle[Any, Any], name: str, **properties: Any) -> None:
        customer_id = (await handle.query(JourneyWorkflow.state)).customer_id
        await handle.signal(
            JourneyWorkflow.event, CustomerEvent.create(customer_id, name, properties)
        )
        await self.settled(handle)


def journey_of(steps: list[Step], **journey: Any) -> JourneySpec:
    return JourneySpec(
        id=journey.pop("id", f"j-{uuid.uuid4().hex[:8]}"),
        name="interpreter test",
        entry=Entry(event="go"),
        steps=steps,
        **journey,
    )


def send(step_id: str, next: str = "end", **fields: Any) -> SendStep:
    fields.setdefault("channel", "in_app")
    return SendStep(id=step_id, content=MessageContent(body=step_id), next=next, **fields)


END = ExitStep(id="end")


@pytest_asyncio.fixture
async def interpreter(temporal_client: Client) -> AsyncIterator[Interpreter]:
    fakes = Fakes()
    queue = f"interpreter-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[JourneyWorkflow],
        activities=[
            fakes.send,
            fakes.get_profile,
            fakes.next_local_time,
            fakes.best_send_time,
            fakes.update_profile,
            fakes.decide,
            fakes.action,
        ],
        workflow_runner=sandbox(strict=True),
    )
    skipper = TimeSkipper(temporal_client, config=TimeSkippingConfig(enabled=False))
    async with worker:
        yield Interpreter(temporal_client, skipper, queue, fakes)


async def upserts_per_task(handle: WorkflowHandle[Any, Any]) -> list[list[set[str]]]:
    """For each completed workflow task, the search attributes of each billable upsert
    it made (a patch marker's TemporalChangeVersion is not billed)."""
    tasks: list[list[set[str]]] = []
    for e in (await handle.fetch_history()).events:
        if e.HasField("workflow_task_completed_event_attributes"):
            tasks.append([])
        elif e.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) != {"TemporalChangeVersion"}:
                tasks[-1].append(set(fields.indexed_fields))
    return tasks


async def last_reached(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The funnel's reached list as the enrollment's last upsert of it wrote it."""
    listed: list[str] = []
    for e in (await handle.fetch_history()).events:
        if e.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            if "JourneyReached" in fields.indexed_fields:
                listed = json.loads(fields.indexed_fields["JourneyReached"].data)
    return listed


def outcomes(state: EnrollmentState) -> list[tuple[str, str | None]]:
    return [(p.step, p.outcome) for p in state.path]


# -- step kinds ----------------------------------------------------------------------------


async def test_branch_takes_the_first_case_that_holds_else_the_default(
    interpreter: Interpreter,
) -> None:
    steps: list[Step] = [
        BranchStep(
            id="plan",
            cases=[
                BranchCase(
                    when=Comparison(field="profile.attributes.plan", op="eq", value="pro"),
                    next="pro",
                ),
                BranchCase(when=Comparison(field="event.plan", op="eq", value="pro"), next="ev"),
            ],
            default="end",
        ),
        send("pro"),
        send("ev"),
        END,
    ]
    _, pro, handle = await interpreter.start(steps, id="branching")
    interpreter.fakes.profiles[pro] = {"attributes": {"plan": "pro"}}
    assert outcomes(await handle.result())[:2] == [("plan", "case 0"), ("pro", "sent")]
    _, _, handle = await interpreter.start(steps, id="branching")  # no profile: the event
    assert outcomes(await handle.result())[:2] == [("plan", "case 1"), ("ev", "sent")]


async def test_split_assigns_a_stable_arm_and_records_it(interpreter: Interpreter) -> None:
    paths = [SplitPath(name="a", weight=1, next="a"), SplitPath(name="b", weight=1, next="b")]
    spec, cid, handle = await interpreter.start(
        [SplitStep(id="ab", paths=paths), send("a"), send("b"), END]
    )
    arm = choose(paths, bucket(spec.id, "ab", cid)).name
    final = await handle.result()
    assert final.context["splits"] == {"ab": arm}
    assert [p.step for p in final.path] == ["ab", arm, "end"]


async def test_instant_steps_ride_on_the_next_upsert(interpreter: Interpreter) -> None:
    """A branch that reads no profile and a split run without a timer or an activity: they
    leave their search attributes to the next step's upsert, so no workflow task upserts
    twice, and the funnel's reached list still names them and the arm taken."""
    paths = [SplitPath(name="a", weight=1, next="a"), SplitPath(name="b", weight=1, next="b")]
    steps: list[Step] = [
        WaitStep(id="settle", duration=timedelta(minutes=10), next="plan"),
        BranchStep(
            id="plan",
            cases=[
                BranchCase(when=Comparison(field="event.plan", op="eq", value="pro"), next="ab")
            ],
            default="end",
        ),
        SplitStep(id="ab", paths=paths),
        send("a"),
        send("b"),
        END,
    ]
    spec, cid, handle = await interpreter.start(steps)
    await interpreter.skipper.fast_forward(handle, timedelta(minutes=10))
    final = await handle.result()
    arm = choose(paths, bucket(spec.id, "ab", cid)).name
    assert [p.step for p in final.path] == ["settle", "plan", "ab", arm, "end"]
    tasks = await upserts_per_task(handle)
    assert max(len(t) for t in tasks) == 1, tasks
    listed = await last_reached(handle)
    assert {"settle", "plan", "ab", arm, f"ab:{arm}"} <= set(listed), listed
    await keep_history(handle, "one-upsert-per-task")


async def test_a_loop_back_through_an_instant_step_still_lists_it(
    interpreter: Interpreter,
) -> None:
    """Back at the step it left, through a branch alone: the step shown does not change,
    and the branch still joins the funnel's reached list."""
    more = Comparison(field="last_event.more", op="eq", value=True)
    steps: list[Step] = [
        WaitForEventStep(
            id="listen", event="ping", timeout=DAY, on_event="again", on_timeout="end"
        ),
        BranchStep(id="again", cases=[BranchCase(when=more, next="listen")], default="end"),
        END,
    ]
    _, _, handle = await interpreter.start(steps)
    await interpreter.settled(handle)
    await interpreter.event(handle, "ping", more=True)
    assert (await handle.query(JourneyWorkflow.state)).step == "listen"
    assert {"listen", "again"} <= set(await last_reached(handle))
    await interpreter.event(handle, "ping", more=False)
    final = await handle.result()
    assert [p.step for p in final.path] == ["listen", "again", "listen", "again", "end"]


PATCHED_PATH: list[Step] = [
    WaitForEventStep(id="listen", event="ping", timeout=DAY, on_event="again", on_timeout="end"),
    BranchStep(
        id="again",
        cases=[
            BranchCase(when=Comparison(field="last_event.more", op="eq", value=True), next="hello")
        ],
        default="end",
    ),
    send("hello"),
    END,
]
"""Through four patched points: an instant step rides on the next upsert, the exit step's
upsert says the status, a wait keeps events that came between waits."""


async def through_patched_points(
    interpreter: Interpreter, patch_set: str | None
) -> WorkflowHistory:
    _, _, handle = await interpreter.start(PATCHED_PATH, patch_set=patch_set)
    await interpreter.settled(handle)
    await interpreter.event(handle, "ping", more=True)
    final = await handle.result()
    assert [p.step for p in final.path] == ["listen", "again", "hello", "end"]
    assert max(len(t) for t in await upserts_per_task(handle)) == 1  # instant: one per task
    await keep_history(handle, "patch-set" if patch_set is None else "patch-set-in-input")
    return await handle.fetch_history()


def markers(history: WorkflowHistory) -> list[str]:
    return [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]


async def test_an_enrollment_from_an_older_starter_records_one_patch_marker_for_the_set(
    interpreter: Interpreter,
) -> None:
    """Each patch marker costs a history event and a TemporalChangeVersion upsert: an
    enrollment whose input names no patch set (its starter predates the field) records the
    set's marker once, at its start, and takes every patch of it. Older histories keep
    replaying."""
    history = await through_patched_points(interpreter, patch_set=None)
    assert markers(history) == ["core_patch"]  # the set's, which stands for every patch
    assert set(recorded_patches(history)) == set(PATCH_SET_MEMBERS)


async def test_an_enrollment_whose_input_names_the_patch_set_records_no_marker(
    interpreter: Interpreter,
) -> None:
    """What the API starts: the input names the patch set, so the run takes every patch of
    it with no marker, and no TemporalChangeVersion upsert."""
    history = await through_patched_points(interpreter, patch_set=PATCH_SET)
    assert markers(history) == []
    upserted = [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    assert upserted and all("TemporalChangeVersion" not in u for u in upserted)
    assert set(recorded_patches(history)) == set(PATCH_SET_MEMBERS)


async def test_a_patch_set_the_worker_lacks_fails_the_task_not_the_enrollment(
    interpreter: Interpreter,
) -> None:
    """A newer starter than worker (a rolling deploy): the run's workflow task fails, and
    is retried, until a worker with that set takes it; the enrollment itself carries on."""
    _, _, handle = await interpreter.start(PATCHED_PATH, patch_set="patch-set-from-the-future")
    failed: list[str] = []
    for _ in range(100):
        history = await handle.fetch_history()
        failed = [
            e.workflow_task_failed_event_attributes.failure.message
            for e in history.events
            if e.HasField("workflow_task_failed_event_attributes")
        ]
        if failed:
            break
        await asyncio.sleep(0.05)
    assert failed and "patch-set-from-the-future" in failed[0]
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test over")


async def test_waits_run_their_durations_in_virtual_time(interpreter: Interpreter) -> None:
    from datetime import time

    steps: list[Step] = [
        WaitStep(id="two-days", duration=2 * DAY, next="nine"),
        WaitStep(id="nine", until_local_time=time(9, 0), next="end"),
        END,
    ]
    _, _, handle = await interpreter.start(steps)
    await interpreter.settled(handle)
    assert (await handle.query(JourneyWorkflow.state)).step == "two-days"
    await interpreter.skipper.fast_forward(handle, 2 * DAY - timedelta(minutes=1))
    assert (await interpreter.settled(handle)).step == "two-days"
    await interpreter.skipper.fast_forward(handle, 2 * DAY)
    final = await handle.result()
    assert outcomes(final) == [("two-days", "waited"), ("nine", "waited"), ("end", "exit")]
    waited = final.path[1].at - final.path[0].at
    # (virtual time also moves with the wall clock: a loaded machine adds its seconds)
    assert 2 * DAY <= waited < 2 * DAY + timedelta(minutes=1)
    assert final.path[2].at.time().replace(second=0, microsecond=0) == time(9, 0)


async def test_wait_for_event_takes_a_matching_event_or_times_out(
    interpreter: Interpreter,
) -> None:
    steps: list[Step] = [
        WaitForEventStep(
            id="wait",
            event="clicked",
            where=Comparison(field="event.button", op="eq", value="buy"),
            timeout=DAY,
            on_event="yes",
            on_timeout="no",
        ),
        send("yes"),
        send("no"),
        END,
    ]
    _, _, handle = await interpreter.start(steps)
    await interpreter.event(handle, "clicked", button="later")  # filtered out
    await interpreter.event(handle, "viewed")  # another event
    assert (await handle.query(JourneyWorkflow.state)).step == "wait"
    await interpreter.event(handle, "clicked", button="buy")
    final = await handle.result()
    assert outcomes(final)[:2] == [("wait", "event clicked"), ("yes", "sent")]
    assert final.context["steps"]["yes"]["status"] == "sent"

    _, _, handle = await interpreter.start(steps)
    await interpreter.skipper.fast_forward(handle, DAY + timedelta(minutes=1))
    assert outcomes(await handle.result())[:2] == [("wait", "timeout"), ("no", "sent")]


async def test_an_event_during_a_send_counts_for_the_next_wait(interpreter: Interpreter) -> None:
    """A customer who reacts while a send waits for their best time is not missed."""
    steps: list[Step] = [
        send("nudge", next="wait", send_at="best_time"),
        WaitForEventStep(id="wait", event="opened", timeout=DAY, on_event="end", on_timeout="end"),
        END,
    ]
    _, _, handle = await interpreter.start(steps)
    state = await interpreter.settled(handle)
    assert state.waiting is not None and state.waiting.reason == "send deferred: best_time"
    await interpreter.event(handle, "opened")  # during the two-hour hold
    await interpreter.skipper.fast_forward(handle, timedelta(hours=3))
    final = await handle.result()
    assert outcomes(final) == [("nudge", "sent"), ("wait", "event opened"), ("end", "exit")]
    held, sent = interpreter.fakes.sent  # the send itself answered "later": no other call
    assert held.best_time_within == DAY and sent.best_time_within is None
    await keep_history(handle, "best-time-in-send")


async def test_goal_converts_and_exit_events_exit_from_any_step(interpreter: Interpreter) -> None:
    steps: list[Step] = [WaitStep(id="wait", duration=DAY, next="end"), END]
    journey = {
        "goal": EventCondition(event="bought"),
        "exit_when": [EventCondition(event="unsubscribed")],
    }
    _, _, converting = await interpreter.start(steps, **journey)
    _, _, leaving = await interpreter.start(steps, **journey)
    await interpreter.event(converting, "bought")
    await interpreter.event(leaving, "unsubscribed")
    converted, left = await converting.result(), await leaving.result()
    assert (converted.status, converted.ended_reason) == ("converted", "goal bought")
    assert (left.status, left.ended_reason) == ("exited", "exit event unsubscribed")
    assert converted.path[0].outcome == "converted: goal bought"


async def test_send_outcomes_take_their_edges(interpreter: Interpreter) -> None:
    fakes = interpreter.fakes
    fakes.send_answers = [
        SendResult(status="suppressed", reason="no consent"),
        SendResult(status="failed", reason="template error"),
    ]
    steps: list[Step] = [
        send("first", next="end", on_suppressed="second"),
        send("second", next="end", on_failed="third"),
        send("third", channel="best_channel", fallbacks=["push", "in_app"]),
        END,
    ]
    handle = (await interpreter.start(steps))[2]
    final = await handle.result()
    assert outcomes(final) == [
        ("first", "suppressed"), ("second", "failed"), ("third", "sent"), ("end", "exit")
    ]  # fmt: skip
    # The exit step's upsert says the status too: the last workflow task writes once.
    final_task = (await upserts_per_task(handle))[-1]
    assert len(final_task) == 1 and {"JourneyStep", "JourneyStatus"} <= final_task[0]
    await keep_history(handle, "one-final-upsert")
    assert final.context["steps"]["third"]["channel"] == "push"
    keys = [r.idempotency_key for r in fakes.sent]
    assert len(set(keys)) == 3  # one key per step visit


async def test_a_deferred_send_waits_then_tries_again_under_the_same_key(
    interpreter: Interpreter,
) -> None:
    until = datetime.now(UTC) + timedelta(hours=8)
    interpreter.fakes.send_answers = [
        SendResult(status="deferred", reason="quiet hours", until=until)
    ]
    _, _, handle = await interpreter.start([send("late"), END])
    state = await interpreter.settled(handle)
    assert state.waiting is not None and state.waiting.reason == "send deferred: quiet hours"
    await interpreter.skipper.fast_forward(handle, timedelta(hours=9))
    final = await handle.result()
    assert outcomes(final)[0] == ("late", "sent")
    first, second = interpreter.fakes.sent
    assert first.idempotency_key == second.idempotency_key


async def test_decide_update_profile_and_action_keep_their_answers(
    interpreter: Interpreter,
) -> None:
    fakes = interpreter.fakes
    steps: list[Step] = [
        DecideStep(id="offers", placement="home", next="update", on_empty="end"),
        UpdateProfileStep(id="update", attributes={"seen_offer": True}, next="call"),
        ActionStep(id="call", activity="crm.tag", input={"tag": "x"}, next="fail"),
        ActionStep(
            id="fail", activity="crm.tag", input={"fail": True}, next="end", on_failed="end"
        ),
        END,
    ]
    _, cid, handle = await interpreter.start(steps)
    empty = await handle.result()
    assert outcomes(empty)[0] == ("offers", "0 offer(s)") and len(empty.path) == 2

    fakes.offers = [
        Chosen(id="o1", name="Offer one", fields={}, rank=1, value=1.0, reason="priority")
    ]
    _, cid, handle = await interpreter.start(steps)
    final = await handle.result()
    assert [p.step for p in final.path] == ["offers", "update", "call", "fail", "end"]
    assert final.context["decisions"]["offers"]["top"]["id"] == "o1"
    assert fakes.updates[-1].customer_id == cid and fakes.updates[-1].attributes == {
        "seen_offer": True
    }
    assert final.context["actions"]["call"] == {"done": {"tag": "x"}}
    assert "refused" in final.context["actions"]["fail"]["error"]
    assert final.path[3].outcome == "failed"


# -- the operator's controls --------------------------------------------------------------


async def test_pause_holds_the_next_step_and_resume_goes_on(interpreter: Interpreter) -> None:
    _, _, handle = await interpreter.start(
        [WaitStep(id="wait", duration=DAY, next="hello"), send("hello"), END]
    )
    enrollment = interpreter.enrollment(handle)
    await interpreter.settled(handle)  # in the wait (a pause holds the step after it)
    paused = await enrollment.control("pause", ControlRequest(reason="check"))
    assert paused.paused
    await interpreter.skipper.fast_forward(handle, 2 * DAY)
    state = await interpreter.settled(handle)
    assert state.step == "hello" and interpreter.fakes.sent == []  # held before the send
    await enrollment.control("resume", ControlRequest(reason="checked"))
    final = await handle.result()
    assert final.status == "completed" and len(interpreter.fakes.sent) == 1


async def test_skip_ends_a_wait_as_a_timeout_and_exit_ends_the_enrollment(
    interpreter: Interpreter,
) -> None:
    steps: list[Step] = [
        WaitForEventStep(id="wait", event="x", timeout=30 * DAY, on_event="end", on_timeout="more"),
        WaitStep(id="more", duration=30 * DAY, next="end"),
        END,
    ]
    _, _, handle = await interpreter.start(steps)
    enrollment = interpreter.enrollment(handle)
    await interpreter.settled(handle)
    skipped = await enrollment.control("skip", ControlRequest(reason="stuck"))
    assert skipped.step == "more"
    assert skipped.path[0].outcome == "skipped by an operator: stuck"
    ended = await enrollment.control("exit", ControlRequest(reason="done here"))
    assert (ended.status, ended.ended_reason) == ("exited", "operator: done here")
    with pytest.raises(Exception, match="already"):
        await enrollment.control("pause", ControlRequest(reason="late"))


async def test_migrate_moves_a_waiting_enrollment_to_the_mapped_step(
    interpreter: Interpreter,
) -> None:
    v1: list[Step] = [WaitStep(id="wait", duration=30 * DAY, next="end"), END]
    spec, _, handle = await interpreter.start(v1, version=1)
    await interpreter.settled(handle)
    v2 = spec.model_copy(
        update={"steps": [WaitStep(id="short", duration=DAY, next="hello"), send("hello"), END]}
    )
    enrollment = interpreter.enrollment(handle)
    unmapped = MigrateRequest(journey=v2, version=2, reason="shorter")
    with pytest.raises(Exception, match="no counterpart in v2"):
        await enrollment.plan_migration(unmapped)
    request = unmapped.model_copy(update={"mapping": {"wait": "short"}})
    planned = await enrollment.plan_migration(request)
    assert (planned.from_step, planned.to_step) == ("wait", "short")
    assert "the wait at 'wait' ends now" in planned.effect
    done = await enrollment.migrate(request)
    assert done == planned
    await interpreter.skipper.fast_forward(handle, 2 * DAY)
    final = await handle.result()
    assert [(p.step, p.outcome) for p in final.path] == [
        ("wait", "migrated to v2 by an operator: shorter"),  # the wait, cut short
        ("wait", "migrated to v2 at short: shorter"),  # the move
        ("short", "waited"),
        ("hello", "sent"),
        ("end", "exit"),
    ]
    assert final.version == 2


async def test_a_long_loop_continues_as_new_keeping_path_context_and_dedup(
    interpreter: Interpreter,
) -> None:
    steps: list[Step] = [
        WaitForEventStep(id="listen", event="ping", timeout=30 * DAY, on_event="reply",
                         on_timeout="end"),
        send("reply", next="listen"),
        END,
    ]  # fmt: skip
    _, cid, handle = await interpreter.start(steps)
    first_run = (await handle.describe()).run_id
    for n in range(15):  # ~6 history events a loop: past the server's suggestion at 50
        await interpreter.event(handle, "ping", n=n)
    repeat = CustomerEvent.create(cid, "ping", {"n": 0}, message_id="ping-0")
    await handle.signal(JourneyWorkflow.event, repeat)
    await handle.signal(JourneyWorkflow.event, repeat)  # the same message id again
    await interpreter.settled(handle)
    assert (await handle.describe()).run_id != first_run
    state = await handle.query(JourneyWorkflow.state)
    assert [p.step for p in state.path] == ["listen", "reply"] * 16 + ["listen"]
    assert len(interpreter.fakes.sent) == 16
    assert state.steps_taken == 33
