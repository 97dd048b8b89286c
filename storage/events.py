"""The accepted-events log: what makes ingestion idempotent by message id end to end.

An event is claimed (its message id inserted) before it is routed and marked routed after
Temporal has it. A request repeated after that changes nothing, even for an enrollment that
has since ended; a request repeated after a crash in between is routed again, which the
enrollment's own de-dup window absorbs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schemas.events import CustomerEvent
from storage import profiles
from storage.erase import refuse_erasing
from storage.tables import AcceptedEventRow, utcnow

CHUNK = 500  # message ids per statement (SQLite's bound-parameter limit)


class EventLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def accept(
        self, events: Sequence[CustomerEvent], unsubscribe_event: str
    ) -> tuple[list[CustomerEvent], set[str], set[str], dict[str, str]]:
        """Claim the events' message ids and let the profiles learn from the new ones, in
        one transaction: the events, each under the customer it is for (an anonymous id
        merged into a customer stands for them), (new, pending) as `claim` says, and the
        new events' customers' time zones. CustomerErasing (nothing claimed) when one of
        them is being erased."""
        async with self._sessions() as session:
            aliases = await profiles.resolve(session, {e.customer_id for e in events})
            events = [
                e.model_copy(update={"customer_id": aliases[e.customer_id]})
                if e.customer_id in aliases
                else e
                for e in events
            ]
            await refuse_erasing(session, (e.customer_id for e in events))
            new, pending = await _claim(session, [e.message_id for e in events])
            learned = {e.message_id: e for e in events if e.message_id in new}
            zones = await profiles.observe(session, list(learned.values()), unsubscribe_event)
            await session.commit()
        return list(events), new, pending, zones

    async def claim(self, message_ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """(new, pending): ids never seen before, and ids seen but not yet routed. Every
        other id was routed already and is a duplicate."""
        async with self._sessions() as session:
            claimed = await _claim(session, message_ids)
            await session.commit()
        return claimed

    async def forget(self, routed_before: datetime) -> int:
        """Drop the ids routed before `routed_before` (producers retry for hours, not
        weeks); ids claimed but never routed stay, so their retry is still routed."""
        async with self._sessions() as session:
            connection = await session.connection()
            result = await connection.execute(
                delete(AcceptedEventRow).where(col(AcceptedEventRow.routed_at) < routed_before)
            )
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

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


async def _claim(session: AsyncSession, message_ids: Sequence[str]) -> tuple[set[str], set[str]]:
    wanted = list(dict.fromkeys(message_ids))
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
    return set(new), {m for m, routed in known.items() if routed is None}


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
