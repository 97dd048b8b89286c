"""Customer profiles, stored whole as JSON keyed by customer id.

Some fields are maintained here rather than written by clients: `active_hours` and
`last_seen_at` (from every event, for send-time optimisation) and `unsubscribed` (from
unsubscribe events and links). A client's PUT keeps the activity fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import CHANNELS
from journeys.schemas.profile import ALL_CHANNELS, Profile
from journeys.storage.erase import refuse_erasing
from journeys.storage.tables import AliasRow, GroupRow, ProfileRow, utcnow

SERVER_MAINTAINED = ("active_hours", "last_seen_at", "seen")


async def load(session: AsyncSession, customer_id: str) -> tuple[ProfileRow | None, Profile]:
    """The stored row (None for an unknown customer) and the profile it holds (defaults:
    journeys may run for customers the profile service has not heard of yet)."""
    row = await session.get(ProfileRow, customer_id)
    return row, stored_profile(customer_id, row.data if row else None)


def observe(
    connection: Connection, events: Sequence[CustomerEvent], unsubscribe_event: str
) -> dict[str, str]:
    """Learn from incoming events, in the caller's transaction: activity hours, last seen
    per event, location, and marketing unsubscribes (`properties.channel`, else every
    channel). Returns each customer's time zone (for the enrollments they enter). Core
    statements, not ORM objects: this runs for every event the API takes."""
    by_customer: dict[str, list[CustomerEvent]] = {}
    for event in events:
        by_customer.setdefault(event.customer_id, []).append(event)
    if not by_customer:
        return {}
    query = core_select(col(ProfileRow.customer_id), col(ProfileRow.data)).where(
        col(ProfileRow.customer_id).in_(by_customer)
    )
    stored: dict[str, dict[str, Any]] = dict(connection.execute(query).all())
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    timezones: dict[str, str] = {}
    now = utcnow()
    for customer_id, theirs in sorted(by_customer.items()):
        profile = stored_profile(customer_id, stored.get(customer_id))
        hours = list(profile.active_hours)
        for event in theirs:
            hours[event.timestamp.astimezone(UTC).hour] += 1
            profile.observed(event)
            if event.name == unsubscribe_event:
                profile = unsubscribed(profile, event.properties.get("channel"))
        latest = max(e.timestamp for e in theirs)
        if profile.last_seen_at is None or latest > profile.last_seen_at:
            profile.last_seen_at = latest
        profile.active_hours = hours
        data = profile.model_dump(mode="json", exclude={"customer_id"})
        if customer_id in stored:
            updates.append({"key": customer_id, "data": data, "updated_at": now})
        else:
            inserts.append({"customer_id": customer_id, "data": data, "updated_at": now})
        timezones[customer_id] = profile.timezone
    # One statement each (executemany): a batch costs two round trips, not one per customer.
    if updates:
        connection.execute(_UPDATE_DATA, updates)
    if inserts:
        connection.execute(insert(ProfileRow), inserts)
    return timezones


_UPDATE_DATA = (
    update(ProfileRow)
    .where(col(ProfileRow.customer_id) == bindparam("key"))
    .values(data=bindparam("data"), updated_at=bindparam("updated_at"))
)


def resolve(connection: Connection, customer_ids: Iterable[str]) -> dict[str, str]:
    """The known customer of each id that is an alias (an anonymous id merged into them);
    ids that are not aliases are left out."""
    wanted = list(set(customer_ids))
    if not wanted:
        return {}
    query = core_select(col(AliasRow.anonymous_id), col(AliasRow.customer_id)).where(
        col(AliasRow.anonymous_id).in_(wanted)
    )
    return dict(connection.execute(query).all())  # type: ignore[arg-type]


def customers_of(connection: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Each id's customer (the one an anonymous id was merged into, else the id itself),
    in the caller's transaction; CustomerErasing, before the caller writes, when one of
    those customers is being erased. What every write for a customer asks first."""
    wanted = set(ids)
    aliases = resolve(connection, wanted)
    customers = {c: aliases.get(c, c) for c in wanted}
    refuse_erasing(connection, customers.values())
    return customers


def stored_profile(customer_id: str, data: dict[str, Any] | None) -> Profile:
    """The profile a row's `data` holds (None: no row, the defaults)."""
    return Profile(customer_id=customer_id, **(data or {}))


class ProfileStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def timezones(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """Each known customer's time zone, in one query (enrollments state their waits in
        the customer's local time)."""
        ids = list(set(customer_ids))
        if not ids:
            return {}
        async with self._sessions() as session:
            query = select(ProfileRow).where(col(ProfileRow.customer_id).in_(ids))
            rows = (await session.exec(query)).all()
        return {r.customer_id: str(r.data.get("timezone") or "UTC") for r in rows}

    async def put(self, profile: Profile) -> Profile:
        """Create or replace, keeping the activity the server has learned (CustomerErasing
        while the customer is being erased)."""
        async with self._sessions() as session:
            await (await session.connection()).run_sync(refuse_erasing, [profile.customer_id])
            row, stored = await load(session, profile.customer_id)
            if row is not None:
                kept = {k: getattr(stored, k) for k in SERVER_MAINTAINED}
                if profile.location is None:
                    kept["location"] = stored.location
                profile = profile.model_copy(update=kept)
            self._write(session, row, profile)
            await session.commit()
            return profile

    async def get(self, customer_id: str) -> Profile | None:
        async with self._sessions() as session:
            row, profile = await load(session, customer_id)
            return profile if row else None

    async def many(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        """Each customer's profile (the defaults for one not stored), 500 to a query."""
        ids = list(dict.fromkeys(customer_ids))
        found: dict[str, Profile] = {}
        async with self._sessions() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(ProfileRow).where(col(ProfileRow.customer_id).in_(chunk))
                for row in (await session.exec(query)).all():
                    found[row.customer_id] = stored_profile(row.customer_id, row.data)
        return {c: found.get(c) or stored_profile(c, None) for c in ids}

    async def get_or_default(self, customer_id: str) -> Profile:
        async with self._sessions() as session:
            return (await load(session, customer_id))[1]

    async def update(
        self, customer_id: str, attributes: dict[str, Any], lifecycle_stage: str | None = None
    ) -> Profile:
        """Merge `attributes` into the profile (a None value removes one), and set the
        lifecycle stage when given; creates the profile if needed."""
        changes: dict[str, Any] = {"attributes": attributes}
        if lifecycle_stage is not None:
            changes["lifecycle_stage"] = lifecycle_stage
        [profile] = await self.change([(customer_id, changes)])
        return profile

    async def change(self, changes: Sequence[tuple[str, dict[str, Any]]]) -> list[Profile]:
        """Apply each customer's changes in order, in one transaction: `attributes` merge
        (None removes one), `fill_in` fields are set only where the profile has none, other
        fields replace (an identify call's
        `SegmentMessage.profile_changes`, an `update_profile` step). Invalid values raise
        ValueError and nothing is written; so does CustomerErasing, for a customer being
        erased. An anonymous id merged into a customer changes that customer."""
        done: list[Profile] = []
        async with self._sessions() as session:
            connection = await session.connection()
            customers = await connection.run_sync(customers_of, [c for c, _ in changes])
            changes = [(customers[c], fields) for c, fields in changes]
            ids = list(dict.fromkeys(c for c, _ in changes))
            query = select(ProfileRow).where(col(ProfileRow.customer_id).in_(ids))
            rows = {r.customer_id: r for r in (await session.exec(query)).all()}
            current: dict[str, tuple[ProfileRow | None, Profile]] = {}
            for c in ids:
                row = rows.get(c)
                current[c] = row, stored_profile(c, row.data if row else None)
            for customer_id, fields in changes:
                row, profile = current[customer_id]
                merged = {**profile.attributes, **fields.get("attributes", {})}
                fields = dict(fields)
                fill = fields.pop("fill_in", {})
                data = {**profile.model_dump(), **fields}
                data |= {k: v for k, v in fill.items() if not data.get(k)}
                data["attributes"] = {k: v for k, v in merged.items() if v is not None}
                current[customer_id] = row, Profile.model_validate(data)
                done.append(current[customer_id][1])
            for row, profile in current.values():
                self._write(session, row, profile)
            await session.commit()
        return done

    async def merge(self, anonymous_id: str, customer_id: str) -> Profile:
        """Identity resolution: fold the anonymous id's profile into the customer's (traits,
        activity hours, events seen) and route the anonymous id's later events, and those
        of ids merged into it before, to the customer. One transaction; CustomerErasing
        while either is being erased."""
        async with self._sessions() as session:
            connection = await session.connection()
            target = (await connection.run_sync(customers_of, [customer_id]))[customer_id]
            await connection.run_sync(refuse_erasing, [anonymous_id])
            row, known = await load(session, target)
            if anonymous_id == target:
                return known
            anonymous_row, anonymous = await load(session, anonymous_id)
            profile = known.absorb(anonymous) if anonymous_row is not None else known
            self._write(session, row, profile)
            if anonymous_row is not None:
                await session.delete(anonymous_row)
            await session.exec(  # type: ignore[call-overload]
                update(AliasRow)
                .where(col(AliasRow.customer_id) == anonymous_id)
                .values(customer_id=target)
            )
            alias = await session.get(AliasRow, anonymous_id)
            session.add(
                AliasRow(anonymous_id=anonymous_id, customer_id=target)
                if alias is None
                else alias.model_copy(update={"customer_id": target})
            )
            await session.commit()
            return profile

    async def join_group(self, customer_id: str, group_id: str, traits: dict[str, Any]) -> None:
        """Segment's `group`: the group's traits merge into what it had; the customer (the
        one an anonymous id was merged into) joins it (their `group_id`)."""
        async with self._sessions() as session:
            connection = await session.connection()
            customer_id = (await connection.run_sync(customers_of, [customer_id]))[customer_id]
            group = await session.get(GroupRow, group_id)
            if group is None:
                session.add(GroupRow(group_id=group_id, traits=traits))
            else:
                group.traits, group.updated_at = {**group.traits, **traits}, utcnow()
                session.add(group)
            row, profile = await load(session, customer_id)
            self._write(session, row, profile.model_copy(update={"group_id": group_id}))
            await session.commit()

    async def group_traits(self, group_id: str | None) -> dict[str, Any]:
        if group_id is None:
            return {}
        async with self._sessions() as session:
            group = await session.get(GroupRow, group_id)
            return dict(group.traits) if group else {}

    async def forget_push_tokens(self, customer_id: str, tokens: Sequence[str]) -> Profile:
        """Remove device tokens the push provider reported as invalid."""
        async with self._sessions() as session:
            row, profile = await load(session, customer_id)
            if row is None:
                return profile
            kept = [t for t in profile.push_tokens if t not in set(tokens)]
            profile = profile.model_copy(update={"push_tokens": kept})
            self._write(session, row, profile)
            await session.commit()
            return profile

    async def unsubscribe(self, customer_id: str, channel: str | None) -> Profile:
        async with self._sessions() as session:
            row, profile = await load(session, customer_id)
            profile = unsubscribed(profile, channel)
            self._write(session, row, profile)
            await session.commit()
            return profile

    async def set_consent(self, customer_id: str, channel: str, allowed: bool) -> Profile:
        """Give or withdraw consent on one channel (a STOP or START reply). Given back, it
        also ends the channel's marketing unsubscribe: START is the customer's word."""
        async with self._sessions() as session:
            row, profile = await load(session, customer_id)
            unsubscribed = [c for c in profile.unsubscribed if allowed is False or c != channel]
            consent: dict[Any, bool] = {**profile.consent, channel: allowed}
            profile = profile.model_copy(update={"consent": consent, "unsubscribed": unsubscribed})
            self._write(session, row, profile)
            await session.commit()
            return profile

    async def with_phone(self, phone: str) -> str | None:
        """The customer whose profile has this phone number (the most recently changed,
        if several): who an inbound SMS is from."""
        async with self._sessions() as session:
            query = (
                select(ProfileRow.customer_id)
                .where(col(ProfileRow.data)["phone"].as_string() == phone)
                .order_by(col(ProfileRow.updated_at).desc())
                .limit(1)
            )
            return (await session.exec(query)).first()

    @staticmethod
    def _write(session: AsyncSession, row: ProfileRow | None, profile: Profile) -> None:
        data: dict[str, Any] = profile.model_dump(mode="json", exclude={"customer_id"})
        if row is None:
            session.add(ProfileRow(customer_id=profile.customer_id, data=data))
        else:
            row.data, row.updated_at = data, utcnow()
            session.add(row)


def unsubscribed(profile: Profile, channel: Any) -> Profile:
    """The profile with marketing withdrawn on `channel` (a known channel), else on all."""
    target = channel if channel in CHANNELS else ALL_CHANNELS
    if target in profile.unsubscribed:
        return profile
    return profile.model_copy(update={"unsubscribed": [*profile.unsubscribed, target]})
