"""A reaction to a message becomes a customer event: counted per message, the first of its
kind routed through the same log and router as every other event (so a journey waiting for
it moves on), repeats only counted. The tracking routes and provider callbacks call this."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from journeys.schemas.reactions import ONCE, Sent, reaction_event
from journeys.storage.stores import Stores
from journeys.usecases.routing import EventRouter, Routed, ingest


def held(
    stores: Stores, router: EventRouter, sent: Sent, reaction: str, at: datetime, machine: bool
) -> bool:
    """Count a repeat the store knows is one, without I/O (the tracking routes' common
    case, done before the answer returns); False when `react` must count it."""
    if not stores.reactions.held(sent, reaction, machine, at):
        return False
    router.counts.reaction(reaction, sent.channel, machine=machine, first=False)
    return True


async def react(
    stores: Stores,
    router: EventRouter,
    sent: Sent,
    reaction: str,
    at: datetime,
    *,
    max_bytes: int,
    machine: bool = False,
    link: str | None = None,
    source: str = "tracking",
    distinct: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Routed | None:
    """Count the reaction; route it when it is its message's first of its kind (or a kind
    every instance of which is news: a reply). What routing did, or None for a repeat."""
    first = await stores.reactions.count(sent, reaction, machine, at)
    router.counts.reaction(reaction, sent.channel, machine=machine, first=first)
    if not first and reaction in ONCE:
        return None
    event = reaction_event(
        sent,
        reaction,
        at,
        machine=machine,
        link=link,
        source=source,
        distinct=distinct,
        extra=extra,
    )
    [routed] = await ingest([event], router, stores, max_bytes, source="reactions")
    return routed
