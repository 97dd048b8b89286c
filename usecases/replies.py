"""A customer's SMS or WhatsApp reply (Twilio's inbound-message webhook): opt-out and
opt-in keywords change the channel's consent, as carriers require and Twilio's own
Advanced Opt-Out answers them, and every reply is a `message.replied` event with its
body, attributed to the latest message sent to the customer on that channel, so a journey
can wait for "reply YES to confirm"."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from journeys.schemas.events import CustomerEvent
from journeys.schemas.reactions import event_name
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.reactions import react
from journeys.usecases.routing import EventRouter, ingest

STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START = frozenset({"START", "UNSTOP", "YES"})
MAX_BODY = 1600
"""Twilio's longest message body."""

Outcome = Literal["applied", "unknown_sender", "replayed"]


def keyword(body: str) -> str | None:
    """The opt-out or opt-in keyword the body is (the whole body, any case), or None."""
    word = body.strip().upper()
    return word if word in STOP | START else None


async def replied(
    stores: Stores,
    router: EventRouter,
    settings: Settings,
    *,
    sender: str,
    body: str,
    sid: str,
    at: datetime,
) -> Outcome:
    """Apply one inbound message from `sender` (E.164, or `whatsapp:` and E.164)."""
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    customer_id = await stores.profiles.with_phone(sender.removeprefix("whatsapp:"))
    outcome: Outcome = "applied" if customer_id is not None else "unknown_sender"
    if await stores.callbacks.first("twilio", sid, "replied", None, outcome) is None:
        return "replayed"
    router.counts.callback("twilio", outcome)
    if customer_id is None:
        return outcome
    word = keyword(body)
    if word is not None:
        await stores.profiles.set_consent(customer_id, channel, word in START)
    properties = {"body": body[:MAX_BODY], "channel": channel, "keyword": word}
    sent = await stores.ledger.last_sent(customer_id, channel)
    if sent is None:  # a reply to no message of ours: still the customer's event
        event = CustomerEvent(
            customer_id=customer_id,
            name=event_name("replied"),
            properties={**properties, "source": "twilio"},
            timestamp=at,
            message_id=f"reply-{sid}"[:200],
        )
        await ingest([event], router, stores, settings.max_event_bytes, source="reactions")
        return outcome
    limit = settings.max_event_bytes
    await react(
        stores, router, sent, "replied", at,
        max_bytes=limit, source="twilio", distinct=sid, extra=properties,
    )  # fmt: skip
    if word in STOP:
        await react(stores, router, sent, "unsubscribed", at, max_bytes=limit, source="twilio")
    return outcome
