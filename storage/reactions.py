"""Reactions as counted per message: the first of each kind (a machine's apart) is routed
as an event; repeats only count. Read by the funnel, per send step.

A repeat of a kind this process has counted before is not written at once: repeats are
added up in memory and written together every `FLUSH_SECONDS` (one UPDATE per message
and kind), so a burst of opens costs one write, not one each. Stopping the process
writes what it holds; a crash loses at most that long of repeat counts (never a first,
which is written before its event is routed)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.reactions import Sent
from journeys.storage.tables import DeliveryRow, ReactionRow

FLUSH_SECONDS = 1.0
Kind = tuple[int, str, bool]
"""(delivery, reaction, machine): one row of the table."""
_REPEATS = (
    update(ReactionRow)
    .where(
        col(ReactionRow.delivery_id) == bindparam("d"),
        col(ReactionRow.reaction) == bindparam("r"),
        col(ReactionRow.machine) == bindparam("m"),
    )
    .values(count=col(ReactionRow.count) + bindparam("n"), last_at=bindparam("at"))
)


class ReactionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self._known: dict[Kind, str] = {}  # counted kinds here, and whose
        self._pending: dict[Kind, tuple[int, datetime]] = {}
        self._flushing: asyncio.Task[None] | None = None

    async def count(self, sent: Sent, reaction: str, machine: bool, at: datetime) -> bool:
        """Count one reaction: whether it is the message's first of its kind. A repeat (the
        common case: proxies and people open a message again) of a kind known here is
        added up in memory (see the module); otherwise it is one UPDATE, the first an
        INSERT, and a first that raced another becomes a repeat."""
        if self.held(sent, reaction, machine, at):
            return False
        kind = (sent.delivery_id, reaction, machine)
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[kind] = sent.customer_id
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

    def held(self, sent: Sent, reaction: str, machine: bool, at: datetime) -> bool:
        """Count a repeat of a kind this process has counted, in memory (no I/O); False
        when the kind is not known here (`count` it)."""
        kind = (sent.delivery_id, reaction, machine)
        if kind not in self._known:
            return False
        n, _ = self._pending.get(kind, (0, at))
        self._pending[kind] = (n + 1, at)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_later())
        return True

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Write the repeats held in memory, in one transaction."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        rows = [
            {"d": d, "r": r, "m": m, "n": n, "at": at} for (d, r, m), (n, at) in pending.items()
        ]
        async with self._sessions() as session, session.begin():
            await (await session.connection()).execute(_REPEATS, rows)

    async def close(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        await self.flush()

    def forget_known(self, customer_id: str) -> None:
        """Forget the customer's kinds (their erasure): nothing of theirs is held."""
        self._known = {k: c for k, c in self._known.items() if c != customer_id}
        self._pending = {k: v for k, v in self._pending.items() if k in self._known}

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
        funnel's reaction figures (messages: how many had one; reactions: repeats too,
        those this process holds written first)."""
        await self.flush()
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

    async def variant_counts(
        self, journey_id: str, version: int, step_id: str, reaction: str
    ) -> dict[str, tuple[int, int]]:
        """A content experiment's (messages sent, messages with a person's `reaction`) per
        variant, the variant as the ledger's content keeps it."""
        await self.flush()
        variant = col(DeliveryRow.content)["variant"].as_string()
        step = (
            col(DeliveryRow.journey_id) == journey_id,
            col(DeliveryRow.version) == version,
            col(DeliveryRow.step_id) == step_id,
        )
        async with self._sessions() as session:
            sent = await session.exec(
                select(variant, func.count(col(DeliveryRow.id)))
                .where(*step, col(DeliveryRow.status) == "sent")
                .group_by(variant)
            )
            sends = {str(v): int(n) for v, n in sent.all() if v is not None}
            reacted = await session.exec(
                select(variant, func.count(col(ReactionRow.id)))
                .join(DeliveryRow, col(DeliveryRow.id) == col(ReactionRow.delivery_id))
                .where(*step, col(ReactionRow.reaction) == reaction, ~col(ReactionRow.machine))
                .group_by(variant)
            )
            reactions = {str(v): int(n) for v, n in reacted.all() if v is not None}
        return {v: (n, reactions.get(v, 0)) for v, n in sends.items()}
