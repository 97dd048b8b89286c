"""The suppression list, as the provider callbacks and operators change it and the
reservation reads it (in its one statement: `SUPPRESSED`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.suppression import Suppression, normal
from journeys.storage.tables import ProfileRow, SuppressionRow, utcnow


def suppressed(channel: str, field: str) -> Any:
    """The reason the profile's address on `channel` (its `field`) is suppressed, or NULL:
    a correlated scalar subquery on the unique index, for the reservation's read (an
    email address compared case-folded, as `normal` keeps it)."""
    address: Any = col(ProfileRow.data)[field].as_string()
    if channel == "email":
        address = func.lower(address)
    return (
        select(col(SuppressionRow.reason))
        .where(
            col(SuppressionRow.channel) == channel,
            col(SuppressionRow.address) == address,
            col(SuppressionRow.active),
        )
        .scalar_subquery()
        .label(f"suppressed_{channel}")
    )


SUPPRESSED = [
    suppressed("email", "email"),
    suppressed("sms", "phone"),
    suppressed("whatsapp", "phone"),
]
"""The subquery per channel the list covers."""


class SuppressionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def add(
        self,
        channel: str,
        address: str,
        reason: str,
        source: str,
        *,
        detail: str | None = None,
        customer_id: str | None = None,
    ) -> bool:
        """Suppress the address; False when it already was (the first reason stays)."""
        address = normal(channel, address)
        async with self._sessions() as session, session.begin():
            row = await self._get(session, channel, address)
            if row is not None and row.active:
                return False
            row = row or SuppressionRow(
                channel=channel, address=address, reason=reason, source=source
            )
            row.active, row.reason, row.source, row.detail = True, reason, source, detail
            row.customer_id, row.updated_at = customer_id or row.customer_id, utcnow()
            session.add(row)
        return True

    async def soft_bounce(
        self,
        channel: str,
        address: str,
        source: str,
        limit: int,
        *,
        detail: str | None = None,
        customer_id: str | None = None,
    ) -> bool:
        """Count a soft bounce; True when it is the one that suppresses the address."""
        address = normal(channel, address)
        for _ in range(2):  # a first bounce that raced another is counted again
            try:
                async with self._sessions() as session, session.begin():
                    row = await self._get(session, channel, address)
                    if row is not None and row.active:
                        return False
                    row = row or SuppressionRow(
                        channel=channel, address=address, active=False, reason="soft_bounces",
                        source=source, customer_id=customer_id,
                    )  # fmt: skip
                    row.soft_bounces += 1
                    row.detail, row.updated_at = detail, utcnow()
                    row.active = row.soft_bounces >= limit
                    session.add(row)
                    return row.active
            except IntegrityError:
                continue
        return False

    async def delivered(self, channel: str, address: str) -> None:
        """A delivery: the address is alive, its soft-bounce count starts again."""
        address = normal(channel, address)
        async with self._sessions() as session, session.begin():
            row = await self._get(session, channel, address)
            if row is not None and not row.active:
                await session.delete(row)

    async def remove(self, channel: str, address: str) -> bool:
        """Take the address off the list; False when it was not on it."""
        async with self._sessions() as session, session.begin():
            row = await self._get(session, channel, normal(channel, address))
            if row is None:
                return False
            await session.delete(row)
            return bool(row.active)

    async def get(self, channel: str, address: str) -> Suppression | None:
        async with self._sessions() as session:
            row = await self._get(session, channel, normal(channel, address))
            return _public(row) if row is not None and row.active else None

    async def page(
        self, channel: str | None, after: int | None, limit: int
    ) -> tuple[list[Suppression], int | None]:
        """Suppressions in the order they were made, after the row id `after`: a page and
        the id to go on from (None on the last page)."""
        async with self._sessions() as session:
            query = select(SuppressionRow).where(col(SuppressionRow.active))
            if channel is not None:
                query = query.where(SuppressionRow.channel == channel)
            if after is not None:
                query = query.where(col(SuppressionRow.id) > after)
            rows = (
                await session.exec(query.order_by(col(SuppressionRow.id)).limit(limit + 1))
            ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_public(r) for r in rows], (rows[-1].id if more and rows else None)

    @staticmethod
    async def _get(session: AsyncSession, channel: str, address: str) -> SuppressionRow | None:
        query = select(SuppressionRow).where(
            SuppressionRow.channel == channel, SuppressionRow.address == address
        )
        return (await session.exec(query)).first()


def _public(row: SuppressionRow) -> Suppression:
    return Suppression.model_validate(row, from_attributes=True)
