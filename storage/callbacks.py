"""Provider callbacks, each event once (by the provider's own event id), and those about
no known message kept for the operator."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.storage.tables import ProviderCallbackRow


class CallbackLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def first(
        self, source: str, event_id: str, kind: str, delivery_id: int | None, outcome: str
    ) -> int | None:
        """Record the event; its row id, or None when it was recorded before (a replay)."""
        row = ProviderCallbackRow(
            source=source, event_id=event_id, kind=kind, delivery_id=delivery_id, outcome=outcome
        )
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            return None
        return row.id

    async def forget_one(self, row_id: int) -> None:
        """Forget an event whose effects failed, so the provider's retry applies them."""
        async with self._sessions() as session, session.begin():
            await session.exec(
                delete(ProviderCallbackRow).where(col(ProviderCallbackRow.id) == row_id)
            )  # type: ignore[call-overload]

    async def unmatched(self, after: int | None, limit: int) -> list[ProviderCallbackRow]:
        """Callbacks about a message this deployment does not know, oldest first."""
        async with self._sessions() as session:
            query = select(ProviderCallbackRow).where(
                ProviderCallbackRow.outcome == "unknown_message"
            )
            if after is not None:
                query = query.where(col(ProviderCallbackRow.id) > after)
            found = await session.exec(query.order_by(col(ProviderCallbackRow.id)).limit(limit))
            return list(found.all())

    async def forget(self, before: datetime) -> int:
        async with self._sessions() as session, session.begin():
            done = await session.exec(  # type: ignore[call-overload]
                delete(ProviderCallbackRow).where(col(ProviderCallbackRow.received_at) < before)
            )
            return int(done.rowcount or 0)
