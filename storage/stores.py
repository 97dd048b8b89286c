"""One handle on every store, opened from a database URL by the API and the worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from journeys.schemas.egress import Policy
from journeys.storage import schema as migrations
from journeys.storage.access import AuditLog, KeyStore
from journeys.storage.audiences import AudienceStore
from journeys.storage.callbacks import CallbackLog
from journeys.storage.db import Transactions, checkpoints, make_engine, sessions
from journeys.storage.devices import DeviceSends
from journeys.storage.erase import Erasures
from journeys.storage.events import EventLog
from journeys.storage.inbox import Inbox
from journeys.storage.journeys import JourneyStore
from journeys.storage.ledger import DeliveryLedger
from journeys.storage.offers import OfferStore
from journeys.storage.pace import PaceBook
from journeys.storage.profiles import ProfileStore
from journeys.storage.reactions import ReactionStore
from journeys.storage.splits import SplitDecisions
from journeys.storage.suppressions import SuppressionStore
from journeys.storage.templates import TemplateStore


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
    reactions: ReactionStore
    suppressions: SuppressionStore
    callbacks: CallbackLog
    splits: SplitDecisions
    pace: PaceBook
    devices: DeviceSends
    erasures: Erasures
    audiences: AudienceStore
    keys: KeyStore
    audit: AuditLog
    transactions: Transactions
    _checkpoints: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        channels: Iterable[str],
        schema: str | None = None,
        migrate: bool = True,
        unsubscribe_event: str = "unsubscribed",
        egress: Policy | None = None,
    ) -> Stores:
        """Connect, and migrate the database to this version's schema (`migrate`) or
        check it is there (SchemaBehind). `channels` are those sends may name;
        `unsubscribe_event` the event that withdraws consent (the event log's); `egress` the
        policy a published journey's URLs are judged by."""
        engine = make_engine(url, schema=schema)
        try:
            if migrate:
                await migrations.upgrade(engine)
            else:
                await migrations.check(engine)
        except BaseException:
            await engine.dispose()
            raise
        factory = sessions(engine)
        transactions = Transactions(engine)
        stores = cls(
            engine=engine,
            journeys=JourneyStore(factory, channels, egress),
            templates=TemplateStore(factory),
            profiles=ProfileStore(factory),
            ledger=DeliveryLedger(factory),
            inbox=Inbox(factory),
            offers=OfferStore(factory),
            events=EventLog(transactions, unsubscribe_event),
            reactions=ReactionStore(factory),
            suppressions=SuppressionStore(factory),
            callbacks=CallbackLog(factory),
            splits=SplitDecisions(factory),
            pace=PaceBook(factory),
            devices=DeviceSends(factory),
            erasures=Erasures(factory),
            audiences=AudienceStore(factory),
            keys=KeyStore(factory),
            audit=AuditLog(factory),
            transactions=transactions,
        )
        if engine.dialect.name == "sqlite":
            stores._checkpoints = asyncio.create_task(checkpoints(engine))
        return stores

    async def close(self) -> None:
        await self.reactions.close()
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
        self.transactions.close()
        await self.engine.dispose()
