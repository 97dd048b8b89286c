"""Reactions as counted per message: the first of each kind (a machine's apart) is routed
as an event; repeats only count. Read by the funnel, per send step."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.reactions import Sent
from journeys.storage.tables import ReactionRow


class ReactionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def count(self, sent: Sent, reaction: str, machine: bool, at: datetime) -> bool:
        """Count one reaction: whether it is the message's first of its kind. A repeat (the
        common case: proxies and people open a message again) is one UPDATE; the first is
        an INSERT, and a first that raced another becomes a repeat."""
        if await self._again(sent, reaction, machine, at):
            return False
        row = ReactionRow(
            delivery_id=sent.delivery_id,
            customer_id=sent.customer_id,
            journey_id=sent.journey_id,
            version=sent.version,
            step_id=sent.step_id,
            channel=sent.channel,
            reaction=reaction,
            machine=machine,
            first_at=at,
            last_at=at,
        )
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
            return True
        except IntegrityError:  # the same first, counted meanwhile by another request
            return not await self._again(sent, reaction, machine, at)

    async def _again(self, sent: Sent, reaction: str, machine: bool, at: datetime) -> bool:
        """Count a repeat; False when the message has no reaction of this kind yet."""
        async with self._sessions() as session, session.begin():
            done = await session.exec(  # type: ignore[call-overload]
                update(ReactionRow)
                .where(
                    col(ReactionRow.delivery_id) == sent.delivery_id,
                    col(ReactionRow.reaction) == reaction,
                    col(ReactionRow.machine) == machine,
                )
                .values(count=col(ReactionRow.count) + 1, last_at=at)
            )
            return bool(done.rowcount)

    async def step_counts(
        self, journey_id: str, version: int
    ) -> list[tuple[str, str, bool, int, int]]:
        """(step, reaction, machine, messages, reactions) for a journey version: the
        funnel's reaction figures (messages: how many had one; reactions: repeats too)."""
        async with self._sessions() as session:
            query = (
                select(  # type: ignore[call-overload]
                    ReactionRow.step_id,
                    ReactionRow.reaction,
                    ReactionRow.machine,
                    func.count(col(ReactionRow.id)),
                    func.sum(col(ReactionRow.count)),
                )
                .where(ReactionRow.journey_id == journey_id, ReactionRow.version == version)
                .group_by(
                    col(ReactionRow.step_id), col(ReactionRow.reaction), col(ReactionRow.machine)
                )
            )
            rows = (await session.exec(query)).all()
            return [(s, r, bool(m), int(n), int(total or 0)) for s, r, m, n, total in rows]
