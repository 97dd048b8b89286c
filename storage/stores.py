"""One handle on every store, opened from a database URL by the API and the worker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.audiences import AudienceStore
from storage.db import create_tables, make_engine, sessions
from storage.events import EventLog
from storage.inbox import Inbox
from storage.journeys import JourneyStore
from storage.ledger import DeliveryLedger
from storage.offers import OfferStore
from storage.profiles import ProfileStore
from storage.templates import TemplateStore


@dataclass
class Stores:
    engine: AsyncEngine
    journeys: JourneyStore
    templates: TemplateStore
    profiles: ProfileStore
    ledger: DeliveryLedger
    inbox: Inbox
    offers: OfferStore
    events: EventLog
    audiences: AudienceStore

    @classmethod
    async def open(cls, url: str, *, channels: Iterable[str], schema: str | None = None) -> Stores:
        """Connect and create missing tables. `channels` are those sends may name."""
        engine = make_engine(url, schema=schema)
        await create_tables(engine)
        factory = sessions(engine)
        return cls(
            engine=engine,
            journeys=JourneyStore(factory, channels),
            templates=TemplateStore(factory),
            profiles=ProfileStore(factory),
            ledger=DeliveryLedger(factory),
            inbox=Inbox(factory),
            offers=OfferStore(factory),
            events=EventLog(factory),
            audiences=AudienceStore(factory),
        )

    async def close(self) -> None:
        await self.engine.dispose()
