"""The in-app inbox that apps read over the API."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schemas.delivery import InboxMessage
from storage.tables import InboxRow


class Inbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def for_customer(self, customer_id: str) -> list[InboxMessage]:
        async with self._sessions() as session:
            query = (
                select(InboxRow)
                .where(InboxRow.customer_id == customer_id)
                .order_by(col(InboxRow.id).desc())
            )
            rows = (await session.exec(query)).all()
            return [InboxMessage.model_validate(r, from_attributes=True) for r in rows]
