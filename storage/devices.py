"""The devices each push message was accepted for, written as FCM accepts each one: a retry
of the send (a timeout, a kill, a 429 midway through a customer's devices) goes only to
the tokens not yet accepted. Tokens are kept as hashes: a device token is an address."""

from __future__ import annotations

import hashlib

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.storage.db import write_turn
from journeys.storage.tables import DeviceSendRow


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DeviceSends:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def accepted(self, key: str) -> dict[str, str]:
        """The send's devices FCM accepted already: token hash → FCM's message name."""
        async with self._sessions() as session:
            found = await session.exec(
                select(DeviceSendRow).where(DeviceSendRow.delivery_key == key)
            )
            return {r.token_hash: r.message_name for r in found.all()}

    async def accept(self, key: str, token: str, name: str) -> None:
        """FCM accepted the send for `token` (once: a second write of it is a no-op)."""
        async with write_turn(self._sessions), self._sessions() as session:
            session.add(
                DeviceSendRow(delivery_key=key, token_hash=token_hash(token), message_name=name)
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
