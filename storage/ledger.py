"""The delivery ledger: one row per send, unique by idempotency key.

A send first claims its key (pending), then settles it with its outcome in the same
transaction as any rows the channel writes (the in-app inbox), so a retried or replayed send
finds the first outcome instead of delivering twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schemas.delivery import Delivery, SendRequest, SendResult
from storage.tables import DeliveryRow, utcnow


class DeliveryLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def claim(self, request: SendRequest) -> SendResult | None:
        """Mark the send pending. Returns the earlier outcome when it was already settled."""
        for _ in range(3):
            async with self._sessions() as session:
                row = await self._row(session, request.idempotency_key)
                if row is not None:
                    if row.status != "pending":
                        return SendResult(status=row.status, reason=row.reason, delivery_id=row.id)  # type: ignore[arg-type]
                    row.attempts += 1
                    session.add(row)
                    await session.commit()
                    return None
                session.add(
                    DeliveryRow(
                        idempotency_key=request.idempotency_key,
                        customer_id=request.customer_id,
                        journey_id=request.journey_id,
                        version=request.version,
                        step_id=request.step_id,
                        channel=request.channel,
                        status="pending",
                        attempts=1,
                    )
                )
                try:
                    await session.commit()
                    return None
                except IntegrityError:  # another attempt claimed it first; read theirs
                    await session.rollback()
        raise RuntimeError(f"could not claim delivery {request.idempotency_key}")

    async def settle(
        self,
        key: str,
        result: SendResult,
        content: dict[str, Any] | None = None,
        rows: Sequence[SQLModel] = (),
    ) -> SendResult:
        """Record the outcome, atomically with `rows` the channel needs written."""
        async with self._sessions() as session:
            row = await self._row(session, key)
            if row is None:
                raise RuntimeError(f"delivery {key} was never claimed")
            row.status, row.reason, row.updated_at = result.status, result.reason, utcnow()
            if content is not None:
                row.content = content
            session.add(row)
            session.add_all(rows)
            await session.commit()
            return result.model_copy(update={"delivery_id": row.id})

    async def for_customer(self, customer_id: str) -> list[Delivery]:
        async with self._sessions() as session:
            query = (
                select(DeliveryRow)
                .where(DeliveryRow.customer_id == customer_id)
                .order_by(col(DeliveryRow.id))
            )
            rows = (await session.exec(query)).all()
            return [Delivery.model_validate(r, from_attributes=True) for r in rows]

    @staticmethod
    async def _row(session: AsyncSession, key: str) -> DeliveryRow | None:
        query = select(DeliveryRow).where(DeliveryRow.idempotency_key == key)
        return (await session.exec(query)).first()
