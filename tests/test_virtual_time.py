"""Multi-day journeys at their real durations, in virtual time: the dev server's
per-workflow time skipping moves one enrollment's clock (`fast_forward`) so a test can act
in the middle of a two-day wait. Each run's history is kept for the replay test when
JOURNEYS_RECORD_HISTORIES=1."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowHandle
from temporalio.testing import TimeSkipper

from journeys.examples.onboarding_nudge import JOURNEY as ONBOARDING
from journeys.examples.welcome_series import JOURNEY as WELCOME
from journeys.schemas.enrollment import EnrollmentInput, EnrollmentState, enrollment_workflow_id
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import JourneySpec
from journeys.schemas.profile import Profile
from journeys.services.mailbox import Mailbox
from journeys.stack.embedded import Stack
from journeys.workflows.journey import JourneyWorkflow
from journeys.workflows.split import bucket, choose
from tests.conftest import eventually, unique
from tests.helpers import keep_history


async def enroll(
    stack: Stack, skipper: TimeSkipper, spec: JourneySpec, customer_id: str
) -> WorkflowHandle[JourneyWorkflow, EnrollmentState]:
    version, _ = await stack.stores.journeys.publish(spec, only_if_changed=True)
    trigger = CustomerEvent.create(customer_id, spec.entry.event)
    return await skipper.client.start_workflow(
        JourneyWorkflow.run,
        EnrollmentInput(journey=spec, version=version, customer_id=customer_id, trigger=trigger),
        id=enrollment_workflow_id(spec.id, customer_id),
        task_queue=stack.settings.task_queue,
    )


async def sends(stack: Stack, customer_id: str) -> list[tuple[str, str]]:
    return [(d.step_id, d.status) for d in await stack.stores.ledger.for_customer(customer_id)]


async def test_reminder_and_email_at_real_durations(
    stack: Stack, skipper: TimeSkipper, mailbox: tuple[Mailbox, int]
) -> None:
    cid = unique("vt")
    await stack.stores.profiles.put(Profile(customer_id=cid, email=f"{cid}@test.example"))
    handle = await enroll(stack, skipper, ONBOARDING, cid)

    await skipper.fast_forward(handle, timedelta(hours=23))
    assert await sends(stack, cid) == []
    await skipper.fast_forward(handle, timedelta(hours=2))
    await eventually(lambda: sends(stack, cid), lambda s: s == [("push", "sent")])

    await skipper.fast_forward(handle, timedelta(days=2, hours=1))
    final = await handle.result()
    assert final.status == "completed"
    assert await sends(stack, cid) == [("push", "sent"), ("email", "sent")]
    assert len(mailbox[0].to(f"{cid}@test.example")) == 1
    waited = final.path[3].at - final.path[0].at
    assert timedelta(days=3) <= waited < timedelta(days=3, hours=2)
    await keep_history(handle, "onboarding-reminder-email")


async def test_clubs_added_in_the_middle_of_the_second_wait(
    stack: Stack, skipper: TimeSkipper
) -> None:
    cid = unique("vt")
    handle = await enroll(stack, skipper, ONBOARDING, cid)
    await skipper.fast_forward(handle, timedelta(days=1, hours=1))
    await eventually(lambda: sends(stack, cid), lambda s: s == [("push", "sent")])
    await skipper.fast_forward(handle, timedelta(days=1))
    state = await handle.query(JourneyWorkflow.state)
    assert state.step == "wait-more" and state.waiting and state.waiting.event == "bag.club_added"

    await handle.signal(JourneyWorkflow.event, CustomerEvent.create(cid, "bag.club_added"))
    final = await handle.result()
    assert final.status == "converted"
    assert await sends(stack, cid) == [("push", "sent")]
    await keep_history(handle, "onboarding-converted")


async def test_branch_and_split(stack: Stack, skipper: TimeSkipper) -> None:
    pro, free = unique("pro"), unique("free")
    await stack.stores.profiles.put(
        Profile(customer_id=pro, email=f"{pro}@test.example", attributes={"plan": "pro"})
    )
    await stack.stores.profiles.put(Profile(customer_id=free, email=f"{free}@test.example"))
    handles = {cid: await enroll(stack, skipper, WELCOME, cid) for cid in (pro, free)}
    for handle in handles.values():
        await skipper.fast_forward(handle, timedelta(minutes=11))
    results = {cid: await h.result() for cid, h in handles.items()}

    assert [p.step for p in results[pro].path] == ["settle", "plan", "pro-email", "done"]
    assert await sends(stack, pro) == [("pro-email", "sent")]

    arm = choose(WELCOME.step("channel-test").paths, bucket(WELCOME.id, "channel-test", free))
    assert results[free].context["splits"] == {"channel-test": arm.name}
    expected = {
        "in-app": [("free-in-app", "sent")],
        "email": [("free-email", "sent")],
        "holdout": [],
    }
    assert await sends(stack, free) == expected[arm.name]
    await keep_history(handles[free], "welcome-split")
