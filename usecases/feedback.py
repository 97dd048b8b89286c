"""A provider's word on a message after the hand-off, applied once: the suppression list
and consent change as `schemas.suppression` says, and the message's reaction
(`message.bounced`, ...) goes through the log and router like any other event.

A replayed callback (the provider's event id seen before) changes nothing. One about a
message this deployment does not know still suppresses its address, and is kept for the
operator rather than dropped."""

from __future__ import annotations

from typing import Literal

from journeys.schemas.feedback import Feedback
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.consent import withdraw
from journeys.usecases.reactions import react
from journeys.usecases.routing import EventRouter

Outcome = Literal["applied", "unknown_message", "replayed"]


async def apply(
    feedback: Feedback, stores: Stores, router: EventRouter, settings: Settings
) -> Outcome:
    """Apply one feedback event (see the module)."""
    delivery = feedback.delivery_id
    found = await stores.ledger.sent_message(delivery, in_flight=True) if delivery else None
    sent = found[0] if found is not None and found[0].channel == "email" else None
    outcome: Outcome = "applied" if sent is not None else "unknown_message"
    row = await stores.callbacks.first(
        feedback.source,
        feedback.event_id,
        feedback.kind,
        sent.delivery_id if sent else None,
        outcome,
    )
    if row is None:
        return "replayed"
    try:
        await _effects(feedback, stores, router, settings, sent.customer_id if sent else None)
        if sent is not None:
            extra = {"bounce": feedback.bounce} if feedback.bounce else None
            await react(
                stores, router, sent, feedback.kind, feedback.at,
                max_bytes=settings.max_event_bytes, source=feedback.source, extra=extra,
            )  # fmt: skip
    except BaseException:
        await stores.callbacks.forget_one(row)  # the provider retries: apply it then
        raise
    router.counts.callback(feedback.source, outcome)
    return outcome


async def _effects(
    feedback: Feedback,
    stores: Stores,
    router: EventRouter,
    settings: Settings,
    customer_id: str | None,
) -> None:
    lists = stores.suppressions
    match feedback.kind, feedback.bounce:
        case "bounced", "hard":
            await lists.add(
                "email", feedback.address, "hard_bounce", feedback.source,
                detail=feedback.detail, customer_id=customer_id,
            )  # fmt: skip
        case "bounced", _:
            await lists.soft_bounce(
                "email", feedback.address, feedback.source, settings.soft_bounce_limit,
                detail=feedback.detail, customer_id=customer_id,
            )  # fmt: skip
        case "delivered", _:
            await lists.delivered("email", feedback.address)
        case (("complained" | "unsubscribed"), _) if customer_id is not None:
            # A complaint ends marketing email; transactional mail still goes.
            await withdraw(customer_id, "email", feedback.source, stores, router, settings)
