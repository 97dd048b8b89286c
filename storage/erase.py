"""Erasing a customer's rows: the profile, every ledger entry, in-app message, offer grant,
decision and audience-list membership, in one transaction."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.tables import (
    AudienceMemberRow,
    DecisionRow,
    DeliveryRow,
    InboxRow,
    OfferGrantRow,
    ProfileRow,
)


async def erase_customer(
    sessions: async_sessionmaker[AsyncSession], customer_id: str
) -> dict[str, int]:
    """Rows removed, by table. Decisions are found by their key, which holds the
    enrollment's workflow id (`journey/{journey}/{customer}/...`)."""
    escaped = customer_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    statements = {
        "profiles": delete(ProfileRow).where(col(ProfileRow.customer_id) == customer_id),
        "deliveries": delete(DeliveryRow).where(col(DeliveryRow.customer_id) == customer_id),
        "inbox": delete(InboxRow).where(col(InboxRow.customer_id) == customer_id),
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
