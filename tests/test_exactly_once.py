"""Each message is delivered once: across activity retries, replays, and a worker killed
in the middle of a send."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from journeys.activities.channels import EmailChannel
from journeys.activities.delivery import DeliveryActivities
from journeys.schemas.delivery import SendRequest
from journeys.schemas.enrollment import (
    EnrollmentState,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import MessageContent
from journeys.schemas.profile import Profile
from journeys.services.mailbox import Mailbox, start_smtp
from journeys.stack.embedded import Stack, spawn
from journeys.workflows.journey import JourneyWorkflow
from tests.conftest import free_port, unique
from tests.helpers import one_send, start_enrollment


def delivery(stack: Stack, channel: Any) -> DeliveryActivities:
    """The send activity over the stack's stores, delivering on `channel` alone."""
    s = stack.stores
    return DeliveryActivities(
        ledger=s.ledger, templates=s.templates, channels=[channel], settings=stack.settings
    )


def send_request(cid: str, channel: Any, content: MessageContent, **more: Any) -> SendRequest:
    """One send of `content` to `cid` on `channel`, as an enrollment would ask for it."""
    return SendRequest(
        idempotency_key=f"test/{cid}/{channel}/1",
        journey_id="j",
        version=1,
        step_id=channel,
        customer_id=cid,
        channel=channel,
        content=content,
        event=CustomerEvent.create(cid, "go"),
        **more,
    )


async def test_retried_send_returns_the_first_outcome(
    stack: Stack, mailbox: tuple[Mailbox, int]
) -> None:
    cid = unique("once")
    await stack.stores.profiles.put(Profile(customer_id=cid, email=f"{cid}@test.example"))
    s = stack.stores
    activities = delivery(stack, EmailChannel(stack.settings))
    request = send_request(cid, "email", MessageContent(subject="Hi", body="once"))
    env = ActivityEnvironment()
    first = await env.run(activities.send, request)
    second = await env.run(activities.send, request)
    assert first.status == second.status == "sent"
    assert first.delivery_id == second.delivery_id
    assert len(mailbox[0].to(f"{cid}@test.example")) == 1
    ledger = await s.ledger.for_customer(cid)
    assert len(ledger) == 1 and ledger[0].attempts == 1


class HoldingMailbox(Mailbox):
    """Holds the first delivery after RCPT, before any message data has been sent."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if not self.release.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 try again"  # the client is gone by now; nothing was accepted
        envelope.rcpt_tos.append(address)
        return "250 OK"


def start_worker(stack: Stack, task_queue: str, smtp_port: int) -> subprocess.Popen[bytes]:
    """A worker process with the shared stack's settings, on its own queue and SMTP port."""
    apart = {"tracing": False, "metrics_address": None}  # the test process holds the port
    return spawn(
        stack.settings.model_copy(
            update={"task_queue": task_queue, "smtp_port": smtp_port, **apart}
        )
    )


async def mail_once(
    stack: Stack, task_queue: str, cid: str, **options: Any
) -> WorkflowHandle[JourneyWorkflow, EnrollmentState]:
    """An enrollment in a one-email journey, run by the worker on `task_queue`."""
    spec = one_send(unique("mail"), id="mail", channel="email", subject="Once", body="b")
    return await start_enrollment(stack.client, spec, cid, task_queue, **options)


@pytest.mark.slow
async def test_worker_killed_during_a_send_delivers_once(stack: Stack) -> None:
    box = HoldingMailbox()
    port = free_port()
    smtp = start_smtp(box, port=port)
    task_queue = unique("crash")
    cid = unique("crash")
    await stack.stores.profiles.put(Profile(customer_id=cid, email=f"{cid}@test.example"))
    worker = start_worker(stack, task_queue, port)
    try:
        handle = await mail_once(stack, task_queue, cid, send_timeout=4)
        assert await asyncio.to_thread(box.holding.wait, 60), "the send never reached SMTP"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        box.release.set()

        worker = start_worker(stack, task_queue, port)
        final = await asyncio.wait_for(handle.result(), 90)
        assert final.status == "completed"
        assert len(box.to(f"{cid}@test.example")) == 1
        [delivery] = await stack.stores.ledger.for_customer(cid)
        assert (delivery.status, delivery.attempts) == ("sent", 2)
    finally:
        worker.terminate()
        worker.wait(20)
        smtp.stop()


async def test_a_send_whose_retries_run_out_is_failed_in_the_ledger(
    stack: Stack, receiver: Any
) -> None:
    """Issue 14, item 4: the last attempt of a send that keeps failing records `failed`
    (not `pending`, which counted against caps for good and showed 0 failed)."""
    import dataclasses

    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ApplicationError

    from journeys.activities.channels import WebhookChannel
    from journeys.activities.egress import shared_client

    cid = unique("gives-up")
    await stack.stores.profiles.put(Profile(customer_id=cid))
    http = shared_client(stack.settings)
    activities = delivery(stack, WebhookChannel(stack.settings, http))
    content = MessageContent(body="x", url=f"{receiver.url}/unavailable")
    request = send_request(cid, "webhook", content, topic="transactional")
    env = ActivityEnvironment()
    policy = RetryPolicy(maximum_attempts=8)
    try:
        env.info = dataclasses.replace(env.info, attempt=1, retry_policy=policy)
        with pytest.raises(Exception) as first:
            await env.run(activities.send, request)
        assert not isinstance(first.value, ApplicationError)  # retried by Temporal
        [row] = await stack.stores.ledger.for_customer(cid)
        assert row.status == "pending"
        env.info = dataclasses.replace(env.info, attempt=8, retry_policy=policy)
        with pytest.raises(ApplicationError) as last:
            await env.run(activities.send, request)
        assert last.value.non_retryable
        [row] = await stack.stores.ledger.for_customer(cid)
        assert row.status == "failed" and "HTTP 503" in (row.reason or "")
        assert "gave up after 8 attempts" in (row.reason or "")
    finally:
        await http.aclose()


class SlowMailbox(Mailbox):
    """Takes 2 s to accept each recipient, saying when the first one arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.holding.set()
        await asyncio.sleep(2)
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.mark.slow
async def test_a_worker_stopped_mid_send_finishes_it_first(stack: Stack) -> None:
    """Issue 15: SIGTERM (a rolling deploy, a pod evicted) lets the send in flight finish
    within `worker_shutdown_seconds`: delivered once, settled on its first attempt (the
    SDK's default, 0 s, cancelled it; a new attempt followed)."""
    box = SlowMailbox()
    port = free_port()
    smtp = start_smtp(box, port=port)
    task_queue = unique("drain")
    cid = unique("drain")
    await stack.stores.profiles.put(Profile(customer_id=cid, email=f"{cid}@test.example"))
    worker = start_worker(stack, task_queue, port)
    try:
        handle = await mail_once(stack, task_queue, cid)
        assert await asyncio.to_thread(box.holding.wait, 60), "the send never reached SMTP"
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
        [delivery] = await stack.stores.ledger.for_customer(cid)
        assert (delivery.status, delivery.attempts) == ("sent", 1)

        worker = start_worker(stack, task_queue, port)
        final = await asyncio.wait_for(handle.result(), 60)
        assert final.status == "completed"
        assert len(box.to(f"{cid}@test.example")) == 1
    finally:
        worker.terminate()
        worker.wait(20)
        smtp.stop()
