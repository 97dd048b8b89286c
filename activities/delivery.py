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
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Never

from temporalio import activity

from journeys.activities.channels import Channel, Outbound
from journeys.activities.http import Permanent
from journeys.activities.templates import Limits, RenderError, render_off_loop
from journeys.schemas import activities as names
from journeys.schemas import reactions, unsubscribe
from journeys.schemas.activities import Sends, invalid_request
from journeys.schemas.delivery import SendRequest, SendResult
from journeys.schemas.journey import MessageContent
from journeys.schemas.send_decision import Rules
from journeys.schemas.settings import Settings
from journeys.schemas.templating import reads_sends
from journeys.storage.journeys import JourneyStore
from journeys.storage.ledger import DeliveryLedger
from journeys.storage.secrets import tracking_key, unsubscribe_key
from journeys.storage.templates import TemplateStore

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
    ):
        """`journeys`: the catalogue, for the top priority a journey has (a send at it
        skips the arbitration window); without it every capped send waits the window."""
        self._ledger = ledger
        self._journeys = journeys
        self._top: tuple[float, int | None] = (-TOP_PRIORITY_SECONDS, None)
        self._templates = templates
        self._channels = {c.name: c for c in channels}
        self._settings = settings
        self._rules = Rules.of(settings)
        self._key = unsubscribe_key(settings)
        self._tracking_key = tracking_key(settings)
        self._limits = Limits(settings.template_render_seconds, settings.template_max_chars)

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
        )
        try:
            delivered = await channel.deliver(message)
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


def _last_attempt() -> bool:
    """Whether Temporal will not retry this activity again: the ledger must then say
    `failed` itself, or the row would stay `pending` (and count against caps) for good."""
    info = activity.info()
    policy = info.retry_policy
    return policy is not None and 0 < policy.maximum_attempts <= info.attempt
