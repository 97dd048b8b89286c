"""Erasing a customer's rows: the profile, the anonymous ids merged into it, every ledger
entry (so their tracking links die), reaction, suppression found on them, in-app message,
offer grant, decision and audience-list membership, in one transaction; and the erasure
window, during which the customer's events are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.storage.tables import (
    AliasRow,
    AudienceMemberRow,
    DecisionRow,
    DeliveryRow,
    ErasureRow,
    InboxRow,
    OfferGrantRow,
    ProfileRow,
    ReactionRow,
    RecordedEventRow,
    SuppressionRow,
)


class CustomerErasing(Exception):
    """An event for a customer being erased: refused whole (nothing of its request is
    stored), to be sent again once the erase is done."""

    def __init__(self, customer_id: str):
        super().__init__("a customer of this request is being erased: send it again shortly")
        self.customer_id = customer_id


class Erasures:
    """The erasure window: a row per customer being erased, in the database, so every
    API process sees it (`refuse_erasing` reads it where events and profiles are written)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    @asynccontextmanager
    async def window(self, customer_id: str) -> AsyncIterator[None]:
        """Hold the customer's events off while the body runs; ValueError when an erase of
        the same customer is already under way."""
        try:
            async with self._sessions() as session, session.begin():
                session.add(ErasureRow(customer_id=customer_id))
        except IntegrityError as err:
            raise ValueError("this customer is already being erased") from err
        try:
            yield
        finally:
            async with self._sessions() as session, session.begin():
                await session.exec(  # type: ignore[call-overload]
                    delete(ErasureRow).where(col(ErasureRow.customer_id) == customer_id)
                )


def refuse_erasing(connection: Connection, customer_ids: Iterable[str]) -> None:
    """Raise CustomerErasing when one of `customer_ids` is being erased: asked inside the
    transaction that would write for them (events accepted, a profile written), before it
    writes, so a refused request leaves nothing behind and costs no session of its own."""
    wanted = list(set(customer_ids))
    if not wanted:
        return
    query = select(col(ErasureRow.customer_id)).where(col(ErasureRow.customer_id).in_(wanted))
    erasing = connection.execute(query).scalar()
    if erasing is not None:
        raise CustomerErasing(erasing)


async def erase_customer(
    sessions: async_sessionmaker[AsyncSession], customer_id: str
) -> dict[str, int]:
    """Rows removed, by table. Decisions are found by their key, which holds the
    enrollment's workflow id (`journey/{journey}/{customer}/...`)."""
    escaped = customer_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    statements = {
        "profiles": delete(ProfileRow).where(col(ProfileRow.customer_id) == customer_id),
        "aliases": delete(AliasRow).where(
            (col(AliasRow.customer_id) == customer_id) | (col(AliasRow.anonymous_id) == customer_id)
        ),
        "deliveries": delete(DeliveryRow).where(col(DeliveryRow.customer_id) == customer_id),
        "inbox": delete(InboxRow).where(col(InboxRow.customer_id) == customer_id),
        "recorded_events": delete(RecordedEventRow).where(
            col(RecordedEventRow.customer_id) == customer_id
        ),
        "reactions": delete(ReactionRow).where(col(ReactionRow.customer_id) == customer_id),
        "suppressions": delete(SuppressionRow).where(
            col(SuppressionRow.customer_id) == customer_id
        ),
        "offer_grants": delete(OfferGrantRow).where(col(OfferGrantRow.customer_id) == customer_id),
        "decisions": delete(DecisionRow).where(
            col(DecisionRow.key).like(f"journey/%/{escaped}/%", escape="\\")
        ),
        "audience_members": delete(AudienceMemberRow).where(
            col(AudienceMemberRow.customer_id) == customer_id
        ),
    }
    removed: dict[str, int] = {}
    async with sessions() as session, session.begin():
        connection = await session.connection()
        for table, statement in statements.items():
            result = await connection.execute(statement)
            removed[table] = int(getattr(result, "rowcount", 0) or 0)
    return removed
