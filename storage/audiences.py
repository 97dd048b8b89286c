"""Audiences: uploaded lists of customer ids, and pages of the customers an audience
selects (a list, or the profiles a predicate matches), in customer-id order so a run can
resume from its last id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.journey import Audience
from journeys.schemas.predicates import evaluate
from journeys.storage.tables import AudienceMemberRow, ProfileRow

CHUNK = 400  # rows per INSERT (two bound parameters each, under SQLite's limit)


class AudienceStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def add(self, audience_id: str, customer_ids: Sequence[str]) -> int:
        """Add customers to a list (ids already in it are kept once); its size after."""
        unique = list(dict.fromkeys(customer_ids))
        async with self._sessions() as session:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            for i in range(0, len(unique), CHUNK):
                rows = [
                    {"audience_id": audience_id, "customer_id": c} for c in unique[i : i + CHUNK]
                ]
                statement = dialect.insert(AudienceMemberRow).values(rows).on_conflict_do_nothing()
                await session.exec(statement)  # type: ignore[call-overload]
            await session.commit()
        return await self.size(audience_id)

    async def size(self, audience_id: str) -> int:
        async with self._sessions() as session:
            query = select(func.count()).where(col(AudienceMemberRow.audience_id) == audience_id)
            return int((await session.exec(query)).one())

    async def page(
        self, audience: Audience, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """The next customers after `after`: (their ids, the cursor to pass next, None
        at the end). A predicate page scans `limit` profiles and may match fewer."""
        async with self._sessions() as session:
            if audience.list is not None:
                query = (
                    select(AudienceMemberRow.customer_id)
                    .where(col(AudienceMemberRow.audience_id) == audience.list)
                    .order_by(col(AudienceMemberRow.customer_id))
                    .limit(limit)
                )
                if after is not None:
                    query = query.where(col(AudienceMemberRow.customer_id) > after)
                ids = list((await session.exec(query)).all())
                return ids, (ids[-1] if len(ids) == limit else None)
            scan = (
                select(ProfileRow.customer_id, ProfileRow.data)
                .order_by(col(ProfileRow.customer_id))
                .limit(limit)
            )
            if after is not None:
                scan = scan.where(col(ProfileRow.customer_id) > after)
            rows = (await session.exec(scan)).all()
        matched = [cid for cid, data in rows if selects(audience, cid, data)]
        return matched, (rows[-1][0] if len(rows) == limit else None)


def selects(audience: Audience, customer_id: str, data: Mapping[str, Any]) -> bool:
    """Whether a stored profile is in a predicate audience (fields are `profile.*`)."""
    return evaluate(audience.where, {"profile": {**data, "customer_id": customer_id}})
