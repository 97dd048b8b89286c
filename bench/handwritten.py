"""The honest baseline: scenario 1 (the onboarding nudge) written by hand as its own Temporal
workflow, as a team would write it instead of adopting the journey runner. It sends through
the same `journeys.send` activity (ledger, guardrails, channels, the same provider calls),
keeps the same search attributes up to date per step, and runs in a worker process of its
own, as `journeys worker` does. Durations are divided by `scale`, as the product's
`time_scale` divides them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas import activities as names
    from schemas.delivery import SendRequest, SendResult
    from schemas.events import CustomerEvent
    from workflows import search_attributes as sa

SEND_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=8)


class NudgeInput(BaseModel):
    customer_id: str
    trigger: CustomerEvent
    scale: float = 1.0


@workflow.defn(name="OnboardingNudgeByHand")
class OnboardingNudgeByHand:
    """Wait a day for clubs; else a nudge (push, else in-app) at the customer's usual hour;
    wait two more days; else an email. Adding clubs converts at any point."""

    def __init__(self) -> None:
        self._clubs = False

    @workflow.signal(name="event")
    def event(self, event: CustomerEvent) -> None:
        if event.name == "bag.club_added":
            self._clubs = True

    @workflow.run
    async def run(self, input: NudgeInput) -> str:
        if await self._clubs_within(timedelta(days=1) / input.scale):
            return self._end("converted")
        self._step("push")
        await self._send(input, "push", "best_channel", "come-back", timedelta(hours=12))
        self._step("wait-more")
        if await self._clubs_within(timedelta(days=2) / input.scale):
            return self._end("converted")
        self._step("email")
        await self._send(input, "email", "email", "add-your-clubs", None)
        return self._end("completed", step="done")

    async def _clubs_within(self, timeout: timedelta) -> bool:
        try:
            await workflow.wait_condition(lambda: self._clubs, timeout=timeout)
            return True
        except TimeoutError:
            return False

    async def _send(
        self,
        input: NudgeInput,
        step: str,
        channel: str,
        template: str,
        best_within: timedelta | None,
    ) -> SendResult:
        info = workflow.info()
        while True:
            result: SendResult = await workflow.execute_activity(
                names.SEND,
                SendRequest(
                    idempotency_key=f"{info.workflow_id}/{info.run_id}/{step}",
                    journey_id="onboarding-by-hand",
                    version=1,
                    step_id=step,
                    customer_id=input.customer_id,
                    channel=channel,  # type: ignore[arg-type]
                    fallbacks=["push", "in_app"] if channel == "best_channel" else [],
                    template=template,
                    event=input.trigger,
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

    def _step(self, step: str) -> None:
        workflow.upsert_search_attributes([sa.JOURNEY_STEP.value_set(step)])

    def _end(self, status: str, step: str | None = None) -> str:
        updates = [sa.JOURNEY_STATUS.value_set(status)]
        if step:
            updates.append(sa.JOURNEY_STEP.value_set(step))
        workflow.upsert_search_attributes(updates)
        return status


async def serve(task_queue: str) -> None:
    """The hand-written workflow's worker in its own process until SIGTERM, with the
    product's activities (its settings from JOURNEYS_*, as `journeys worker` reads them)."""
    from activities.egress import shared_client
    from cli.embedded import open_stores, wait_for_temporal
    from schemas.settings import Settings
    from workers.worker import build_worker

    settings = Settings()
    client = await wait_for_temporal(settings)
    stores = await open_stores(settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with shared_client(settings) as http:
        worker = build_worker(
            client, stores, settings, http, task_queue=task_queue, workflows=[OnboardingNudgeByHand]
        )
        async with worker:
            await stop.wait()
    await stores.close()


if __name__ == "__main__":
    # The workflow of the module `bench.handwritten` (passed through the sandbox), not of
    # `__main__`, which it would re-import with everything this file imports.
    from bench.handwritten import serve as serve_module

    asyncio.run(serve_module(sys.argv[1]))
    os._exit(0)  # as `journeys worker` does: a plain exit can abort in the core's threads
