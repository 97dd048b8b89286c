"""The honest baseline: the example journeys written by hand, each as its own Temporal
workflow, as a team would write them instead of adopting the journey runner. They send
through the same `journeys.send` activity (ledger, guardrails, channels, the same provider
calls), call the same profile and decisioning activities, keep the same search attributes
up to date per step, and run in a worker process of their own, as `journeys worker` does.
Durations are divided by `scale`, as the product's `time_scale` divides them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.schemas import activities as names
    from journeys.schemas.activities import ProfileRequest, ProfileUpdate
    from journeys.schemas.decision import DecisionRequest, DecisionResult
    from journeys.schemas.delivery import SendRequest, SendResult
    from journeys.schemas.events import CustomerEvent
    from journeys.schemas.journey import SplitPath
    from journeys.workflows import search_attributes as sa
    from journeys.workflows.split import bucket, choose

SEND_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=8)
LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=20)
DAY = timedelta(days=1)


class HandInput(BaseModel):
    customer_id: str
    trigger: CustomerEvent
    scale: float = 1.0


class ByHand:
    """What a team writes once and shares between its journey workflows: the event signal,
    waiting for an event (or the goal, or an exit) with a timeout, a send through the
    guardrails that waits out a deferral, and the step and status search attributes."""

    JOURNEY: ClassVar[str]
    FIRST: ClassVar[str]
    """The step the start's search attributes name."""
    GOAL: ClassVar[str]
    EXITS: ClassVar[frozenset[str]] = frozenset({"unsubscribed"})
    PRIORITY: ClassVar[int] = 0

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._last: CustomerEvent | None = None
        self._input: HandInput | None = None
        self._context: dict[str, Any] = {}

    @workflow.signal(name="event")
    def event(self, event: CustomerEvent) -> None:
        self._seen.add(event.name)
        self._last = event

    @property
    def input(self) -> HandInput:
        assert self._input is not None
        return self._input

    async def _within(self, name: str | None, timeout: timedelta) -> str | None:
        """Wait up to `timeout` for `name`, the goal or an exit: which came, or None."""
        wanted = {self.GOAL, *self.EXITS} | ({name} if name else set())
        try:
            await workflow.wait_condition(
                lambda: bool(self._seen & wanted), timeout=timeout / self.input.scale
            )
        except TimeoutError:
            return None
        return next(n for n in (self.GOAL, *sorted(self.EXITS), name) if n in self._seen)

    async def _ends_within(self, timeout: timedelta) -> str | None:
        """Wait up to `timeout` for the goal or an exit: the status it ends with, or None."""
        came = await self._within(None, timeout)
        return self._ended(came) if came else None

    def _ended(self, came: str) -> str | None:
        """The status a wait's answer ends the enrollment with (None: go on)."""
        if came == self.GOAL:
            return self._end("converted")
        if came in self.EXITS:
            return self._end("exited")
        return None

    async def _send(
        self,
        step: str,
        channel: str,
        template: str,
        *,
        topic: str = "marketing",
        best_within: timedelta | None = None,
    ) -> SendResult:
        self._step(step)
        info = workflow.info()
        while True:
            result: SendResult = await workflow.execute_activity(
                names.SEND,
                SendRequest(
                    idempotency_key=f"{info.workflow_id}/{info.run_id}/{step}",
                    journey_id=self.JOURNEY,
                    version=1,
                    step_id=step,
                    customer_id=self.input.customer_id,
                    channel=channel,  # type: ignore[arg-type]
                    fallbacks=["push", "in_app"] if channel == "best_channel" else [],
                    template=template,
                    event=self.input.trigger,
                    last_event=self._last,
                    context=self._context,
                    topic=topic,  # type: ignore[arg-type]
                    priority=self.PRIORITY,
                    at=workflow.now(),
                    best_time_within=best_within,
                ),
                result_type=SendResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=SEND_RETRY,
            )
            best_within = None
            if result.status != "deferred" or result.until is None:
                return result
            await workflow.sleep(max(result.until - workflow.now(), timedelta(0)))

    async def _profile(self, step: str, *fields: str) -> dict[str, Any]:
        self._step(step)
        view: dict[str, Any] = await workflow.execute_activity(
            names.GET_PROFILE,
            ProfileRequest(customer_id=self.input.customer_id, fields=list(fields)),
            result_type=dict,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LOOKUP_RETRY,
        )
        return view

    def _step(self, step: str) -> None:
        if workflow.info().typed_search_attributes.get(sa.JOURNEY_STEP) != step:
            workflow.upsert_search_attributes([sa.JOURNEY_STEP.value_set(step)])

    def _end(self, status: str, step: str | None = None) -> str:
        updates = [sa.JOURNEY_STATUS.value_set(status)]
        if step:
            updates.append(sa.JOURNEY_STEP.value_set(step))
        workflow.upsert_search_attributes(updates)
        return status


@workflow.defn(name="OnboardingNudgeByHand")
class OnboardingNudgeByHand(ByHand):
    """Scenario 1: wait a day for clubs; else a nudge (push, else in-app) at the customer's
    usual hour; wait two more days; else an email."""

    JOURNEY, FIRST, GOAL = "onboarding-by-hand", "wait-club", "bag.club_added"
    EXITS = frozenset()

    @workflow.run
    async def run(self, input: HandInput) -> str:
        self._input = input
        if ended := await self._ends_within(DAY):
            return ended
        await self._send("push", "best_channel", "come-back", best_within=timedelta(hours=12))
        self._step("wait-more")
        if ended := await self._ends_within(2 * DAY):
            return ended
        await self._send("email", "email", "add-your-clubs")
        return self._end("completed", step="done")


@workflow.defn(name="CartAbandonmentByHand")
class CartAbandonmentByHand(ByHand):
    """Scenario 2: a push after an hour without checkout; a store's offers on entering its
    geofence within a day, else an email with recommended offers."""

    JOURNEY, FIRST, GOAL, PRIORITY = "cart-by-hand", "wait-checkout", "checkout.completed", 5

    @workflow.run
    async def run(self, input: HandInput) -> str:
        self._input = input
        if ended := await self._ends_within(timedelta(hours=1)):
            return ended
        await self._send("push-reminder", "push", "cart-reminder")
        self._step("wait-store")
        came = await self._within("geofence.entered", DAY)
        if came and (ended := self._ended(came)):
            return ended
        if came:
            if await self._decide("store_offers", "store-push", 2):
                await self._send("store-push", "push", "store-recommendations")
        else:
            await self._decide("email_offers", "cart-email", 3)
            await self._send("email", "email", "cart-recommendations")
        return self._end("completed", step="done")

    async def _decide(self, step: str, placement: str, limit: int) -> bool:
        self._step(step)
        info = workflow.info()
        result: DecisionResult = await workflow.execute_activity(
            names.DECIDE,
            DecisionRequest(
                customer_id=self.input.customer_id,
                placement=placement,
                limit=limit,
                event=self.input.trigger.scope(),
                last_event=self._last.scope() if self._last else None,
                context=self._context,
                at=workflow.now(),
                key=f"{info.workflow_id}/{info.run_id}/{step}",
            ),
            result_type=DecisionResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOOKUP_RETRY,
        )
        self._context.setdefault("decisions", {})[step] = result.for_context()
        return bool(result.offers)


@workflow.defn(name="SubscriptionRenewalByHand")
class SubscriptionRenewalByHand(ByHand):
    """Scenario 3: in-app at seven days left, email and push at three, WhatsApp on the last
    day to those who opted in; service messages (transactional)."""

    JOURNEY, FIRST, GOAL, PRIORITY = "renewal-by-hand", "mark", "subscription.renewed", 10
    EXITS = frozenset({"subscription.cancelled"})

    @workflow.run
    async def run(self, input: HandInput) -> str:
        self._input = input
        await workflow.execute_activity(
            names.UPDATE_PROFILE,
            ProfileUpdate(customer_id=input.customer_id, lifecycle_stage="renewal_due"),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LOOKUP_RETRY,
        )
        await self._send("in-app", "in_app", "renewal-in-app", topic="transactional")
        self._step("wait-3-days-left")
        if ended := await self._ends_within(4 * DAY):
            return ended
        await self._send("email", "email", "renewal-email", topic="transactional")
        await self._send("push", "push", "renewal-push", topic="transactional")
        self._step("wait-last-day")
        if ended := await self._ends_within(2 * DAY):
            return ended
        view = await self._profile("opted-in", "profile.consent.whatsapp")
        if view.get("consent", {}).get("whatsapp") is True:
            await self._send("whatsapp", "whatsapp", "renewal-whatsapp", topic="transactional")
        return self._end("completed", step="done")


WELCOME_PATHS = [
    SplitPath(name="in-app", weight=45, next="free-in-app"),
    SplitPath(name="email", weight=45, next="free-email"),
    SplitPath(name="holdout", weight=10, next="done"),
]


@workflow.defn(name="WelcomeSeriesByHand")
class WelcomeSeriesByHand(ByHand):
    """A welcome email for Pro sign-ups; free sign-ups split in-app, email or holdout."""

    JOURNEY, FIRST, GOAL = "welcome-by-hand", "settle", "first_project.created"

    @workflow.run
    async def run(self, input: HandInput) -> str:
        self._input = input
        if ended := await self._ends_within(timedelta(minutes=10)):
            return ended
        view = await self._profile("plan", "profile.attributes.plan")
        if view.get("attributes", {}).get("plan") == "pro":
            await self._send("pro-email", "email", "welcome-pro")
        else:
            path = choose(WELCOME_PATHS, bucket(self.JOURNEY, "channel-test", input.customer_id))
            if path.name != "holdout":
                channel = "in_app" if path.name == "in-app" else "email"
                await self._send(path.next, channel, "welcome-free")
        return self._end("completed", step="done")


@workflow.defn(name="DirectDebitByHand")
class DirectDebitByHand(ByHand):
    """Scenario 4: an in-app prompt, and one reminder after two weeks without a direct
    debit."""

    JOURNEY, FIRST, GOAL = "direct-debit-by-hand", "prompt", "direct_debit.set_up"
    EXITS = frozenset()

    @workflow.run
    async def run(self, input: HandInput) -> str:
        self._input = input
        await self._send("prompt", "in_app", "direct-debit-prompt")
        self._step("wait")
        if ended := await self._ends_within(14 * DAY):
            return ended
        await self._send("reminder", "in_app", "direct-debit-reminder")
        return self._end("completed", step="done")


WORKFLOWS: list[type[ByHand]] = [
    OnboardingNudgeByHand,
    CartAbandonmentByHand,
    SubscriptionRenewalByHand,
    WelcomeSeriesByHand,
    DirectDebitByHand,
]


async def serve(task_queue: str) -> None:
    """The hand-written workflows' worker in its own process until SIGTERM, with the
    product's activities (its settings from JOURNEYS_*, as `journeys worker` reads them)."""
    from journeys.activities.egress import shared_client
    from journeys.schemas.settings import Settings
    from journeys.stack.embedded import open_stores, wait_for_temporal
    from journeys.workers.worker import build_worker

    settings = Settings()
    client = await wait_for_temporal(settings)
    stores = await open_stores(settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with shared_client(settings) as http:
        worker = build_worker(
            client, stores, settings, http, task_queue=task_queue, workflows=WORKFLOWS
        )
        async with worker:
            await stop.wait()
    await stores.close()


if __name__ == "__main__":
    # The workflows of the module `bench.handwritten` (passed through the sandbox), not of
    # `__main__`, which it would re-import with everything this file imports.
    from bench.handwritten import serve as serve_module

    asyncio.run(serve_module(sys.argv[1]))
    os._exit(0)  # as `journeys worker` does: a plain exit can abort in the core's threads
