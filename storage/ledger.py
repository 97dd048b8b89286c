"""The delivery ledger: one row per send, unique by idempotency key, and the atomic
reservation that decides whether a send may go out.

`reserve` takes a per-customer lock (a PostgreSQL advisory lock; SQLite's write lock), then
in one transaction: returns the earlier outcome of a settled key, reads the profile, picks
the channel, checks consent, address, quiet hours and every frequency cap, and records the
verdict. A granted send is `pending` and counts against the caps until it settles. With an
arbitration window, a capped send first waits it as `contending`, so that sends racing for
the same customer (one event entering several journeys) are ranked by journey priority,
then by who asked first (`arbitrate`). It does not wait when no rival can outrank it: at
the top priority any journey has, or when the event its timing comes from reached no
other journey that sends marketing messages (`SendRequest.contested`). `settle` records
the outcome in the same transaction as any rows the channel writes (the in-app inbox), so a
retried or replayed send finds the first outcome instead of delivering twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, make_dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import String, bindparam, insert, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.delivery import FINAL, Delivery, SendRequest, SendResult
from journeys.schemas.guardrails import (
    FrequencyCap,
    QuietHours,
    best_hour,
    counted,
    free_at,
    quiet_until,
)
from journeys.schemas.journey import channel_candidates
from journeys.schemas.profile import Profile
from journeys.storage.db import serialize, write_turn
from journeys.storage.profiles import load, stored_profile
from journeys.storage.tables import DeliveryRow, ProfileRow, utcnow

COUNTED = ("pending", "sent")
STALE_CONTENDER = timedelta(seconds=60)


@dataclass(frozen=True)
class Rules:
    """The deployment's guardrails; the journey's own come with each request."""

    caps: Sequence[FrequencyCap] = ()
    quiet_hours: QuietHours | None = None
    arbitration: timedelta = timedelta(0)
    top_priority: int | None = None
    """The highest priority of any journey that sends marketing messages (None: not
    known). A send at it cannot be outranked (ties go to who asked first), so it takes
    no arbitration window."""

    def contends(self, priority: int) -> bool:
        """Whether a capped send of this priority waits the arbitration window."""
        outranked = self.top_priority is None or priority < self.top_priority
        return self.arbitration > timedelta(0) and outranked


@dataclass
class Reservation:
    """`granted`: deliver on `channel`; `contend`: call `arbitrate` after the window;
    `final`: `result` is the outcome (settled now or earlier)."""

    kind: Literal["granted", "contend", "final"]
    profile: Profile
    channel: str | None = None
    result: SendResult | None = None


@dataclass(frozen=True)
class _Cap:
    """A cap and its scope: the whole customer, or one journey's sends (`journey_id`)."""

    cap: FrequencyCap
    journey_id: str | None = None

    def counts(self, slot: _Slot) -> bool:
        scoped = self.journey_id is None or slot.journey_id == self.journey_id
        return scoped and self.cap.applies_to(slot.channel)

    def fits(self, at: datetime, slots: Sequence[_Slot], extra: Sequence[_Slot] = ()) -> bool:
        """Whether one more send fits at `at` beside `slots` (in the window) and `extra`
        (contenders ranked ahead, wherever their clocks are)."""
        used = counted(self.cap, at, [s.at for s in slots if self.counts(s)])
        return used + sum(1 for e in extra if self.counts(e)) + 1 <= self.cap.limit

    def free_at(self, at: datetime, slots: Sequence[_Slot]) -> datetime:
        return free_at(self.cap, at, [s.at for s in slots if self.counts(s)])


@dataclass
class _Slot:
    """One send already holding (or contending for) a cap slot."""

    at: datetime
    channel: str
    journey_id: str
    priority: int
    since: datetime
    key: str

    @classmethod
    def of(cls, row: Any) -> _Slot:
        """From a row of the ledger (`DeliveryRow`, `_Entry`, or a result row)."""
        return cls(
            at=row.reserved_at,  # type: ignore[arg-type]
            channel=row.channel,
            journey_id=row.journey_id,
            priority=row.priority,
            since=row.updated_at,
            key=row.idempotency_key,
        )


def _plain_record(table: type[SQLModel]) -> Any:
    """A dataclass with the table's columns and defaults: the ledger's row as a reservation
    works on it, read and written with Core statements. An ORM object cost more to build
    and to change than the statement that stores it, under the customer's lock. (Type
    checkers see the table class itself: the attributes are the same.)"""
    columns = []
    for name, info in table.model_fields.items():
        if info.default_factory is not None:
            columns.append((name, Any, field(default_factory=info.default_factory)))  # type: ignore[arg-type]
        elif info.is_required():
            columns.append((name, Any, field()))
        else:
            columns.append((name, Any, field(default=info.default)))
    return make_dataclass(f"Plain{table.__name__}", columns, kw_only=True)


if TYPE_CHECKING:
    _Entry = DeliveryRow
else:
    _Entry = _plain_record(DeliveryRow)
_COLUMNS = list(DeliveryRow.__table__.columns)  # type: ignore[attr-defined]
_NAMES = [c.name for c in _COLUMNS]


def _entry_of(found: Any) -> _Entry:
    """A ledger row from a result row of its columns."""
    return _Entry(**{name: getattr(found, name) for name in _NAMES})


def _values(row: _Entry) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _NAMES if name != "id"}


HOLDING_A_SLOT = (
    col(DeliveryRow.status).in_(COUNTED)
    & (col(DeliveryRow.topic) == "marketing")
    & (col(DeliveryRow.reserved_at) > bindparam("since"))
)
"""A marketing send counted in the widest window of the caps (`_since`) ending at a
moment (or recorded later: see `schemas.guardrails.counted`): the one definition both
reads use."""


def _since(at: datetime, caps: Sequence[_Cap]) -> datetime:
    return at - max(c.cap.window for c in caps)


def _reading(slots: bool) -> Any:
    """The reservation's one read (`DeliveryLedger._read`): built once, with bound
    parameters (`customer`, `key`, `since`), so that a call builds no statement."""
    me = select(bindparam("customer", type_=String).label("id")).subquery("me")
    wanted = col(DeliveryRow.idempotency_key) == bindparam("key")
    return (
        select(col(ProfileRow.data).label("profile"), *_COLUMNS)
        .select_from(me)
        .outerjoin(ProfileRow, col(ProfileRow.customer_id) == me.c.id)
        .outerjoin(
            DeliveryRow,
            (col(DeliveryRow.customer_id) == me.c.id)
            & (or_(wanted, HOLDING_A_SLOT) if slots else wanted),
        )
    )


_READ = {slots: _reading(slots) for slots in (False, True)}
_ROW = select(*_COLUMNS).where(col(DeliveryRow.idempotency_key) == bindparam("key"))
_INSERT = insert(DeliveryRow).returning(col(DeliveryRow.id))
_UPDATE = update(DeliveryRow).where(col(DeliveryRow.id) == bindparam("row_id"))


class DeliveryLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    # -- the reservation ------------------------------------------------------------------

    async def reserve(self, request: SendRequest, rules: Rules) -> Reservation:
        """Four statements (a bare insert takes two): the customer's lock, one read of
        the profile with the key's row and the customer's counted sends, the write, the
        commit. The channel and the caps that apply are worked out from that read."""
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"customer:{request.customer_id}")
            at = request.at or utcnow()
            profile, row, slots = await self._read(session, request, at, rules)
            candidates = channel_candidates(
                request.channel, request.fallbacks, profile.preferred_channel
            )
            channel, refusal = profile.reachable(candidates, request.topic)
            counted = channel is not None and request.topic == "marketing"
            caps = self._caps(request, rules, channel) if counted and channel else []
            if row is not None and row.status in FINAL:  # settled earlier: its first outcome
                return Reservation("final", profile, row.channel, self._result(row))
            if row is not None and row.status == "pending":  # granted before; a retry
                row.attempts += 1
                return await self._commit(
                    session, row, Reservation("granted", profile, row.channel)
                )
            if row is None:
                row = self._new_row(request)
            else:
                row.attempts += 1
            if request.abandon:
                return await self._finish(session, row, profile, "suppressed", "ended")
            if channel is None:
                return await self._finish(session, row, profile, "suppressed", refusal)
            row.channel = channel
            if request.dry_run:
                return await self._finish(session, row, profile, "suppressed", "dry_run")
            if request.best_time_within is not None:  # send-time optimisation: no extra call
                best = best_hour(profile.active_hours, at, request.best_time_within)
                if best > at:
                    return await self._defer(session, row, profile, request, best, "best_time")
            if request.topic == "transactional":
                return await self._grant(session, row, profile, request)

            quiet = request.quiet_hours or rules.quiet_hours
            held = quiet is not None and quiet.applies_to(channel)
            until = quiet_until(quiet, at, profile.timezone) if held else None
            if until is not None:
                return await self._defer(session, row, profile, request, until, "quiet_hours")

            blocked = [c for c in caps if not c.fits(at, slots)]
            if blocked:
                return await self._capped(session, row, profile, request, at, blocked, slots)
            if caps and rules.contends(request.priority) and request.contested():
                row.status, row.reserved_at, row.updated_at = "contending", at, utcnow()
                return await self._commit(session, row, Reservation("contend", profile, channel))
            return await self._grant(session, row, profile, request)

    async def arbitrate(self, request: SendRequest, rules: Rules) -> Reservation:
        """Decide a contending send: it gets a slot when the sends already counted plus the
        contenders ranked above it (priority, then who asked first) leave one free."""
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"customer:{request.customer_id}")
            row = await self._row(session, request.idempotency_key)
            if row is not None and row.status == "contending":
                profile = (await load(session, request.customer_id))[1]
                at = request.at or utcnow()
                caps = self._caps(request, rules, row.channel)
                slots = await self._slots(session, request, at, caps)
                mine = (-request.priority, row.updated_at, row.idempotency_key)
                ahead = [
                    c
                    for c in await self._contenders(session, request)
                    if (-c.priority, c.since, c.key) < mine
                ]
                blocked = [c for c in caps if not c.fits(at, slots, ahead)]
                if blocked:
                    return await self._capped(session, row, profile, request, at, blocked, slots)
                return await self._grant(session, row, profile, request)
        # Decided meanwhile (a retry of this send took it over): its outcome, as reserved.
        return await self.reserve(request, rules)

    # -- settling and reading -------------------------------------------------------------

    async def settle(
        self,
        key: str,
        result: SendResult,
        content: dict[str, Any] | None = None,
        rows: Sequence[SQLModel] = (),
        provider: tuple[str | None, str | None] = (None, None),
    ) -> SendResult:
        """Record the outcome, atomically with `rows` the channel needs written, and the
        provider's (message id, status)."""
        async with write_turn(self._sessions), self._sessions() as session:
            row = await self._row(session, key)
            if row is None:
                raise RuntimeError(f"delivery {key} was never reserved")
            row.status, row.reason, row.updated_at = result.status, result.reason, utcnow()
            if content is not None:
                row.content = content
            if provider != (None, None):
                row.provider_id, row.provider_status = provider
            await self._write(session, row)
            session.add_all(rows)
            await session.commit()
            return result.model_copy(update={"delivery_id": row.id, "channel": row.channel})

    async def provider_update(self, provider_id: str, status: str, detail: str | None) -> bool:
        """A provider's later word on a message (a delivery receipt); False if unknown."""
        async with self._sessions() as session:
            query = select(DeliveryRow).where(DeliveryRow.provider_id == provider_id)
            row = (await session.exec(query)).first()
            if row is None:
                return False
            row.provider_status = f"{status} ({detail})" if detail else status
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
            return True

    async def for_customer(self, customer_id: str) -> list[Delivery]:
        async with self._sessions() as session:
            query = (
                select(DeliveryRow)
                .where(DeliveryRow.customer_id == customer_id)
                .order_by(col(DeliveryRow.id))
            )
            rows = (await session.exec(query)).all()
            return [Delivery.model_validate(r, from_attributes=True) for r in rows]

    async def step_counts(self, journey_id: str, version: int) -> list[tuple[str, str, str, int]]:
        """(step, status, reason, sends) for a journey version: the funnel's send figures."""
        async with self._sessions() as session:
            query = (
                select(
                    DeliveryRow.step_id,
                    DeliveryRow.status,
                    DeliveryRow.reason,
                    func.count(col(DeliveryRow.id)),
                )
                .where(DeliveryRow.journey_id == journey_id, DeliveryRow.version == version)
                .group_by(
                    col(DeliveryRow.step_id), col(DeliveryRow.status), col(DeliveryRow.reason)
                )
            )
            rows = (await session.exec(query)).all()
            return [(step, status, reason or "", n) for step, status, reason, n in rows]

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    async def _row(session: AsyncSession, key: str) -> _Entry | None:
        found = (await (await session.connection()).execute(_ROW, {"key": key})).first()
        return _entry_of(found) if found is not None else None

    @staticmethod
    def _new_row(request: SendRequest) -> _Entry:
        return _Entry(
            idempotency_key=request.idempotency_key,
            customer_id=request.customer_id,
            journey_id=request.journey_id,
            version=request.version,
            step_id=request.step_id,
            channel=request.channel,
            topic=request.topic,
            priority=request.priority,
            status="pending",
            attempts=1,
        )

    @staticmethod
    def _caps(request: SendRequest, rules: Rules, channel: str | None) -> list[_Cap]:
        """The caps on `channel` (None: on any channel)."""
        scoped = [_Cap(c) for c in rules.caps]
        scoped += [_Cap(c, request.journey_id) for c in request.journey_caps]
        return [c for c in scoped if channel is None or c.cap.applies_to(channel)]

    @classmethod
    async def _read(
        cls, session: AsyncSession, request: SendRequest, at: datetime, rules: Rules
    ) -> tuple[Profile, _Entry | None, list[_Slot]]:
        """The profile, the key's row, and the marketing sends holding a slot in the
        widest window of any cap (as `_slots` finds them; which caps apply depends on the
        channel, which depends on the profile), in one statement: the customer, joined to
        their profile and to those rows."""
        key, caps = request.idempotency_key, cls._caps(request, rules, None)
        params: dict[str, Any] = {"customer": request.customer_id, "key": key}
        if caps:
            params["since"] = _since(at, caps)
        query = _READ[bool(caps)]
        found = (await (await session.connection()).execute(query, params)).all()
        profile = stored_profile(request.customer_id, found[0].profile)
        rows = [r for r in found if r.id is not None]
        row = next((_entry_of(r) for r in rows if r.idempotency_key == key), None)
        return profile, row, [_Slot.of(r) for r in rows if r.idempotency_key != key]

    async def _slots(
        self,
        session: AsyncSession,
        request: SendRequest,
        at: datetime,
        caps: Sequence[_Cap],
    ) -> list[_Slot]:
        """Marketing sends holding a slot in the widest cap window ending at `at` (or
        recorded later: see `schemas.guardrails.counted`)."""
        if not caps:
            return []
        query = select(DeliveryRow).where(
            DeliveryRow.customer_id == request.customer_id,
            HOLDING_A_SLOT,
            DeliveryRow.idempotency_key != request.idempotency_key,
        )
        found = await session.exec(query, params={"since": _since(at, caps)})
        return [_Slot.of(r) for r in found.all()]

    async def _contenders(self, session: AsyncSession, request: SendRequest) -> list[_Slot]:
        """Other sends for this customer waiting to be arbitrated (not stale)."""
        query = select(DeliveryRow).where(
            DeliveryRow.customer_id == request.customer_id,
            DeliveryRow.status == "contending",
            DeliveryRow.idempotency_key != request.idempotency_key,
            col(DeliveryRow.updated_at) > utcnow() - STALE_CONTENDER,
        )
        return [_Slot.of(r) for r in (await session.exec(query)).all()]

    async def _capped(
        self,
        session: AsyncSession,
        row: _Entry,
        profile: Profile,
        request: SendRequest,
        at: datetime,
        blocked: Sequence[_Cap],
        slots: Sequence[_Slot],
    ) -> Reservation:
        if request.when_capped == "defer":
            until = max(c.free_at(at, slots) for c in blocked)
            return await self._defer(session, row, profile, request, until, "capped")
        return await self._finish(session, row, profile, "suppressed", "capped")

    async def _defer(
        self,
        session: AsyncSession,
        row: _Entry,
        profile: Profile,
        request: SendRequest,
        until: datetime,
        reason: str,
    ) -> Reservation:
        if request.deadline is not None and until > request.deadline:
            return await self._finish(session, row, profile, "suppressed", reason)
        return await self._finish(session, row, profile, "deferred", reason, until=until)

    async def _grant(
        self, session: AsyncSession, row: _Entry, profile: Profile, request: SendRequest
    ) -> Reservation:
        row.status, row.reason, row.until = "pending", None, None
        row.reserved_at, row.updated_at = request.at or utcnow(), utcnow()
        return await self._commit(session, row, Reservation("granted", profile, row.channel))

    async def _finish(
        self,
        session: AsyncSession,
        row: _Entry,
        profile: Profile,
        status: str,
        reason: str,
        until: datetime | None = None,
    ) -> Reservation:
        row.status, row.reason, row.until, row.updated_at = status, reason, until, utcnow()
        result = SendResult(status=status, reason=reason, channel=row.channel, until=until)  # type: ignore[arg-type]
        return await self._commit(session, row, Reservation("final", profile, row.channel, result))

    @classmethod
    async def _commit(cls, session: AsyncSession, row: _Entry, outcome: Reservation) -> Reservation:
        await cls._write(session, row)
        await session.commit()  # the customer lock serialises every attempt at one key
        if outcome.result is not None:
            outcome.result.delivery_id = row.id
        return outcome

    @staticmethod
    async def _write(session: AsyncSession, row: _Entry) -> None:
        """Insert the row (it gets its id) or update it, in the session's transaction."""
        connection, values = await session.connection(), _values(row)
        if row.id is None:
            row.id = (await connection.execute(_INSERT, values)).scalar_one()
        else:
            await connection.execute(_UPDATE, values | {"row_id": row.id})

    @staticmethod
    def _result(row: _Entry) -> SendResult:
        return SendResult(
            status=row.status,  # type: ignore[arg-type]
            reason=row.reason,
            delivery_id=row.id,
            channel=row.channel,
            until=row.until,
        )
