"""Audience entry's side effects: counting and paging an audience, and starting its
enrollments at the run's rate."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.client import Client

from journeys.clients.enrollments import start_enrollment
from journeys.schemas import activities as names
from journeys.schemas.activities import Audiences
from journeys.schemas.audience import (
    AUDIENCE_EVENT,
    AudiencePage,
    AudiencePageRequest,
    Enrolled,
    EnrollRequest,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import Audience
from journeys.storage.audiences import AudienceStore
from journeys.storage.profiles import ProfileStore

COUNT_PAGE = 5000


class AudienceActivities(Audiences):
    def __init__(
        self,
        client: Client,
        audiences: AudienceStore,
        profiles: ProfileStore,
        *,
        task_queue: str,
    ):
        self._client = client
        self._audiences = audiences
        self._profiles = profiles
        self._task_queue = task_queue

    @activity.defn(name=names.AUDIENCE_COUNT)
    async def count(self, audience: Audience) -> int:
        """How many customers the audience holds now (a predicate scans every profile)."""
        if audience.list is not None:
            return await self._audiences.size(audience.list)
        total, cursor = 0, None
        while True:
            ids, cursor = await self._audiences.page(audience, cursor, COUNT_PAGE)
            total += len(ids)
            activity.heartbeat(total)
            if cursor is None:
                return total

    @activity.defn(name=names.AUDIENCE_PAGE)
    async def page(self, request: AudiencePageRequest) -> AudiencePage:
        ids, cursor = await self._audiences.page(request.audience, request.after, request.limit)
        return AudiencePage(customer_ids=ids, next=cursor)

    @activity.defn(name=names.AUDIENCE_ENROLL)
    async def enroll(self, request: EnrollRequest) -> Enrolled:
        """Start each customer's enrollment, paced at `rate_per_second`, in slices of about
        half a second; the heartbeat records how far it got, so a retry resumes there."""
        done, entered, already = 0, 0, 0
        if activity.info().heartbeat_details:
            done, entered, already = activity.info().heartbeat_details[0]
        rate = request.rate_per_second
        slice_size = int(min(500, max(20, rate / 2)))
        ids = request.customer_ids
        began, first = time.monotonic(), done

        async def one(index: int, customer_id: str) -> str:
            delay = began + (index - first) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            trigger = CustomerEvent.create(
                customer_id,
                AUDIENCE_EVENT,
                {"run": request.run},
                message_id=f"{request.run}/{customer_id}",
            )
            return await start_enrollment(
                self._client,
                request.journey,
                request.version,
                trigger,
                task_queue=self._task_queue,
                options=request.options,
                deliver_to_running=False,
                timezone=timezones.get(customer_id),
            )

        while done < len(ids):
            part = ids[done : done + slice_size]
            timezones = await self._profiles.timezones(part)
            outcomes = await asyncio.gather(*(one(done + k, c) for k, c in enumerate(part)))
            entered += outcomes.count("started")
            already += len(part) - outcomes.count("started")
            done += len(part)
            activity.heartbeat((done, entered, already))
        return Enrolled(entered=entered, already=already)
