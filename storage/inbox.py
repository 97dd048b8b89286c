"""The in-app inbox that apps read over the API."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.delivery import InboxMessage
from journeys.storage.tables import InboxRow, utcnow


class Inbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def for_customer(self, customer_id: str) -> list[InboxMessage]:
        """Messages not dismissed, newest first."""
        async with self._sessions() as session:
            query = (
                select(InboxRow)
                .where(InboxRow.customer_id == customer_id, col(InboxRow.dismissed_at).is_(None))
                .order_by(col(InboxRow.id).desc())
            )
            rows = (await session.exec(query)).all()
            return [InboxMessage.model_validate(r, from_attributes=True) for r in rows]

    async def key_of(self, message_id: int) -> str | None:
        """The message's delivery key: its ledger row's idempotency key."""
        async with self._sessions() as session:
            row = await session.get(InboxRow, message_id)
            return row.delivery_key if row is not None else None

    async def mark(
        self, customer_id: str, message_id: int, what: Literal["read", "dismissed"]
    ) -> InboxMessage | None:
        """Mark a message read or dismissed (idempotent: the first time is kept)."""
        async with self._sessions() as session:
            row = await session.get(InboxRow, message_id)
            if row is None or row.customer_id != customer_id:
                return None
            now = utcnow()
            row.read_at = row.read_at or now
            if what == "dismissed":
                row.dismissed_at = row.dismissed_at or now
            session.add(row)
            await session.commit()
            return InboxMessage.model_validate(row, from_attributes=True)
