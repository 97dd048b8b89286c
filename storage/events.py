"""The accepted-events log: what makes ingestion idempotent by message id end to end.

An event is claimed (its message id inserted) before it is routed and marked routed after
Temporal has it. A request repeated after that changes nothing, even for an enrollment that
has since ended; a request repeated after a crash in between is routed again, which the
enrollment's own de-dup window absorbs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.tables import AcceptedEventRow, utcnow

CHUNK = 500  # message ids per statement (SQLite's bound-parameter limit)


class EventLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def claim(self, message_ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """(new, pending): ids never seen before, and ids seen but not yet routed. Every
        other id was routed already and is a duplicate."""
        wanted = list(dict.fromkeys(message_ids))
        async with self._sessions() as session:
            known: dict[str, datetime | None] = {}
            for chunk in _chunks(wanted):
                query = select(AcceptedEventRow.message_id, AcceptedEventRow.routed_at).where(
                    col(AcceptedEventRow.message_id).in_(chunk)
                )
                known.update((await session.exec(query)).all())
            new = [m for m in wanted if m not in known]
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            now = utcnow()
            for chunk in _chunks(new):
                statement = dialect.insert(AcceptedEventRow).values(
                    [{"message_id": m, "received_at": now} for m in chunk]
                )
                await session.exec(statement.on_conflict_do_nothing())  # type: ignore[call-overload]
            await session.commit()
        return set(new), {m for m, routed in known.items() if routed is None}

    async def routed(self, message_ids: Sequence[str]) -> None:
        async with self._sessions() as session:
            now = utcnow()
            for chunk in _chunks(list(message_ids)):
                await session.exec(  # type: ignore[call-overload]
                    update(AcceptedEventRow)
                    .where(col(AcceptedEventRow.message_id).in_(chunk))
                    .values(routed_at=now)
                )
            await session.commit()

    async def forget_older_than(self, age: timedelta) -> int:
        """Drop ids older than `age` (producers retry for hours, not weeks)."""
        async with self._sessions() as session:
            result = await session.exec(  # type: ignore[call-overload]
                delete(AcceptedEventRow).where(col(AcceptedEventRow.received_at) < utcnow() - age)
            )
            await session.commit()
            return int(result.rowcount or 0)


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
