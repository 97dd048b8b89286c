"""API keys (stored hashed) and the audit log of changes made with them."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.schemas.access import KEY_PREFIX, AuditEntry, Caller, KeyCreated, KeyOut, Scope
from journeys.storage.tables import ApiKeyRow, AuditRow

CACHED_KEYS = 10_000
LAST_USED_EVERY = timedelta(minutes=1)
"""A key's last-used time is written at most this often (not on every request)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _out(row: ApiKeyRow) -> KeyOut:
    return KeyOut.model_validate(row, from_attributes=True)


class KeyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self._cache: dict[str, tuple[str, Caller, datetime]] = {}
        """By key id: (the token it was checked with, the caller, when)."""
        self._used: dict[str, datetime] = {}

    async def create(self, name: str, scopes: list[Scope]) -> KeyCreated:
        """A new key; its token is in the answer and nowhere else."""
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = ApiKeyRow(id=key_id, name=name, scopes=sorted(set(scopes)), hash=digest(token))
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return KeyCreated(**_out(row).model_dump(), token=token)

    async def all(self) -> list[KeyOut]:
        async with self._sessions() as session:
            rows = (await session.exec(select(ApiKeyRow).order_by(col(ApiKeyRow.created_at)))).all()
            return [_out(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyOut | None:
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                session.add(row)
                await session.commit()
                await session.refresh(row)
        self._cache.pop(key_id, None)  # this process refuses it from now on
        return _out(row)

    async def caller(
        self, token: str, *, cache_for: timedelta = timedelta(seconds=5)
    ) -> Caller | None:
        """The key `token` is, if it exists and is not revoked. Lookups are cached briefly
        per process: a revocation takes effect at once on the process that revokes, and
        within `cache_for` on every other."""
        if not token.startswith(KEY_PREFIX) or len(token) > 120:
            return None
        key_id = token[len(KEY_PREFIX) :].split("_", 1)[0]
        now = datetime.now(UTC)
        cached = self._cache.get(key_id)
        found: Caller | None = None
        if (
            cached is not None
            and now - cached[2] < cache_for
            and secrets.compare_digest(cached[0], token)
        ):
            found = cached[1]
        else:
            found = await self._lookup(key_id, token)
            if found is not None:  # misses are not kept: random tokens must not fill memory
                if len(self._cache) >= CACHED_KEYS:
                    self._cache.clear()
                self._cache[key_id] = (token, found, now)
        if (
            found is not None
            and now - self._used.get(key_id, now - LAST_USED_EVERY) >= LAST_USED_EVERY
        ):
            self._used[key_id] = now
            await self._touch(key_id, now)
        return found

    async def _lookup(self, key_id: str, token: str) -> Caller | None:
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not secrets.compare_digest(row.hash, digest(token)):
            return None
        return Caller(key_id=row.id, name=row.name, scopes=frozenset(row.scopes))

    async def _touch(self, key_id: str, at: datetime) -> None:
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is not None:
                row.last_used_at = at
                session.add(row)
                await session.commit()


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def record(
        self,
        caller: Caller,
        action: str,
        target: dict[str, Any],
        status: int,
        client: str | None,
    ) -> None:
        row = AuditRow(
            key_id=caller.key_id,
            key_name=caller.name,
            action=action,
            target=target,
            status=status,
            client=client,
        )
        async with self._sessions() as session:
            session.add(row)
            await session.commit()

    async def page(self, *, before: int | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first; `before` an entry id to page further back."""
        query = select(AuditRow).order_by(col(AuditRow.id).desc()).limit(limit)
        if before is not None:
            query = query.where(col(AuditRow.id) < before)
        async with self._sessions() as session:
            rows = (await session.exec(query)).all()
        return [AuditEntry.model_validate(r, from_attributes=True) for r in rows]
