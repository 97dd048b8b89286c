"""The accepted-events log: what makes ingestion idempotent by message id end to end.

An event is claimed (its message id inserted) before it is routed and marked routed after
Temporal has it. A request repeated after that changes nothing, even for an enrollment that
has since ended; a request repeated after a crash in between is routed again, which the
enrollment's own de-dup window absorbs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from journeys.schemas.events import CustomerEvent
from journeys.storage import profiles
from journeys.storage.db import Transactions
from journeys.storage.erase import CustomerErasing
from journeys.storage.group_commit import GroupCommit, Outcome
from journeys.storage.tables import AcceptedEventRow, RecordedEventRow, utcnow

CHUNK = 500  # message ids per statement (SQLite's bound-parameter limit)


Accepted = tuple[list[CustomerEvent], set[str], set[str], dict[str, str]]
"""(the events under the customers they are for, new ids, pending ids, time zones)."""
Accepting = Sequence[CustomerEvent]
"""The events of one call."""


class EventLog:
    def __init__(self, transact: Transactions, unsubscribe_event: str = "unsubscribed"):
        """`unsubscribe_event`: the event that withdraws marketing consent (Settings)."""
        self._transact = transact
        self._unsubscribe_event = unsubscribe_event
        # Concurrent requests share a transaction (storage/group_commit.py).
        self._accepting = GroupCommit(self._accept_together, weight=len)
        self._routing = GroupCommit(self._routed_together, weight=len)

    async def accept(self, events: Sequence[CustomerEvent]) -> Accepted:
        """Claim the events' message ids and let the profiles learn from the new ones, in
        one transaction: the events, each under the customer it is for (an anonymous id
        merged into a customer stands for them), (new, pending) as `claim` says, and the
        new events' customers' time zones. CustomerErasing (nothing claimed) when one of
        them is being erased. Calls made meanwhile share the transaction."""
        return await self._accepting(events)

    async def _accept_together(self, calls: list[Accepting]) -> list[Outcome[Accepted]]:
        """One transaction for every call; should one be for a customer being erased, each
        call in its own, so that only that call is refused."""
        if len(calls) > 1:
            with contextlib.suppress(CustomerErasing):
                events, new, pending, zones = await self._accept_now(
                    [e for theirs in calls for e in theirs]
                )
                outcomes: list[Outcome[Accepted]] = []
                for theirs in calls:
                    mine, events = events[: len(theirs)], events[len(theirs) :]
                    ids = {e.message_id for e in mine}
                    outcomes.append((mine, new & ids, pending & ids, zones))
                return outcomes
        outcomes = []
        for theirs in calls:
            try:
                outcomes.append(await self._accept_now(theirs))
            except CustomerErasing as err:
                outcomes.append(err)
        return outcomes

    async def _accept_now(self, events: Sequence[CustomerEvent]) -> Accepted:
        return await self._transact(_accept, events, self._unsubscribe_event)

    async def claim(self, message_ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """(new, pending): ids never seen before, and ids seen but not yet routed. Every
        other id was routed already and is a duplicate."""
        return await self._transact(_claim, message_ids)

    async def forget(self, routed_before: datetime) -> int:
        """Drop the ids routed before `routed_before` (producers retry for hours, not
        weeks); ids claimed but never routed stay, so their retry is still routed."""
        return await self._transact(_forget, routed_before)

    async def forget_recorded(self, before: datetime) -> int:
        """Drop the recorded events that happened before `before` (`Settings.events_kept`)."""
        return await self._transact(_forget_recorded, before)

    async def recorded(
        self,
        since: datetime,
        until: datetime,
        customers: Sequence[str] | None = None,
        *,
        after_id: int = 0,
        limit: int = 5000,
    ) -> list[tuple[int, CustomerEvent]]:
        """Recorded events in [since, until), in the order they happened, a page at a
        time (`after_id`: the last id of the page before): (id, event)."""
        return await self._transact(_recorded, since, until, customers, after_id, limit)

    async def routed(self, message_ids: Sequence[str]) -> None:
        """Mark the ids routed (calls made meanwhile share the transaction)."""
        await self._routing(list(message_ids))

    async def _routed_together(self, calls: list[list[str]]) -> list[Outcome[None]]:
        await self._transact(_mark_routed, [m for ids in calls for m in ids])
        return [None] * len(calls)


def _accept(
    connection: Connection, events: Sequence[CustomerEvent], unsubscribe_event: str
) -> Accepted:
    customers = profiles.customers_of(connection, (e.customer_id for e in events))
    events = [
        e
        if customers[e.customer_id] == e.customer_id
        else e.model_copy(update={"customer_id": customers[e.customer_id]})
        for e in events
    ]
    new, pending = _claim(connection, [e.message_id for e in events])
    learned = {e.message_id: e for e in events if e.message_id in new}
    _record(connection, list(learned.values()))
    zones = profiles.observe(connection, list(learned.values()), unsubscribe_event)
    return list(events), new, pending, zones


def _record(connection: Connection, events: Sequence[CustomerEvent]) -> None:
    """The new events into the event log (one statement), as they were accepted."""
    if events:
        connection.execute(
            insert(RecordedEventRow),
            [
                {
                    "customer_id": e.customer_id,
                    "name": e.name,
                    "properties": e.properties,
                    "timestamp": e.timestamp,
                    "message_id": e.message_id,
                    "received_at": utcnow(),
                }
                for e in events
            ],
        )


def _forget_recorded(connection: Connection, before: datetime) -> int:
    result = connection.execute(
        delete(RecordedEventRow).where(col(RecordedEventRow.timestamp) < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _recorded(
    connection: Connection,
    since: datetime,
    until: datetime,
    customers: Sequence[str] | None,
    after_id: int,
    limit: int,
) -> list[tuple[int, CustomerEvent]]:
    row = RecordedEventRow
    query = (
        select(
            col(row.id),
            col(row.customer_id),
            col(row.name),
            col(row.properties),
            col(row.timestamp),
            col(row.message_id),
        )
        .where(col(row.timestamp) >= since, col(row.timestamp) < until, col(row.id) > after_id)
        .order_by(col(row.id))
        .limit(limit)
    )
    if customers is not None:
        query = query.where(col(row.customer_id).in_(list(customers)))
    return [
        (
            int(r.id),
            CustomerEvent.model_construct(  # (validated when it was accepted)
                customer_id=r.customer_id,
                name=r.name,
                properties=r.properties,
                timestamp=r.timestamp,
                message_id=r.message_id,
                contested=True,
            ),
        )
        for r in connection.execute(query)
    ]


def _forget(connection: Connection, routed_before: datetime) -> int:
    result = connection.execute(
        delete(AcceptedEventRow).where(col(AcceptedEventRow.routed_at) < routed_before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _mark_routed(connection: Connection, message_ids: list[str]) -> None:
    now = utcnow()
    for chunk in _chunks(message_ids):
        connection.execute(
            update(AcceptedEventRow)
            .where(col(AcceptedEventRow.message_id).in_(chunk))
            .values(routed_at=now)
        )


def _claim(connection: Connection, message_ids: Sequence[str]) -> tuple[set[str], set[str]]:
    """Insert the ids not yet known; the database says which it inserted (RETURNING), so
    of two requests racing with one id exactly one claims it new. Only ids it did not
    insert are read back, to tell a pending id from a routed one."""
    wanted = list(dict.fromkeys(message_ids))
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    claim = (
        dialect.insert(AcceptedEventRow)
        .on_conflict_do_nothing()
        .returning(col(AcceptedEventRow.message_id))
    )
    now = utcnow()
    rows = [{"message_id": m, "received_at": now} for m in wanted]
    # One statement for any number of rows (SQLAlchemy's "insertmanyvalues"), and a
    # cached one: a multi-row VALUES would be compiled anew for every request.
    new = set(connection.execute(claim, rows).scalars()) if rows else set()
    pending: set[str] = set()
    for chunk in _chunks([m for m in wanted if m not in new]):
        query = select(col(AcceptedEventRow.message_id)).where(
            col(AcceptedEventRow.message_id).in_(chunk), col(AcceptedEventRow.routed_at).is_(None)
        )
        pending.update(connection.execute(query).scalars())
    return new, pending


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
