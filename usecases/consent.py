"""Withdrawing marketing consent: from the API, an unsubscribe link or a STOP reply."""

from __future__ import annotations

from journeys.schemas.events import CustomerEvent
from journeys.schemas.profile import Profile
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.routing import EventRouter


async def withdraw(
    customer_id: str,
    channel: str | None,
    source: str,
    stores: Stores,
    events: EventRouter,
    settings: Settings,
) -> Profile:
    """Record the unsubscribe, then send the unsubscribe event, so journeys whose
    `exit_when` names it end. Consent is withdrawn before the event is routed.

    Args:
        channel: one channel, or None for every channel.
        source: where the customer asked (`api`, `link`, ...), kept on the event.
    """
    profile = await stores.profiles.unsubscribe(customer_id, channel)
    properties = {"source": source, **({"channel": channel} if channel else {})}
    await events.route(CustomerEvent.create(customer_id, settings.unsubscribe_event, properties))
    return profile
