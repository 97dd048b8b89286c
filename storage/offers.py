"""The offer catalogue and the record of decisions, for the built-in decisioning service.

A decision reads the placement's offers and their grant counts, ranks them
(`schemas.ranking.rank`), then counts the chosen offers against their caps and stores
the answer under the request's key, in one transaction. When any offer of the placement
is capped, decisions for that placement are serialised (an advisory lock on PostgreSQL,
the write lock on SQLite) so a total cap holds under concurrency.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.decision import DecisionRequest, DecisionResult, Offer
from journeys.schemas.ranking import rank
from journeys.storage.db import serialize, upsert
from journeys.storage.profiles import load
from journeys.storage.tables import DecisionRow, OfferGrantRow, OfferRow


class OfferStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self._cached: tuple[tuple[object, ...], list[Offer]] | None = None

    async def put(self, offer: Offer) -> Offer:
        async with self._sessions() as session:
            data = offer.model_dump(mode="json", exclude={"id"})
            await upsert(session, OfferRow, offer.id, id=offer.id, data=data)
            await session.commit()
            return offer

    async def get(self, offer_id: str) -> Offer | None:
        async with self._sessions() as session:
            row = await session.get(OfferRow, offer_id)
            return Offer(id=row.id, **row.data) if row else None

    async def all(self, placement: str | None = None) -> list[Offer]:
        async with self._sessions() as session:
            rows = (await session.exec(select(OfferRow).order_by(col(OfferRow.id)))).all()
        offers = [Offer(id=r.id, **r.data) for r in rows]
        return [o for o in offers if placement is None or placement in o.placements]

    async def delete(self, offer_id: str) -> bool:
        async with self._sessions() as session:
            row = await session.get(OfferRow, offer_id)
            if row is None:
                return False
            await session.delete(row)
            await session.commit()
            return True

    async def decide(self, request: DecisionRequest) -> DecisionResult:
        async with self._sessions() as session:
            lock = f"placement:{request.placement}"
            postgres = session.get_bind().dialect.name == "postgresql"
            if not postgres and not request.dry_run:  # SQLite: the write lock before any read
                await serialize(session, lock)
            if request.key and (done := await session.get(DecisionRow, request.key)):
                return DecisionResult.model_validate(done.result)
            offers = [o for o in await self._offers(session) if request.placement in o.placements]
            capped = any(o.cap_total or o.cap_per_customer for o in offers)
            if postgres and capped and not request.dry_run:
                await serialize(session, lock)
                if request.key and (done := await session.get(DecisionRow, request.key)):
                    return DecisionResult.model_validate(done.result)
            mine, totals = await self._grants(session, request.customer_id, offers)
            profile = (await load(session, request.customer_id))[1]
            result = rank(
                offers,
                request,
                profile.scope(),
                at=request.at or datetime.now(UTC),
                mine={k: g.count for k, g in mine.items()},
                totals=totals,
            )
            if request.dry_run:
                return result
            for chosen in result.offers:
                grant = mine.get(chosen.id) or OfferGrantRow(
                    offer_id=chosen.id, customer_id=request.customer_id
                )
                grant.count += 1
                session.add(grant)
            if request.key:
                session.add(DecisionRow(key=request.key, result=result.model_dump(mode="json")))
            await session.commit()
            return result

    async def _offers(self, session: AsyncSession) -> list[Offer]:
        """The catalogue, parsed once per change: a decision costs one small query to see
        whether any process changed it (count and latest update) instead of parsing every
        offer again."""
        stamp = select(func.count(), func.max(OfferRow.updated_at))
        fingerprint = tuple((await session.exec(stamp)).one())  # type: ignore[call-overload]
        if self._cached is None or self._cached[0] != fingerprint:
            rows = (await session.exec(select(OfferRow))).all()
            self._cached = (fingerprint, [Offer(id=r.id, **r.data) for r in rows])
        return self._cached[1]

    @staticmethod
    async def _grants(
        session: AsyncSession, customer_id: str, offers: list[Offer]
    ) -> tuple[dict[str, OfferGrantRow], dict[str, int]]:
        """This customer's grant rows (every offer: chosen ones are counted up), and the
        total over all customers for offers with a total cap (at most that many rows)."""
        if not offers:
            return {}, {}
        ids = [o.id for o in offers]
        mine_q = select(OfferGrantRow).where(
            col(OfferGrantRow.offer_id).in_(ids), OfferGrantRow.customer_id == customer_id
        )
        mine = {g.offer_id: g for g in (await session.exec(mine_q)).all()}
        capped = [o.id for o in offers if o.cap_total is not None]
        if not capped:
            return mine, {}
        totals_q = (
            select(OfferGrantRow.offer_id, func.sum(OfferGrantRow.count))
            .where(col(OfferGrantRow.offer_id).in_(capped))
            .group_by(col(OfferGrantRow.offer_id))
        )
        totals = {k: int(v) for k, v in (await session.exec(totals_q)).all()}
        return mine, totals
