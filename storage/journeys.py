"""Published journey versions. A version is immutable once written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import delete, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.delivery import Template
from journeys.schemas.egress import Policy
from journeys.schemas.journey import JourneySpec
from journeys.schemas.validation import ensure_valid
from journeys.storage.tables import JourneyVersionRow, PublishKeyRow, TemplateRow


class Latest(NamedTuple):
    """A journey's latest version, as the router and the catalogue read it."""

    spec: JourneySpec
    version: int
    listening: set[str]
    """Event names any of its versions listens for."""
    own_reactions: set[str]
    """Of those, the names only its reaction waits take: reactions to its own messages."""


class KeyReused(Exception):
    """An `Idempotency-Key` sent again with a different journey body."""


class JourneyStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Iterable[str],
        egress: Policy | None = None,
    ):
        """`egress`: the policy the URLs of a journey published here are judged by."""
        self._sessions = sessions
        self._channels = tuple(channels)
        self._egress = egress
        self._parsed: dict[tuple[str, int], tuple[JourneySpec, frozenset[str], frozenset[str]]] = {}
        """Versions read and validated before, with the events they listen for: a version
        never changes, so the router's refresh reads each one once."""

    async def publish(
        self, spec: JourneySpec, *, only_if_changed: bool = False, key: str | None = None
    ) -> tuple[int, bool]:
        """Validate and store `spec` as the next version: (version, created). With
        `only_if_changed`, an identical latest version is returned instead of a new one;
        with an idempotency `key` already used, the version it made (KeyReused when that
        version's body differs from `spec`)."""
        async with self._sessions() as session:
            rows = (await session.exec(select(TemplateRow))).all()
            templates = {r.id: Template(id=r.id, **r.content) for r in rows}
            ensure_valid(spec, channels=self._channels, templates=templates, egress=self._egress)
            body = spec.model_dump(mode="json")
            for _ in range(5):
                if key is not None and (made := await self._keyed(session, spec.id, key)):
                    if made.spec != body:
                        raise KeyReused("this Idempotency-Key was used for another body")
                    return made.version, False
                latest = await self._latest_row(session, spec.id)
                if only_if_changed and latest is not None and latest.spec == body:
                    return latest.version, False
                version = (latest.version if latest else 0) + 1
                session.add(JourneyVersionRow(journey_id=spec.id, version=version, spec=body))
                if key is not None:
                    session.add(PublishKeyRow(journey_id=spec.id, key=key, version=version))
                try:
                    await session.commit()
                    return version, True
                except IntegrityError:  # a concurrent publish took this number
                    await session.rollback()
            raise RuntimeError(f"could not allocate a version for journey {spec.id}")

    async def withdraw(self, journey_id: str, version: int) -> None:
        """Remove a version just published whose side effects (its Schedule) failed, so a
        publish either happens whole or not at all."""
        async with self._sessions() as session:
            row = await session.get(JourneyVersionRow, (journey_id, version))
            if row is not None:
                await session.exec(  # type: ignore[call-overload]
                    delete(PublishKeyRow).where(
                        col(PublishKeyRow.journey_id) == journey_id,
                        col(PublishKeyRow.version) == version,
                    )
                )
                await session.delete(row)
                await session.commit()

    @staticmethod
    async def _keyed(session: AsyncSession, journey_id: str, key: str) -> JourneyVersionRow | None:
        made = await session.get(PublishKeyRow, (journey_id, key))
        if made is None:
            return None
        return await session.get(JourneyVersionRow, (journey_id, made.version))

    @staticmethod
    async def _latest_row(session: AsyncSession, journey_id: str) -> JourneyVersionRow | None:
        query = (
            select(JourneyVersionRow)
            .where(JourneyVersionRow.journey_id == journey_id)
            .order_by(col(JourneyVersionRow.version).desc())
            .limit(1)
        )
        return (await session.exec(query)).first()

    async def get(
        self, journey_id: str, version: int | None = None
    ) -> tuple[JourneySpec, int] | None:
        async with self._sessions() as session:
            if version is None:
                row = await self._latest_row(session, journey_id)
            else:
                row = await session.get(JourneyVersionRow, (journey_id, version))
            return (JourneySpec.model_validate(row.spec), row.version) if row else None

    async def versions(self, journey_id: str) -> list[int]:
        async with self._sessions() as session:
            query = (
                select(JourneyVersionRow.version)
                .where(JourneyVersionRow.journey_id == journey_id)
                .order_by(col(JourneyVersionRow.version))
            )
            return list((await session.exec(query)).all())

    async def latest(self) -> list[Latest]:
        """Every journey's latest version, with the event names any of its versions
        listens for (running enrollments may be on older versions), and of those the names
        only its reaction waits take (reactions to its own messages alone reach it). Each
        refresh reads the list of versions and only the versions it has not read before."""
        async with self._sessions() as session:
            listed = select(JourneyVersionRow.journey_id, JourneyVersionRow.version)
            keys = {(jid, v) for jid, v in (await session.exec(listed)).all()}
            new = [k for k in keys if k not in self._parsed]
            for chunk in (new[i : i + 200] for i in range(0, len(new), 200)):
                wanted = or_(
                    *(
                        (col(JourneyVersionRow.journey_id) == jid)
                        & (col(JourneyVersionRow.version) == v)
                        for jid, v in chunk
                    )
                )
                for row in (await session.exec(select(JourneyVersionRow).where(wanted))).all():
                    spec = JourneySpec.model_validate(row.spec)
                    self._parsed[(row.journey_id, row.version)] = (
                        spec,
                        frozenset(spec.listens_for()),
                        frozenset(spec.hears_from_anyone()),
                    )
        for gone in self._parsed.keys() - keys:  # withdrawn versions
            del self._parsed[gone]
        heads: dict[str, int] = {}
        listening: dict[str, set[str]] = {}
        hearing: dict[str, set[str]] = {}
        for (jid, version), (_, listens, hears) in self._parsed.items():
            heads[jid] = max(version, heads.get(jid, 0))
            listening.setdefault(jid, set()).update(listens)
            hearing.setdefault(jid, set()).update(hears)
        return [
            Latest(
                self._parsed[(jid, heads[jid])][0],
                heads[jid],
                listening[jid],
                listening[jid] - hearing[jid],
            )
            for jid in sorted(heads)
        ]

    async def top_marketing_priority(self) -> int | None:
        """The highest priority of any version of any journey with a marketing send (None:
        there is none): a send of that priority cannot be outranked for a cap slot."""
        await self.latest()  # reads only versions it has not read before
        sending = [spec.priority for spec, *_ in self._parsed.values() if spec.sends_marketing()]
        return max(sending, default=None)
