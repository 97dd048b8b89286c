"""Event ingestion: one event or a batch, routed to enrollments before the 202 returns."""

from __future__ import annotations

from fastapi import APIRouter, status

from journeys.api.deps import RouterDep, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.api.models import EventBatchIn, EventIn, EventsAccepted, RoutedOut
from journeys.schemas.access import KB, requires
from journeys.usecases import routing

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
@requires("events:write", max_body=500 * KB)
async def accept(
    body: EventIn | EventBatchIn, events: RouterDep, stores: StoresDep, settings: SettingsDep
) -> EventsAccepted:
    """Accept `{"customer_id", "name", ...}` or `{"events": [...]}`. The answer comes once
    every event is durably with Temporal: each lists the journeys it entered and the
    enrollments it signalled. Repeating a `message_id` changes nothing (it comes back as
    `duplicate`). The profile learns from each new event first (activity hours; an
    unsubscribe withdraws marketing consent)."""
    batch = [e.to_event() for e in (body.events if isinstance(body, EventBatchIn) else [body])]
    try:
        routed = await routing.ingest(batch, events, stores, settings.max_event_bytes)
    except routing.EventTooLarge as err:
        where = ("body", "events", err.index) if isinstance(body, EventBatchIn) else ("body",)
        raise problem(413, str(err), *where) from err
    return EventsAccepted(accepted=len(batch), results=[RoutedOut(**vars(r)) for r in routed])
