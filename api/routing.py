"""The one way events reach enrollments.

For each event: journeys whose entry matches get a signal-with-start of that customer's
enrollment (a running one just receives the event, so a repeated entry event never creates a
second enrollment); journeys that listen for it (waits, goal, exit) get a signal to that
customer's enrollment, if one is running.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from schemas.enrollment import EnrollmentInput, EnrollmentOptions, enrollment_workflow_id
from schemas.events import CustomerEvent
from schemas.journey import JourneySpec
from schemas.predicates import evaluate
from storage.journeys import JourneyStore
from workflows import search_attributes as sa
from workflows.journey import JourneyWorkflow

REUSE = {
    "never": WorkflowIDReusePolicy.REJECT_DUPLICATE,
    "after_exit": WorkflowIDReusePolicy.ALLOW_DUPLICATE,
}


@dataclass
class Routed:
    """What one event did: journeys entered (started or already running), enrollments
    signalled, and entries refused because the journey does not allow re-entry."""

    message_id: str
    entered: list[str] = field(default_factory=list)
    signalled: list[str] = field(default_factory=list)
    not_reentered: list[str] = field(default_factory=list)


@dataclass
class _Catalog:
    entries: dict[str, list[tuple[JourneySpec, int]]]
    listeners: dict[str, list[str]]
    loaded_at: float


class EventRouter:
    def __init__(
        self,
        client: Client,
        journeys: JourneyStore,
        *,
        task_queue: str,
        refresh_seconds: float = 2.0,
        options: EnrollmentOptions | None = None,
    ):
        self._client = client
        self._journeys = journeys
        self._task_queue = task_queue
        self._refresh = refresh_seconds
        self._options = options or EnrollmentOptions()
        self._catalog: _Catalog | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget the cached catalog (called after a publish in this process)."""
        self._catalog = None

    async def _current(self) -> _Catalog:
        catalog = self._catalog
        if catalog and time.monotonic() - catalog.loaded_at < self._refresh:
            return catalog
        async with self._lock:
            if self._catalog is catalog or self._catalog is None:
                entries: dict[str, list[tuple[JourneySpec, int]]] = defaultdict(list)
                listeners: dict[str, list[str]] = defaultdict(list)
                for spec, version, listening in await self._journeys.latest():
                    entries[spec.entry.event].append((spec, version))
                    for name in listening:
                        listeners[name].append(spec.id)
                self._catalog = _Catalog(dict(entries), dict(listeners), time.monotonic())
            return self._catalog

    async def route_many(self, events: list[CustomerEvent]) -> list[Routed]:
        """Route a batch: in order per customer, customers concurrently."""
        by_customer: dict[str, list[int]] = defaultdict(list)
        for i, event in enumerate(events):
            by_customer[event.customer_id].append(i)
        results: list[Routed | None] = [None] * len(events)

        async def one_customer(indexes: list[int]) -> None:
            for i in indexes:
                results[i] = await self.route(events[i])

        await asyncio.gather(*(one_customer(ix) for ix in by_customer.values()))
        return [r for r in results if r is not None]

    async def route(self, event: CustomerEvent) -> Routed:
        catalog = await self._current()
        routed = Routed(message_id=event.message_id)
        entering = [
            (spec, version)
            for spec, version in catalog.entries.get(event.name, [])
            if evaluate(spec.entry.where, {"event": event.scope()})
        ]
        entered_ids = {spec.id for spec, _ in entering}
        listening = [j for j in catalog.listeners.get(event.name, []) if j not in entered_ids]
        await asyncio.gather(
            *(self._enter(spec, version, event, routed) for spec, version in entering),
            *(self._signal(journey_id, event, routed) for journey_id in listening),
        )
        return routed

    async def _enter(
        self, spec: JourneySpec, version: int, event: CustomerEvent, routed: Routed
    ) -> None:
        try:
            await self._client.start_workflow(
                JourneyWorkflow.run,
                EnrollmentInput(
                    journey=spec,
                    version=version,
                    customer_id=event.customer_id,
                    trigger=event,
                    options=self._options,
                ),
                id=enrollment_workflow_id(spec.id, event.customer_id),
                task_queue=self._task_queue,
                id_reuse_policy=REUSE[spec.reentry],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="event",
                start_signal_args=[event],
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.JOURNEY_ID, spec.id),
                        SearchAttributePair(sa.JOURNEY_VERSION, version),
                        SearchAttributePair(sa.CUSTOMER_ID, event.customer_id),
                        SearchAttributePair(sa.JOURNEY_STEP, spec.steps[0].id),
                        SearchAttributePair(sa.JOURNEY_STATUS, "active"),
                    ]
                ),
                static_summary=f"{spec.name} (v{version}) for customer {event.customer_id}",
                static_details=f"Journey `{spec.id}` version {version}, entered on "
                f"`{event.name}`; first step `{spec.steps[0].id}`.",
            )
            routed.entered.append(spec.id)
        except WorkflowAlreadyStartedError:
            routed.not_reentered.append(spec.id)

    async def _signal(self, journey_id: str, event: CustomerEvent, routed: Routed) -> None:
        handle = self._client.get_workflow_handle(
            enrollment_workflow_id(journey_id, event.customer_id)
        )
        try:
            await handle.signal("event", event)
            routed.signalled.append(journey_id)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # no running enrollment is fine
                raise
