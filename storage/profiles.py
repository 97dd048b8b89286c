"""Customer profiles, stored whole as JSON keyed by customer id."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from schemas.profile import Profile
from storage.tables import ProfileRow, utcnow


class ProfileStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def put(self, profile: Profile) -> None:
        data = profile.model_dump(mode="json", exclude={"customer_id"})
        async with self._sessions() as session:
            row = await session.get(ProfileRow, profile.customer_id)
            if row is None:
                session.add(ProfileRow(customer_id=profile.customer_id, data=data))
            else:
                row.data, row.updated_at = data, utcnow()
                session.add(row)
            await session.commit()

    async def get(self, customer_id: str) -> Profile | None:
        async with self._sessions() as session:
            row = await session.get(ProfileRow, customer_id)
            return Profile(customer_id=customer_id, **row.data) if row else None

    async def get_or_default(self, customer_id: str) -> Profile:
        """Journeys may run for customers the profile service has not heard of yet."""
        return await self.get(customer_id) or Profile(customer_id=customer_id)
