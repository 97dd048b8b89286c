"""Operators' decisions on bandit splits: frozen weights or a declared winner, read by the
split-weights activity on every refresh."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.storage.tables import SplitDecisionRow


class SplitDecisions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def get(self, journey_id: str, split_id: str) -> SplitDecisionRow | None:
        async with self._sessions() as session:
            return await session.get(SplitDecisionRow, (journey_id, split_id))

    async def of_journey(self, journey_id: str) -> dict[str, SplitDecisionRow]:
        """Each split's decision, by split id."""
        async with self._sessions() as session:
            rows = await session.exec(
                select(SplitDecisionRow).where(col(SplitDecisionRow.journey_id) == journey_id)
            )
            return {r.split_id: r for r in rows}

    async def decide(
        self,
        journey_id: str,
        split_id: str,
        action: str,
        reason: str,
        *,
        weights: list[float] | None = None,
        arm: str | None = None,
    ) -> None:
        """Freeze the weights or declare the winner (replacing an earlier decision)."""
        async with self._sessions() as session, session.begin():
            row = await session.get(SplitDecisionRow, (journey_id, split_id))
            row = row or SplitDecisionRow(
                journey_id=journey_id, split_id=split_id, action=action, reason=reason
            )
            row.action, row.reason, row.weights, row.arm = action, reason, weights, arm
            session.add(row)

    async def release(self, journey_id: str, split_id: str) -> bool:
        """Back to the bandit; False when there was no decision."""
        async with self._sessions() as session, session.begin():
            done = await session.exec(
                delete(SplitDecisionRow).where(
                    col(SplitDecisionRow.journey_id) == journey_id,
                    col(SplitDecisionRow.split_id) == split_id,
                )
            )
            return bool(done.rowcount)
