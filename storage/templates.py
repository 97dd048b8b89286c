"""Stored message templates, addressed by id from `send` steps."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.delivery import Template
from journeys.storage.db import upsert
from journeys.storage.tables import TemplateRow


class TemplateStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def put(self, template: Template) -> None:
        async with self._sessions() as session:
            content = template.model_dump(mode="json", exclude={"id"})
            await upsert(session, TemplateRow, template.id, id=template.id, content=content)
            await session.commit()

    async def get(self, template_id: str) -> Template | None:
        async with self._sessions() as session:
            row = await session.get(TemplateRow, template_id)
            return Template(id=row.id, **row.content) if row else None

    async def all(self) -> list[Template]:
        async with self._sessions() as session:
            rows = (await session.exec(select(TemplateRow).order_by(TemplateRow.id))).all()
            return [Template(id=r.id, **r.content) for r in rows]
