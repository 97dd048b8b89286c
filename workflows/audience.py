"""`AudienceEntryWorkflow`: enrols an audience into a journey, page by page, at a set rate.

Resumable: the cursor (last customer id handled) and the counts live in the workflow, so a
worker restart continues where it was, and a page's enrollment activity resumes from its
last heartbeat. Idempotent: every enrollment is a signal-with-start of the customer's one
workflow id with a trigger whose message id is (run, customer), so a run repeated or
retried never enrols anyone twice. Cancelling the workflow stops it after the page's
current starts. Deterministic only: pages and starts happen in activities.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from journeys.schemas.activities import Audiences
    from journeys.schemas.audience import (
        AudiencePageRequest,
        AudienceProgress,
        AudienceRunInput,
        EnrollRequest,
    )

PROGRESS_MEMO = "progress"
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


@workflow.defn(name="AudienceEntry")
class AudienceEntryWorkflow:
    @workflow.init
    def __init__(self, input: AudienceRunInput) -> None:
        self._input = input
        self._progress = input.progress or AudienceProgress(
            journey_id=input.journey.id,
            version=input.version,
            started_at=workflow.now(),
            updated_at=workflow.now(),
        )

    @workflow.query(
        name="progress",
        description="How far the run is: done of total, entered, already enrolled, rate, ETA.",
    )
    def progress(self) -> AudienceProgress:
        return self._progress.measured(self._progress.updated_at)

    @workflow.run
    async def run(self, input: AudienceRunInput) -> AudienceProgress:
        p = self._progress
        audience = input.journey.entry.audience
        assert audience is not None, "an audience run needs a journey with an audience entry"
        try:
            if p.total is None:
                self._touch()
                p.total = await workflow.execute_activity_method(
                    Audiences.count,
                    audience,
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=timedelta(minutes=1),
                    retry_policy=RETRY,
                    summary="count the audience",
                )
                p.status = "running"
                self._touch()
            while True:
                if workflow.info().is_continue_as_new_suggested():
                    workflow.continue_as_new(input.model_copy(update={"progress": p}))
                page = await workflow.execute_activity_method(
                    Audiences.page,
                    AudiencePageRequest(audience=audience, after=p.cursor, limit=input.page_size),
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=RETRY,
                    summary=f"page after {p.done}",
                )
                if page.customer_ids:
                    await self._enroll(page.customer_ids)
                p.cursor = page.next
                self._touch()
                if page.next is None:
                    break
            p.status = "completed"
            self._touch()
            return self._progress.measured(p.updated_at)
        except (asyncio.CancelledError, ActivityError) as err:
            if is_cancelled_exception(err):  # the activity in flight reports it, or the run
                p.status = "cancelled"
                self._touch()
            raise

    async def _enroll(self, customer_ids: list[str]) -> None:
        input, p = self._input, self._progress
        expected = timedelta(seconds=len(customer_ids) / input.rate_per_second)
        result = await workflow.execute_activity_method(
            Audiences.enroll,
            EnrollRequest(
                journey=input.journey,
                version=input.version,
                run=workflow.info().workflow_id,
                customer_ids=customer_ids,
                rate_per_second=input.rate_per_second,
                options=input.options,
            ),
            start_to_close_timeout=expected * 3 + timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
            summary=f"enrol {len(customer_ids)} from {customer_ids[0]}",
        )
        p.done += len(customer_ids)
        p.entered += result.entered
        p.already += result.already

    def _touch(self) -> None:
        """Record progress where a reader finds it without asking a worker: the run's memo
        (one history event per page), and its current details in the Temporal UI."""
        p = self._progress
        p.updated_at = workflow.now()
        workflow.upsert_memo({PROGRESS_MEMO: p.measured(p.updated_at)})
        of = f" of {p.total:,}" if p.total is not None else ""
        workflow.set_current_details(
            f"Audience entry into `{self._input.journey.id}`: {p.status}, {p.done:,}{of} "
            f"handled, {p.entered:,} entered"
        )
