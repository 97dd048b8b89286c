"""The pace book: each paced bucket's next free slot, booked under the bucket's lock so
that the ceiling holds across every worker process (the rule is `schemas.pace.book`).

Why not Temporal's `max_task_queue_activities_per_second`: it paces a whole task queue,
set by whichever worker polled last, while a send's provider is chosen inside its atomic
reservation (best channel, fallbacks, consent) and an SMS pool has a ceiling per number.
A provider queue of its own would cost each send one more activity; a booking is one
short transaction, and a queued send waits on a timer, holding no worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.pace import Booking, QueueView, drain, take
from journeys.storage.db import serialize, write_turn
from journeys.storage.tables import DeliveryRow, PaceRow, utcnow

OPERATOR_SECONDS = 2.0
"""How old this process's copy of the operators' ceilings may be (for unpaced buckets)."""
QUEUED = "queued"
"""The ledger status of a granted send waiting for its paced slot (it holds its cap slot)."""


def queued_reason(bucket: str) -> str:
    """What a queued ledger row says it waits for: the queue views group by it."""
    return f"pace {bucket}"


class PaceBook:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self._operator: tuple[float, dict[str, float]] = (-OPERATOR_SECONDS, {})

    async def book(
        self,
        buckets: Sequence[str],
        limit: Callable[[str], float | None],
        *,
        poll: timedelta,
        ticket: bool = False,
        deadline: datetime | None = None,
        priority: int = 0,
    ) -> Booking | None:
        """The send's turn (`schemas.pace.take`) in whichever of `buckets` (a pool of
        numbers) frees first, at its ceiling (an operator's, else `limit(bucket)`); None
        when none of them is paced. `ticket`: the send is back with its ticket, in the one
        bucket given. `priority`: the journey's (a queued send goes ahead of lower ones)."""
        rates = await self._rates(buckets, limit)
        if not rates:
            return None
        bucket = await self._soonest(list(rates))
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"pace:{bucket}")
            row = await session.get(PaceRow, bucket) or PaceRow(bucket=bucket)
            rate = row.per_second or rates[bucket]
            now = utcnow()
            tails = _tails(row)
            turn = take(
                row.tat,
                tails,
                now,
                rate,
                ticket=ticket,
                poll=poll,
                deadline=deadline,
                priority=priority,
            )
            if (turn.tat, turn.tails) != (row.tat, tails):
                row.tat, row.tail, row.updated_at = turn.tat, turn.tail, now
                row.tails = {str(p): t.isoformat() for p, t in turn.tails.items()}
                session.add(row)
                await session.commit()
            return Booking(turn.kind, bucket, turn.slot, rate)

    async def hold(self, bucket: str, until: datetime) -> None:
        """The provider asked to wait (a 429's Retry-After): no slot before `until`."""
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"pace:{bucket}")
            row = await session.get(PaceRow, bucket) or PaceRow(bucket=bucket)
            row.tat = max(row.tat, until) if row.tat is not None else until
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()

    async def set_limit(self, bucket: str, per_second: float | None) -> None:
        """An operator's ceiling for `bucket` (None: the settings'). A paced bucket's next
        booking on any worker uses it (it is read under the bucket's lock); an unpaced one's
        within `OPERATOR_SECONDS`."""
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"pace:{bucket}")
            row = await session.get(PaceRow, bucket) or PaceRow(bucket=bucket)
            row.per_second, row.updated_at = per_second, utcnow()
            session.add(row)
            await session.commit()
        self._operator = (-OPERATOR_SECONDS, {})

    async def queues(
        self, limit: Callable[[str], float | None], buckets: Sequence[str] = ()
    ) -> list[QueueView]:
        """Every bucket with a row or a queued send (and `buckets`), with its queue."""
        now = utcnow()
        async with self._sessions() as session:
            rows = {r.bucket: r for r in (await session.exec(select(PaceRow))).all()}
            waiting = (
                await session.exec(
                    select(DeliveryRow.reason, func.count(), func.min(DeliveryRow.created_at))
                    .where(DeliveryRow.status == QUEUED)
                    .group_by(DeliveryRow.reason)
                )
            ).all()
            recent = (
                await session.exec(
                    select(DeliveryRow.channel, DeliveryRow.journey_id, func.count())
                    .where(
                        DeliveryRow.status == "sent",
                        col(DeliveryRow.updated_at) > now - timedelta(minutes=1),
                    )
                    .group_by(DeliveryRow.channel, DeliveryRow.journey_id)
                )
            ).all()
        queued = {str(reason).removeprefix("pace "): (n, oldest) for reason, n, oldest in waiting}
        names = sorted(set(rows) | set(queued) | set(buckets))
        views = []
        for name in names:
            row = rows.get(name)
            n, oldest = queued.get(name, (0, None))
            operator = row.per_second if row is not None else None
            views.append(
                QueueView(
                    bucket=name,
                    per_second=operator or limit(name),
                    limit_from="operator" if operator else "settings",
                    waiting=n,
                    oldest_wait_seconds=(now - oldest).total_seconds() if oldest else 0.0,
                    drain_seconds=drain(
                        row.tat if row else None, row.tail if row else None, now
                    ).total_seconds(),
                    sent_last_minute=_sent_in(name, recent),
                )
            )
        return views

    async def _rates(
        self, buckets: Sequence[str], limit: Callable[[str], float | None]
    ) -> dict[str, float]:
        """The paced ones of `buckets`, with their settings' ceilings (an operator's may
        pace a bucket the settings leave unpaced)."""
        rates = {b: r for b in buckets if (r := limit(b)) is not None}
        if len(rates) < len(buckets):
            operator = await self._operator_ceilings()
            rates |= {b: operator[b] for b in buckets if b not in rates and b in operator}
        return rates

    async def _operator_ceilings(self) -> dict[str, float]:
        """Every ceiling an operator set, read at most every `OPERATOR_SECONDS`: an unpaced
        bucket's send (an unpaced webhook, a test stack's providers) costs no query."""
        read_at, found = self._operator
        if time.monotonic() - read_at >= OPERATOR_SECONDS:
            async with self._sessions() as session:
                rows = await session.exec(
                    select(PaceRow).where(col(PaceRow.per_second).is_not(None))
                )
                found = {r.bucket: r.per_second for r in rows.all() if r.per_second}
            self._operator = (time.monotonic(), found)
        return found

    async def _soonest(self, buckets: list[str]) -> str:
        """The bucket of a pool whose next slot comes first (read without a lock: a
        rival's booking meanwhile only makes the pick a little worse)."""
        if len(buckets) == 1:
            return buckets[0]
        async with self._sessions() as session:
            found = await session.exec(select(PaceRow).where(col(PaceRow.bucket).in_(buckets)))
            tats = {
                r.bucket: max(r.tat or r.updated_at, r.tail or r.updated_at) for r in found.all()
            }
        floor = datetime.min.replace(tzinfo=utcnow().tzinfo)
        return min(buckets, key=lambda b: tats.get(b) or floor)


def _tails(row: PaceRow) -> dict[int, datetime]:
    """A bucket's queue ends by priority (a row from before priorities: its one tail)."""
    if row.tails is None:
        return {0: row.tail} if row.tail is not None else {}
    return {int(p): datetime.fromisoformat(t) for p, t in row.tails.items()}


def _sent_in(bucket: str, recent: Sequence[tuple[str, str, int]]) -> int:
    """Sends in the last minute that went through `bucket`: a provider's by channel (all
    of an SMS pool's numbers together), a journey's by journey."""
    if bucket.startswith("journey:"):
        journey = bucket.removeprefix("journey:").split("/")[0]
        return sum(n for _, j, n in recent if j == journey)
    channel = bucket.split(":")[0]
    return sum(n for c, _, n in recent if c == channel)
