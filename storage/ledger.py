"""The delivery ledger: one row per send, unique by idempotency key, and the atomic
reservation that decides whether a send may go out.

`reserve` takes a per-customer lock (a PostgreSQL advisory lock; SQLite's write lock), then
in one transaction reads one snapshot (the profile, the key's row and the customer's sends
holding a cap slot), asks the pure `schemas.send_decision.decide` for the verdict, and writes
it. A granted send is `pending` and counts against the caps until it settles. A contending
send (`decide` says when) comes back after the arbitration window to `arbitrate`, which
ranks it against its rivals by journey priority, then by who asked first. `settle` records
the outcome in the same transaction as any rows the channel writes (the in-app inbox), so a
retried or replayed send finds the first outcome instead of delivering twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, make_dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import String, bindparam, insert, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.delivery import FINAL, Delivery, SendRequest, SendResult
from journeys.schemas.profile import Profile
from journeys.schemas.reactions import Sent
from journeys.schemas.send_decision import (
    Earlier,
    Rules,
    ScopedCap,
    Slot,
    Snapshot,
    Verdict,
    arbitrate,
    caps_for,
    decide,
)
from journeys.schemas.suppression import SUPPRESSED_CHANNELS
from journeys.storage.db import serialize, write_turn
from journeys.storage.profiles import load, stored_profile
from journeys.storage.suppressions import SUPPRESSED
from journeys.storage.tables import DeliveryRow, ProfileRow, utcnow

COUNTED = ("pending", "queued", "sent", "unknown")
"""The statuses that hold a cap slot: a send that went, may have gone, or is going."""
STALE_CONTENDER = timedelta(seconds=60)


@dataclass
class Reservation:
    """`granted`: deliver on `channel`; `contend`: call `arbitrate` after the window;
    `final`: `result` is the outcome (settled now or earlier)."""

    kind: Literal["granted", "contend", "final"]
    profile: Profile
    channel: str | None = None
    result: SendResult | None = None
    delivery_id: int | None = None
    """The ledger row's id: what a sent message's tracking tokens name."""
    since: datetime | None = None
    """When the send was first asked for (its ledger row made): a paced send's TTL runs
    from it."""


def _slot(row: Any) -> Slot:
    """A cap slot from a row of the ledger (`DeliveryRow`, `_Entry`, or a result row)."""
    return Slot(
        at=row.reserved_at,
        channel=row.channel,
        journey_id=row.journey_id,
        priority=row.priority,
        since=row.updated_at,
        key=row.idempotency_key,
    )


def _sent(row: DeliveryRow) -> Sent:
    """What a reaction to the row's message is attributed to."""
    assert row.id is not None
    return Sent(
        delivery_id=row.id,
        customer_id=row.customer_id,
        journey_id=row.journey_id,
        version=row.version,
        step_id=row.step_id,
        channel=row.channel,
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


def _since(at: datetime, caps: Sequence[ScopedCap]) -> datetime:
    return at - max(c.cap.window for c in caps)


def _reading(slots: bool) -> Any:
    """The reservation's one read (`DeliveryLedger._read`): built once, with bound
    parameters (`customer`, `key`, `since`), so that a call builds no statement."""
    me = select(bindparam("customer", type_=String).label("id")).subquery("me")
    wanted = col(DeliveryRow.idempotency_key) == bindparam("key")
    return (
        select(col(ProfileRow.data).label("profile"), *SUPPRESSED, *_COLUMNS)
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


SentMessage = tuple[Sent, datetime, list[str]]
RECENT_SECONDS = 10.0
"""How long the tracking routes answer from a message they read (`recent_message`)."""
RECENT_KEPT = 10_000


class DeliveryLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self._recent: dict[int, tuple[float, SentMessage]] = {}

    async def recent_message(self, delivery_id: int) -> SentMessage | None:
        """`sent_message`, answered from this process's reads of the last `RECENT_SECONDS`:
        a message's pixel and links are fetched in bursts (a privacy proxy, the person, a
        scanner), and the redirect is on their way. An erasure in this process forgets the
        customer's at once (`forget_recent`); another process's reads age out."""
        now = time.monotonic()
        found = self._recent.get(delivery_id)
        if found is not None and now - found[0] < RECENT_SECONDS:
            return found[1]
        message = await self.sent_message(delivery_id)
        if message is not None:
            if len(self._recent) >= RECENT_KEPT:
                self._recent = {
                    k: v for k, v in self._recent.items() if now - v[0] < RECENT_SECONDS
                }
                if len(self._recent) >= RECENT_KEPT:
                    self._recent.clear()
            self._recent[delivery_id] = (now, message)
        return message

    def forget_recent(self, customer_id: str) -> None:
        """Forget the customer's messages read recently (their erasure)."""
        self._recent = {k: v for k, v in self._recent.items() if v[1][0].customer_id != customer_id}

    # -- the reservation ------------------------------------------------------------------

    async def reserve(self, request: SendRequest, rules: Rules) -> Reservation:
        """Four statements (a bare insert takes two): the customer's lock, one read of
        the profile with the key's row and the customer's counted sends, the write, the
        commit. The channel and the caps that apply are worked out from that read."""
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"customer:{request.customer_id}")
            at = request.at or utcnow()
            profile, row, slots, suppressed = await self._read(session, request, at, rules)
            earlier = Earlier(row.status, row.channel) if row is not None else None
            snapshot = Snapshot(profile, earlier, slots, suppressed)
            verdict = decide(snapshot, request, rules, at)
            if verdict.kind == "earlier":  # settled earlier: its first outcome
                assert row is not None
                return Reservation("final", profile, row.channel, self._result(row))
            if row is None:
                row = self._new_row(request)
            else:
                row.attempts += 1
            return await self._apply(session, row, profile, request, verdict, at)

    async def arbitrate(self, request: SendRequest, rules: Rules) -> Reservation:
        """Decide a contending send: it gets a slot when the sends already counted plus the
        contenders ranked above it (priority, then who asked first) leave one free."""
        async with write_turn(self._sessions), self._sessions() as session:
            await serialize(session, f"customer:{request.customer_id}")
            row = await self._row(session, request.idempotency_key)
            if row is not None and row.status == "contending":
                profile = (await load(session, request.customer_id))[1]
                at = request.at or utcnow()
                caps = caps_for(request, rules, row.channel)
                slots = await self._slots(session, request, at, caps)
                contenders = await self._contenders(session, request)
                verdict = arbitrate(request, rules, at, _slot(row), slots, contenders)
                return await self._apply(session, row, profile, request, verdict, at)
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

    async def queue(self, key: str, reason: str, until: datetime) -> None:
        """A granted send waits for its paced slot: `queued` (still holding its cap slot)."""
        async with write_turn(self._sessions), self._sessions() as session:
            row = await self._row(session, key)
            if row is None or row.status not in ("pending", "queued"):
                return
            row.status, row.reason, row.until, row.updated_at = "queued", reason, until, utcnow()
            await self._write(session, row)
            await session.commit()

    async def give_up(self, key: str, status: str, reason: str) -> SendResult | None:
        """Settle a send whose activity gave up (its last attempt timed out or failed) as
        `status`, unless it settled meanwhile (the timed-out attempt finished after all):
        then its outcome. None: it was never reserved."""
        async with write_turn(self._sessions), self._sessions() as session:
            await session.exec(
                update(DeliveryRow)
                .where(
                    col(DeliveryRow.idempotency_key) == key,
                    col(DeliveryRow.status).not_in(FINAL),
                )
                .values(status=status, reason=reason[:500], updated_at=utcnow())
            )
            row = await self._row(session, key)
            await session.commit()
            return self._result(row) if row is not None else None

    async def sent_message(
        self, delivery_id: int, *, in_flight: bool = False
    ) -> SentMessage | None:
        """A sent message by its ledger id: what a reaction is attributed to, when it was
        sent, and the links it tracks. None when there is no such message (never, not
        sent, or erased with its customer). `in_flight`: one still being settled counts
        (a provider's word can come before the send's own outcome is written)."""
        async with self._sessions() as session:
            row = await session.get(DeliveryRow, delivery_id)
            statuses = ("sent", "pending") if in_flight else ("sent",)
            if row is None or row.status not in statuses:
                return None
            links = (row.content or {}).get("links") or []
            return _sent(row), row.updated_at, [str(link) for link in links]

    async def sent_by_key(self, key: str) -> Sent | None:
        """The sent message of an idempotency key (an in-app message's `delivery_key`)."""
        async with self._sessions() as session:
            row = (
                await session.exec(select(DeliveryRow).where(DeliveryRow.idempotency_key == key))
            ).first()
            return _sent(row) if row is not None and row.status == "sent" else None

    async def last_sent(self, customer_id: str, channel: str) -> Sent | None:
        """The customer's latest message sent on `channel`: what a reply answers."""
        async with self._sessions() as session:
            query = (
                select(DeliveryRow)
                .where(
                    DeliveryRow.customer_id == customer_id,
                    DeliveryRow.channel == channel,
                    DeliveryRow.status == "sent",
                )
                .order_by(col(DeliveryRow.id).desc())
                .limit(1)
            )
            row = (await session.exec(query)).first()
            return _sent(row) if row is not None else None

    async def claimed(self, provider_id: str, key: str) -> bool:
        """Whether a ledger row other than `key`'s names this provider message id."""
        async with self._sessions() as session:
            query = select(DeliveryRow.id).where(
                DeliveryRow.provider_id == provider_id, DeliveryRow.idempotency_key != key
            )
            return (await session.exec(query)).first() is not None

    async def provider_update(
        self, provider_id: str, status: str, detail: str | None
    ) -> Sent | None:
        """A provider's later word on a message (a delivery receipt): the message it is
        about, or None if unknown. (The row's `updated_at` stays the send's: tracking
        links age from it.)"""
        async with self._sessions() as session:
            query = select(DeliveryRow).where(DeliveryRow.provider_id == provider_id)
            row = (await session.exec(query)).first()
            if row is None:
                return None
            row.provider_status = f"{status} ({detail})" if detail else status
            session.add(row)
            await session.commit()
            return _sent(row)

    async def slots_held(
        self, customer_ids: Sequence[str], since: datetime, *, besides: str
    ) -> dict[str, list[Slot]]:
        """The cap slots the customers' marketing sends held after `since`, but for those
        of journey `besides` (a backtest simulates that journey's own): by customer."""
        held: dict[str, list[Slot]] = {}
        ids = list(dict.fromkeys(customer_ids))
        async with self._sessions() as session:
            for start in range(0, len(ids), 500):
                query = select(DeliveryRow).where(
                    col(DeliveryRow.customer_id).in_(ids[start : start + 500]),
                    HOLDING_A_SLOT,
                    DeliveryRow.journey_id != besides,
                )
                for row in (await session.exec(query, params={"since": since})).all():
                    held.setdefault(row.customer_id, []).append(_slot(row))
        return held

    async def for_customer(self, customer_id: str) -> list[Delivery]:
        async with self._sessions() as session:
            query = (
                select(DeliveryRow)
                .where(DeliveryRow.customer_id == customer_id)
                .order_by(col(DeliveryRow.id))
            )
            rows = (await session.exec(query)).all()
            return [Delivery.model_validate(r, from_attributes=True) for r in rows]

    async def results_of(self, customer_id: str, key: str) -> dict[str, dict[str, Any]]:
        """The latest outcome of each earlier send of the enrollment whose send `key` is
        (its keys share `workflow/enrollment/`), as `context.steps` shows them to a
        template: the enrollment does not carry them in every send's request."""
        prefix = key.rsplit("/", 2)[0] + "/"
        async with self._sessions() as session:
            query = (
                select(DeliveryRow)
                .where(
                    col(DeliveryRow.customer_id) == customer_id,
                    col(DeliveryRow.idempotency_key).startswith(prefix, autoescape=True),
                    col(DeliveryRow.idempotency_key) != key,
                )
                .order_by(col(DeliveryRow.id))
            )
            rows = (await session.exec(query)).all()
        found: dict[str, dict[str, Any]] = {}
        for row in rows:  # (the later visit of a step wins)
            result = {"status": row.status, "reason": row.reason, "delivery_id": row.id}
            result["channel"] = row.channel
            found[row.step_id] = {k: v for k, v in result.items() if v is not None}
        return found

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

    @classmethod
    async def _read(
        cls, session: AsyncSession, request: SendRequest, at: datetime, rules: Rules
    ) -> tuple[Profile, _Entry | None, list[Slot], dict[str, str]]:
        """The profile, the key's row, the marketing sends holding a slot in the widest
        window of any cap (as `_slots` finds them; which caps apply depends on the channel,
        which depends on the profile), and the channels whose address is suppressed (with
        why), in one statement: the customer, joined to their profile and to those rows."""
        key, caps = request.idempotency_key, caps_for(request, rules, None)
        params: dict[str, Any] = {"customer": request.customer_id, "key": key}
        if caps:
            params["since"] = _since(at, caps)
        query = _READ[bool(caps)]
        found = (await (await session.connection()).execute(query, params)).all()
        profile = stored_profile(request.customer_id, found[0].profile)
        rows = [r for r in found if r.id is not None]
        row = next((_entry_of(r) for r in rows if r.idempotency_key == key), None)
        first = found[0]._mapping
        suppressed: dict[str, str] = {
            c: first[f"suppressed_{c}"] for c in SUPPRESSED_CHANNELS if first[f"suppressed_{c}"]
        }
        return profile, row, [_slot(r) for r in rows if r.idempotency_key != key], suppressed

    async def _slots(
        self,
        session: AsyncSession,
        request: SendRequest,
        at: datetime,
        caps: Sequence[ScopedCap],
    ) -> list[Slot]:
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
        return [_slot(r) for r in found.all()]

    async def _contenders(self, session: AsyncSession, request: SendRequest) -> list[Slot]:
        """Other sends for this customer waiting to be arbitrated (not stale)."""
        query = select(DeliveryRow).where(
            DeliveryRow.customer_id == request.customer_id,
            DeliveryRow.status == "contending",
            DeliveryRow.idempotency_key != request.idempotency_key,
            col(DeliveryRow.updated_at) > utcnow() - STALE_CONTENDER,
        )
        return [_slot(r) for r in (await session.exec(query)).all()]

    async def _apply(
        self,
        session: AsyncSession,
        row: _Entry,
        profile: Profile,
        request: SendRequest,
        verdict: Verdict,
        at: datetime,
    ) -> Reservation:
        """Write the verdict on the key's row, in the reservation's transaction."""
        if verdict.channel is not None:
            row.channel = verdict.channel
        match verdict.kind:
            case "again":  # granted before; a retry
                return await self._commit(
                    session, row, Reservation("granted", profile, row.channel)
                )
            case "grant":
                return await self._grant(session, row, profile, request)
            case "contend":
                row.status, row.reserved_at, row.updated_at = "contending", at, utcnow()
                return await self._commit(
                    session, row, Reservation("contend", profile, row.channel)
                )
            case "defer":
                reason = verdict.reason or ""
                return await self._finish(
                    session, row, profile, "deferred", reason, until=verdict.until
                )
            case _:
                return await self._finish(session, row, profile, "suppressed", verdict.reason or "")

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
        outcome.delivery_id, outcome.since = row.id, row.created_at
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
