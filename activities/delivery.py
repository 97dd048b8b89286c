"""The one send path: reserve (consent, channel, quiet hours, caps), render, deliver, settle.

A send is one activity. Its idempotency key makes it exactly-once across retries and
replays: a settled key returns its first outcome, and the in-app inbox row is written in the
same transaction as the ledger entry. Everything that may stop a send is decided in one
atomic reservation (storage/ledger.py); a send contending for a customer's last cap slots
waits the arbitration window inside this activity, then is decided by journey priority.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Never

from temporalio import activity

from journeys.activities.channels import Channel, Outbound
from journeys.activities.http import Permanent, Throttled
from journeys.activities.templates import Limits, RenderError, render_off_loop
from journeys.schemas import activities as names
from journeys.schemas import reactions, unsubscribe
from journeys.schemas.activities import GiveUp, Sends, invalid_request
from journeys.schemas.delivery import SendRequest, SendResult
from journeys.schemas.journey import MessageContent
from journeys.schemas.pace import PROVIDERS, Booking
from journeys.schemas.send_decision import Rules
from journeys.schemas.settings import Settings
from journeys.schemas.templating import reads_sends
from journeys.storage.journeys import JourneyStore
from journeys.storage.ledger import DeliveryLedger
from journeys.storage.pace import PaceBook, queued_reason
from journeys.storage.secrets import tracking_key, unsubscribe_key
from journeys.storage.tables import utcnow
from journeys.storage.templates import TemplateStore


@dataclass
class Paced:
    """Where a paced send goes: the number it goes from (an SMS pool's), the provider's
    bucket it was paced in, and every slot it booked."""

    booked: dict[str, datetime]
    """Tickets held, by bucket."""
    passed: list[str]
    """Buckets whose turn the send took."""
    provider: str | None = None
    sender: str | None = None
    go: datetime | None = None
    """The send slot it took: the provider call waits for it (right before the call, after
    rendering, so the provider sees the sends as far apart as the slots are)."""
    spacing: float = 0.0
    """The provider bucket's interval, seconds (1 / its ceiling)."""


@dataclass
class Gate:
    """A provider bucket's door in this process: its calls at least one interval apart,
    whenever their slots came (a worker stalled for a moment wakes every send whose slot
    passed at once; through the gate they still reach the provider one interval apart)."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    last: float = float("-inf")


TOP_PRIORITY_SECONDS = 2.0
"""How long the top priority read from the catalogue is kept (the router's refresh)."""


class DeliveryActivities(Sends):
    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        templates: TemplateStore,
        channels: Iterable[Channel],
        settings: Settings,
        journeys: JourneyStore | None = None,
        pace: PaceBook | None = None,
    ):
        """`journeys`: the catalogue, for the top priority a journey has (a send at it
        skips the arbitration window); without it every capped send waits the window.
        `pace`: the pace book that holds providers' ceilings and journeys' paces across
        workers; without it nothing is paced."""
        self._ledger = ledger
        self._pace = pace
        self._journeys = journeys
        self._top: tuple[float, int | None] = (-TOP_PRIORITY_SECONDS, None)
        self._templates = templates
        self._channels = {c.name: c for c in channels}
        self._settings = settings
        self._rules = Rules.of(settings)
        self._key = unsubscribe_key(settings)
        self._tracking_key = tracking_key(settings)
        self._limits = Limits(settings.template_render_seconds, settings.template_max_chars)
        self._gates: dict[str, Gate] = {}

    async def _rules_now(self) -> Rules:
        """The deployment's rules with the catalogue's top priority (read at most every
        TOP_PRIORITY_SECONDS)."""
        if self._journeys is None or self._rules.arbitration <= timedelta(0):
            return self._rules
        read_at, top = self._top
        if time.monotonic() - read_at >= TOP_PRIORITY_SECONDS:
            top = await self._journeys.top_marketing_priority()
            self._top = (time.monotonic(), top)
        return dataclasses.replace(self._rules, top_priority=top)

    @property
    def channel_names(self) -> list[str]:
        return sorted(self._channels)

    @activity.defn(name=names.SEND)
    async def send(self, request: SendRequest) -> SendResult:
        key = request.idempotency_key
        rules = await self._rules_now()
        reservation = await self._ledger.reserve(request, rules)
        while reservation.kind == "contend":
            await asyncio.sleep(rules.arbitration.total_seconds())
            reservation = await self._ledger.arbitrate(request, rules)
        if reservation.kind == "final":
            assert reservation.result is not None
            activity.logger.info("send %s: %s", key, reservation.result.status)
            return reservation.result

        profile = reservation.profile
        assert reservation.channel is not None
        channel = self._channels.get(reservation.channel)
        if channel is None:
            return await self._fail(key, f"channel {reservation.channel} unavailable")
        paced = await self._paced(request, channel.name, reservation.since)
        if isinstance(paced, SendResult):
            return paced
        content = await self._content(request, channel.name, profile.locale)
        if content is None:
            return await self._fail(key, f"template {request.template} not found")
        unsubscribe_url = unsubscribe.link(
            self._settings, self._key, request.customer_id, channel.name
        )
        context = request.context
        if "steps" not in context and reads_sends(content.model_dump(exclude_none=True)):
            earlier = await self._ledger.results_of(request.customer_id, key)
            context = {**context, "steps": earlier}
        scope = {
            "profile": profile.scope(),
            "event": request.event.scope(),
            "last_event": request.last_event.scope() if request.last_event else None,
            "context": context,
            "unsubscribe_url": unsubscribe_url,
        }
        try:
            rendered = await render_off_loop(content, scope, self._limits)
        except RenderError as err:
            return await self._fail(key, f"template {request.template or 'inline'}: {err}")
        links: list[str] = []
        if self._tracks(request, channel.name) and reservation.delivery_id is not None:
            rendered, links = reactions.tracked_email(
                rendered,
                reservation.delivery_id,
                self._tracking_key,
                self._settings.public_url,
                skip={unsubscribe_url},
            )
        message = Outbound(
            key=key,
            customer_id=request.customer_id,
            journey_id=request.journey_id,
            step_id=request.step_id,
            addresses=profile.addresses(channel.name),
            content=rendered,
            unsubscribe_url=unsubscribe_url if request.topic == "marketing" else None,
            delivery_id=reservation.delivery_id,
            sender=paced.sender,
            retry=activity.info().attempt > 1,
            since=reservation.since,
        )
        await self._turn(paced)
        try:
            delivered = await channel.deliver(message)
        except Throttled as err:  # the provider's ceiling: wait as asked, no attempt used
            return await self._throttled(request, paced, err)
        except Permanent as err:
            return await self._fail(key, str(err), rendered)
        except Exception as err:  # worth retrying, unless this was the last attempt
            if _last_attempt():
                reason = f"{err} (gave up after {activity.info().attempt} attempts)"
                return await self._fail(key, reason[:500], rendered)
            raise
        kept: dict[str, Any] = {**rendered, "links": links} if links else dict(rendered)
        if request.variant is not None:
            kept["variant"] = request.variant
        return await self._ledger.settle(
            key,
            SendResult(status="sent"),
            kept,
            delivered.rows,
            (delivered.provider_id, delivered.provider_status),
        )

    async def _paced(
        self, request: SendRequest, channel: str, since: datetime | None
    ) -> SendResult | Paced:
        """Book the send's paced slots, in turn: the journey's (or step's) pace, then
        the provider's ceiling (the SMS number that frees first). A slot further off than
        `pace_poll_seconds` queues the send (the enrollment waits on a timer and comes back
        with its booking); one that would come after the pace's TTL skips it, `expired`.
        Returns that result, or where the send goes, the slot it waits for, and what it
        booked."""
        paced = Paced(booked=dict(request.slots), passed=list(request.passed))
        if self._pace is None:
            return paced
        levels: list[tuple[list[str], Callable[[str], float | None]]] = []
        pace = request.pace
        if pace is not None and request.pace_bucket:
            levels.append(([request.pace_bucket], lambda _: pace.per_minute / 60))
        if channel in PROVIDERS:
            levels.append((self._settings.senders(channel), self._settings.bucket_limit))
        deadline = since + pace.ttl if pace is not None and pace.ttl and since else None
        poll = timedelta(seconds=self._settings.pace_poll_seconds)
        go = utcnow()
        for buckets, limit_of in levels:
            if any(b in paced.passed for b in buckets):
                continue  # its turn was taken when the send last came this far
            held = next((b for b in buckets if b in paced.booked), None)
            booking = await self._pace.book(
                [held] if held else buckets,
                limit_of,
                poll=poll,
                ticket=held is not None,
                deadline=deadline,
                priority=request.priority,
            )
            if booking is None:
                continue
            _measure(booking)
            if booking.kind == "expired":
                ttl = pace.ttl if pace is not None else None
                reason = f"expired: its turn would come after its ttl ({ttl})"
                return await self._expire(request.idempotency_key, reason)
            if booking.kind == "queue":
                paced.booked[booking.bucket] = booking.slot
                return await self._queue(request.idempotency_key, booking.bucket, paced)
            paced.booked.pop(booking.bucket, None)
            paced.passed.append(booking.bucket)
            go = max(go, booking.slot)
            if buckets[0] != request.pace_bucket:
                paced.provider, paced.spacing = booking.bucket, 1 / booking.per_second
        paced.go = go
        if paced.provider and channel in ("sms", "whatsapp"):
            paced.sender = paced.provider.partition(":")[2] or None
        return paced

    async def _turn(self, paced: Paced) -> None:
        """Wait for the send's slot, then through its provider bucket's gate."""
        if paced.go is not None and (wait := (paced.go - utcnow()).total_seconds()) > 0:
            await asyncio.sleep(wait)
        if paced.provider is None or paced.spacing <= 0:
            return
        gate = self._gates.setdefault(paced.provider, Gate())
        async with gate.lock:
            if (wait := gate.last + paced.spacing - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            gate.last = time.monotonic()

    async def _queue(self, key: str, bucket: str, paced: Paced) -> SendResult:
        reason, slot = queued_reason(bucket), paced.booked[bucket]
        await self._ledger.queue(key, reason, slot)
        wait = max(slot - utcnow(), timedelta(0))
        activity.logger.info("send %s: queued %.1f s for %s", key, wait.total_seconds(), bucket)
        return SendResult(
            status="deferred", reason=reason, wait=wait, slots=paced.booked, passed=paced.passed
        )

    async def _expire(self, key: str, reason: str) -> SendResult:
        return await self._ledger.settle(key, SendResult(status="suppressed", reason=reason))

    async def _throttled(self, request: SendRequest, paced: Paced, err: Throttled) -> SendResult:
        """The provider said wait: every worker's next slot in its bucket waits with this
        send, which is queued with a ticket for the first slot after the wait."""
        until = utcnow() + timedelta(seconds=err.retry_after)
        bucket = paced.provider
        slots, passed = dict(paced.booked), [b for b in paced.passed if b != bucket]
        if bucket is not None and self._pace is not None:
            await self._pace.hold(bucket, until)
            slots[bucket] = until
        reason = f"throttled by {bucket or 'the provider'}"
        await self._ledger.queue(request.idempotency_key, reason, until)
        wait = timedelta(seconds=err.retry_after)
        return SendResult(status="deferred", reason=reason, wait=wait, slots=slots, passed=passed)

    @activity.defn(name=names.GIVE_UP)
    async def give_up(self, request: GiveUp) -> SendResult:
        """The workflow's word that a send's activity gave up (its last attempt timed out):
        settle its ledger row, or learn the outcome it reached after all."""
        found = await self._ledger.give_up(request.idempotency_key, request.status, request.reason)
        if found is None:
            return SendResult(status="failed", reason=request.reason)
        return found

    def _tracks(self, request: SendRequest, channel: str) -> bool:
        """Whether this message gets an open pixel and tracked links: an email, with the
        deployment's tracking and the journey's on."""
        return channel == "email" and self._settings.tracking and request.tracking

    async def _fail(self, key: str, reason: str, rendered: dict[str, str] | None = None) -> Never:
        """Record a failure that retrying cannot mend, then fail the activity for good: the
        enrollment takes the step's `on_failed` edge, the ledger says why."""
        await self._ledger.settle(key, SendResult(status="failed", reason=reason), rendered)
        raise invalid_request(reason)

    async def _content(
        self, request: SendRequest, channel: str, locale: str | None
    ) -> MessageContent | None:
        if request.content is not None:
            return request.content
        template = await self._templates.get(request.template or "")
        return template.content(channel, locale) if template else None


def _measure(booking: Booking) -> None:
    """A paced bucket's queue, as Prometheus sees it (the SDK's metrics): how long until
    this booking's slot (the queue's drain time), the sends booked ahead, the ceiling."""
    meter, labels = activity.metric_meter(), {"bucket": booking.bucket}
    ahead = max((booking.slot - utcnow()).total_seconds(), 0.0)
    meter.create_gauge_float(
        "journey_pace_drain_seconds", "Seconds until a paced queue's last booked slot"
    ).set(ahead, labels)
    meter.create_gauge_float(
        "journey_pace_backlog", "Sends booked ahead in a paced queue (waiting their slot)"
    ).set(ahead * booking.per_second, labels)
    meter.create_gauge_float(
        "journey_pace_ceiling_per_second", "A paced queue's ceiling, sends a second"
    ).set(booking.per_second, labels)
    meter.create_counter("journey_pace_booked", "Paced slots booked").add(1, labels)


def _last_attempt() -> bool:
    """Whether Temporal will not retry this activity again: the ledger must then say
    `failed` itself, or the row would stay `pending` (and count against caps) for good."""
    info = activity.info()
    policy = info.retry_policy
    return policy is not None and 0 < policy.maximum_attempts <= info.attempt
