"""Publishing a journey version: stored, its audience schedule synced, routing refreshed;
undone when Temporal refuses the schedule, so nothing is half published."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeys.schemas.journey import JourneySpec
from journeys.storage.stores import Stores
from journeys.usecases.audience_runs import sync_schedule
from journeys.usecases.routing import EventRouter


class ScheduleRefused(Exception):
    """Temporal refused the journey's audience schedule; the version was withdrawn."""


async def publish(
    spec: JourneySpec,
    key: str | None,
    *,
    stores: Stores,
    events: EventRouter,
    client: Client,
    task_queue: str,
) -> int:
    """Publish `spec` as the journey's next version and return it. A retry with the same
    `key` and spec returns the version the first made (`KeyReused` for another spec).

    Raises:
        ScheduleRefused: Temporal found the schedule invalid (the version is withdrawn).
    """
    previous = await stores.journeys.get(spec.id, None)
    version, created = await stores.journeys.publish(spec, key=key)
    if not created:
        return version
    if spec.entry.schedule or (previous and previous[0].entry.schedule):
        try:
            await sync_schedule(client, spec, version, task_queue)
        except RPCError as err:  # nothing half-published: the version goes again
            await stores.journeys.withdraw(spec.id, version)
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                raise ScheduleRefused(str(err)) from err
            raise
    events.invalidate()
    return version
