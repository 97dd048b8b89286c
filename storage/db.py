"""The async engine and session factory, for SQLite files and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from journeys.storage import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from journeys.storage.tables import utcnow


def make_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine for `url`. SQLite gets WAL and a busy timeout so the API and workers can
    share one file; `schema` (PostgreSQL) isolates a test run in its own schema."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _pragmas)
        return engine
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_async_engine(url, pool_size=10, max_overflow=20, connect_args=connect_args)


def _pragmas(conn: Any, _record: Any) -> None:
    cursor = conn.cursor()
    _wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    # No checkpoint inside a request's commit (that was the p99 of every write);
    # `checkpoints` runs them in the background instead.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _wal(cursor: Any, tries: int = 200) -> None:
    """Switch to WAL. Another process opening a new database at the same moment holds it
    locked briefly, and this switch does not wait on SQLite's busy timeout: retry. (Runs
    in the driver's thread, not on the event loop.)"""
    for attempt in range(tries):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == tries - 1:
                raise
            time.sleep(0.05)


async def checkpoints(engine: AsyncEngine, every: float = 1.0) -> None:
    """Fold SQLite's write-ahead log into the database every `every` seconds, off the
    request path (PASSIVE: never waits for readers or writers). Runs until cancelled."""
    while True:
        await asyncio.sleep(every)
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


P = ParamSpec("P")
R = TypeVar("R")


class Transactions:
    """Runs a function of a (sync) `Connection` as one transaction, for the hot paths.

    On a SQLite file it runs whole in one thread of its own, on a sync engine over the same
    file: aiosqlite crosses threads for every cursor call (about 0.3 ms of CPU a
    statement, against 0.03 ms run in place; bench/RESULTS.md), so a transaction of six
    statements cost more than the request it served. Elsewhere (PostgreSQL, an in-memory
    SQLite) it runs on the async engine's connection (`run_sync`: no thread)."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._sync = create_engine(
                engine.url.set(drivername="sqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(self._sync, "connect", _pragmas)
            # One thread: SQLite takes one writer at a time, and its connection stays warm.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-transactions")

    async def __call__(
        self, work: Callable[Concatenate[Connection, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        if self._sync is None or self._thread is None:
            async with self._engine.begin() as connection:
                return await connection.run_sync(work, *args, **kwargs)
        sync = self._sync

        def in_thread() -> R:
            with sync.begin() as connection:
                return work(connection, *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._thread, in_thread)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown()
        if self._sync is not None:
            self._sync.dispose()


def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def upsert(session: AsyncSession, table: type[SQLModel], key: Any, **values: Any) -> None:
    """Insert a row with `values` (its primary key among them), or update the row whose
    primary key is `key`, stamping `updated_at`. The caller commits."""
    row = await session.get(table, key)
    if row is None:
        session.add(table(**values))
        return
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()  # type: ignore[attr-defined]
    session.add(row)


async def serialize(session: AsyncSession, key: str) -> None:
    """Hold an exclusive lock on `key` until the transaction ends: a PostgreSQL advisory
    lock (only that key), or on SQLite the database's write lock, taken by a write, so
    there it must be the transaction's first statement."""
    if session.get_bind().dialect.name == "postgresql":
        await session.exec(_ADVISORY_LOCK, params={"k": key})  # type: ignore[call-overload]
    else:
        await session.exec(_WRITE_LOCK)  # type: ignore[call-overload]


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))")
_WRITE_LOCK = text("UPDATE deliveries SET id = id WHERE 0 = 1")


_turns: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def write_turn(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """Hold around a write transaction. SQLite takes one writer at a time: this process's
    writers to one database take turns here, in order, instead of in SQLite's busy
    handler, which sleeps and retries (a reservation's p99 at 50 concurrent sends was
    4.2 s that way). Elsewhere nothing: PostgreSQL locks only what `serialize` names."""
    bind = sessions.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        yield
        return
    lock = _turns.setdefault(bind.sync_engine, asyncio.Lock())
    async with lock:
        yield
