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
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from journeys.clients.enrollments import Enrollment, start_enrollment
from journeys.schemas.enrollment import EnrollmentOptions
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import JourneySpec
from journeys.schemas.predicates import evaluate
from journeys.storage.erase import CustomerErasing
from journeys.storage.journeys import JourneyStore
from journeys.storage.stores import Stores


@dataclass
class Routed:
    """What one event did: journeys entered (started or already running), enrollments
    signalled, and entries refused because the journey does not allow re-entry."""

    message_id: str
    entered: list[str] = field(default_factory=list)
    signalled: list[str] = field(default_factory=list)
    not_reentered: list[str] = field(default_factory=list)
    duplicate: bool = False


@dataclass
class _Catalog:
    entries: dict[str, list[tuple[JourneySpec, int]]]
    listeners: dict[str, list[str]]
    own_reactions: dict[str, set[str]]
    """By journey: reaction names only its reaction waits take (its own messages')."""
    marketing: set[str]
    """Journeys whose latest version sends marketing messages."""
    loaded_at: float


class Counts:
    """`journeys_events` on /metrics: events the API took, by outcome (accepted: new to
    it; duplicate: a message id it had routed; refused: too large, or for a customer being
    erased; routed: handed to Temporal; entered and signalled: what routing did) and by
    source (`events`, `segment`, or `reactions`); `journeys_reactions` and
    `journeys_provider_callbacks`."""

    def __init__(self, client: Client):
        runtime = client.service_client.config.runtime or Runtime.default()
        self._counter = runtime.metric_meter.create_counter(
            "journeys_events", "Events the API took, by outcome and source"
        )
        self._reactions = runtime.metric_meter.create_counter(
            "journeys_reactions",
            "Reactions to messages, by reaction, channel, machine and whether the first",
        )
        self._callbacks = runtime.metric_meter.create_counter(
            "journeys_provider_callbacks",
            "Provider callback events, by source and outcome (applied, unknown_message)",
        )

    def add(self, outcome: str, n: int, source: str) -> None:
        if n:
            self._counter.add(n, {"outcome": outcome, "source": source})

    def reaction(self, reaction: str, channel: str, *, machine: bool, first: bool) -> None:
        """`journeys_reactions`: every open, click, bounce or reply, repeats too."""
        self._reactions.add(
            1,
            {
                "reaction": reaction,
                "channel": channel,
                "machine": str(machine).lower(),
                "first": str(first).lower(),
            },
        )

    def callback(self, source: str, outcome: str) -> None:
        """`journeys_provider_callbacks`: what each provider callback event came to."""
        self._callbacks.add(1, {"source": source, "outcome": outcome})


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
        self.counts = Counts(client)

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
                marketing: set[str] = set()
                own: dict[str, set[str]] = {}
                for spec, version, listening, own_reactions in await self._journeys.latest():
                    if spec.entry.event is not None:  # audience entries enrol on their own
                        entries[spec.entry.event].append((spec, version))
                    for name in listening:
                        listeners[name].append(spec.id)
                    if own_reactions:
                        own[spec.id] = own_reactions
                    if spec.sends_marketing():
                        marketing.add(spec.id)
                self._catalog = _Catalog(
                    dict(entries), dict(listeners), own, marketing, time.monotonic()
                )
            return self._catalog

    async def route_many(
        self, events: list[CustomerEvent], timezones: dict[str, str] | None = None
    ) -> list[Routed]:
        """Route a batch: in order per customer, customers concurrently; `timezones` (by
        customer) go into the enrollments they start."""
        timezones = timezones or {}
        by_customer: dict[str, list[int]] = defaultdict(list)
        for i, event in enumerate(events):
            by_customer[event.customer_id].append(i)
        results: list[Routed | None] = [None] * len(events)

        async def one_customer(indexes: list[int]) -> None:
            for i in indexes:
                event = events[i]
                results[i] = await self.route(event, timezones.get(event.customer_id))

        await asyncio.gather(*(one_customer(ix) for ix in by_customer.values()))
        return [r for r in results if r is not None]

    async def route(self, event: CustomerEvent, timezone: str | None = None) -> Routed:
        catalog = await self._current()
        routed = Routed(message_id=event.message_id)
        entering = [
            (spec, version)
            for spec, version in catalog.entries.get(event.name, [])
            if evaluate(spec.entry.where, {"event": event.scope()})
        ]
        entered_ids = {spec.id for spec, _ in entering}
        listening = [
            j
            for j in catalog.listeners.get(event.name, [])
            if j not in entered_ids
            and (
                event.name not in catalog.own_reactions.get(j, ())
                or event.properties.get("journey_id") == j
            )
        ]  # a reaction to another journey's message costs no signal where only its own count
        senders = catalog.marketing & (entered_ids | set(listening))
        if len(senders) <= 1:  # no send of another journey can race one it leads to
            event = event.model_copy(update={"contested": False})
        calls = [
            *(self._enter(spec, version, event, routed, timezone) for spec, version in entering),
            *(self._signal(journey_id, event, routed) for journey_id in listening),
        ]
        # Most events reach one journey: awaited in place, not as a task of a gather.
        await (calls[0] if len(calls) == 1 else asyncio.gather(*calls))
        return routed

    async def _enter(
        self,
        spec: JourneySpec,
        version: int,
        event: CustomerEvent,
        routed: Routed,
        timezone: str | None,
    ) -> None:
        outcome = await start_enrollment(
            self._client,
            spec,
            version,
            event,
            task_queue=self._task_queue,
            options=self._options,
            timezone=timezone,
        )
        (routed.not_reentered if outcome == "not_reentered" else routed.entered).append(spec.id)

    async def _signal(self, journey_id: str, event: CustomerEvent, routed: Routed) -> None:
        try:
            await Enrollment.of(self._client, journey_id, event.customer_id).event(event)
            routed.signalled.append(journey_id)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # no running enrollment is fine
                raise


class EventTooLarge(ValueError):
    """An event over the size limit: refused before anything of its batch is stored, so
    no event can become a poison message that Temporal refuses on every retry."""

    def __init__(self, index: int, limit: int):
        super().__init__(f"an event is over {limit} bytes as JSON")
        self.index = index


def check_sizes(batch: list[CustomerEvent], max_bytes: int) -> None:
    for index, event in enumerate(batch):
        if len(event.model_dump_json()) > max_bytes:
            raise EventTooLarge(index, max_bytes)


async def ingest(
    batch: list[CustomerEvent],
    router: EventRouter,
    stores: Stores,
    max_bytes: int,
    source: str = "events",
) -> list[Routed]:
    """Accept a batch exactly once by message id: the profile learns from each new event,
    then every event not yet routed is routed; it returns once Temporal has them all. A
    message id already routed (by this batch or an earlier request) is a `duplicate`.
    Each outcome is counted (`Counts`)."""
    counts = router.counts
    try:
        check_sizes(batch, max_bytes)
        batch, new, pending, timezones = await stores.events.accept(batch)
    except (EventTooLarge, CustomerErasing):
        counts.add("refused", len(batch), source)
        raise
    todo: dict[str, CustomerEvent] = {}
    for event in batch:
        if event.message_id in new or event.message_id in pending:
            todo.setdefault(event.message_id, event)
    counts.add("accepted", len(todo), source)
    routed = {r.message_id: r for r in await router.route_many(list(todo.values()), timezones)}
    await stores.events.routed(list(routed))
    counts.add("routed", len(routed), source)
    counts.add("entered", sum(len(r.entered) for r in routed.values()), source)
    counts.add("signalled", sum(len(r.signalled) for r in routed.values()), source)
    results = []
    for event in batch:
        result = routed.pop(event.message_id, None)
        results.append(result or Routed(message_id=event.message_id, duplicate=True))
    counts.add("duplicate", sum(r.duplicate for r in results), source)
    return results
