"""The one send path: ledger claim, consent, address, render, deliver, settle.

A send is one activity. Its idempotency key makes it exactly-once across retries and
replays: a settled key returns its first outcome, and the in-app inbox row is written in the
same transaction as the ledger entry.
"""

from __future__ import annotations

from collections.abc import Iterable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import Channel, Outbound, PermanentDeliveryError
from activities.templates import RenderError, render
from schemas import activities as names
from schemas.delivery import SendRequest, SendResult
from schemas.journey import MessageContent
from storage.ledger import DeliveryLedger
from storage.profiles import ProfileStore
from storage.templates import TemplateStore


class DeliveryActivities:
    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        profiles: ProfileStore,
        templates: TemplateStore,
        channels: Iterable[Channel],
    ):
        self._ledger = ledger
        self._profiles = profiles
        self._templates = templates
        self._channels = {c.name: c for c in channels}

    @property
    def channel_names(self) -> list[str]:
        return sorted(self._channels)

    @activity.defn(name=names.SEND)
    async def send(self, request: SendRequest) -> SendResult:
        key = request.idempotency_key
        earlier = await self._ledger.claim(request)
        if earlier is not None:
            activity.logger.info("send %s already settled as %s", key, earlier.status)
            return earlier

        channel = self._channels.get(request.channel)
        if channel is None:
            return await self._ledger.settle(
                key, SendResult(status="failed", reason=f"channel {request.channel} unavailable")
            )
        profile = await self._profiles.get_or_default(request.customer_id)
        if not profile.allows(request.channel):
            return await self._ledger.settle(
                key, SendResult(status="suppressed", reason="no_consent")
            )
        address = channel.address(profile)
        if not address:
            return await self._ledger.settle(
                key, SendResult(status="suppressed", reason="no_address")
            )

        content = await self._content(request)
        if content is None:
            return await self._ledger.settle(
                key, SendResult(status="failed", reason=f"template {request.template} not found")
            )
        scope = {
            "profile": profile.scope(),
            "event": request.event.scope(),
            "last_event": request.last_event.scope() if request.last_event else None,
            "context": request.context,
        }
        try:
            rendered = render(content, scope)
        except RenderError as err:
            return await self._ledger.settle(
                key, SendResult(status="failed", reason=f"template error: {err}")
            )
        if request.dry_run:
            return await self._ledger.settle(
                key, SendResult(status="suppressed", reason="dry_run"), content=rendered
            )

        message = Outbound(
            key=key,
            customer_id=request.customer_id,
            journey_id=request.journey_id,
            step_id=request.step_id,
            address=address,
            content=rendered,
        )
        try:
            rows = await channel.deliver(message)
        except PermanentDeliveryError as err:
            await self._ledger.settle(key, SendResult(status="failed", reason=str(err)), rendered)
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err
        return await self._ledger.settle(key, SendResult(status="sent"), rendered, rows)

    async def _content(self, request: SendRequest) -> MessageContent | None:
        if request.content is not None:
            return request.content
        template = await self._templates.get(request.template or "")
        return template.content() if template else None
