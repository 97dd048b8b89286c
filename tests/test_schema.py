"""The schema is owned by migrations: a database made before them (by `create_all`) keeps
every row through `journeys db upgrade`; the migrated schema is exactly the models' (a
model changed without a revision fails here); processes starting together migrate once;
`journeys api`/`worker` refuse a database that is not migrated, in one line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from journeys.stack.embedded import PROJECT
from journeys.storage import schema
from journeys.storage.db import make_engine
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.both_databases

PLAIN_URL = POSTGRES_URL.replace("+psycopg", "")


@contextlib.contextmanager
def database(kind: str, tmp_path: Any) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of an empty database: a SQLite file, or a PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4().hex[:6]}.db'}", None
        return
    name = f"schema_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PLAIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield POSTGRES_URL, name
    finally:
        with psycopg.connect(PLAIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@contextlib.asynccontextmanager
async def engine_for(url: str, name: str | None) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(url, schema=name)
    try:
        yield engine
    finally:
        await engine.dispose()


def sample(column: Any, row: int) -> Any:
    """A value of the column's type, different for each row."""
    kind = column.type
    if isinstance(kind, TypeDecorator):  # sqlmodel's AutoString, UTCDateTime
        kind = kind.impl_instance
    if isinstance(kind, JSON):
        return {"row": row, "list": [row, "é"]}
    if isinstance(kind, Boolean):
        return row % 2 == 0
    if isinstance(kind, Integer):
        return 1000 + row
    if isinstance(kind, Float):
        return row + 0.5
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1 + row, 12, tzinfo=UTC)
    if isinstance(kind, String):
        return f"{column.name}-{row}"[: kind.length or 200]
    raise AssertionError(f"no sample for {column.table.name}.{column.name}: {kind!r}")


def rows_for(table: Any) -> list[dict[str, Any]]:
    return [{c.name: sample(c, n) for c in table.columns} for n in range(3)]


async def legacy_database(url: str, name: str | None) -> list[Any]:
    """A database as the last release before migrations made it (the baseline's tables,
    no `alembic_version`), three rows in every table; its tables."""
    async with engine_for(url, name) as engine:
        await schema.upgrade(engine, schema.BASELINE)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE alembic_version")
            present = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            tables = [t for t in SQLModel.metadata.sorted_tables if t.name in present]
            for table in tables:
                await conn.execute(insert(table), rows_for(table))
    return tables


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_database_made_before_migrations_keeps_every_row(tmp_path: Any, kind: str) -> None:
    with database(kind, tmp_path) as (url, name):
        tables = await legacy_database(url, name)
        assert len(tables) == 14  # the baseline's; 0002 adds aliases and groups
        env = {"JOURNEYS_DATABASE_URL": url, "JOURNEYS_DATABASE_SCHEMA": name or "null"}
        done = journeys("db", "upgrade", **env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == (
            f"migrated the database from {schema.LEGACY} to {schema.head()}"
        )
        async with engine_for(url, name) as engine:
            assert await schema.current(engine) == schema.head()
            assert await schema.drift(engine) == []
            async with engine.connect() as conn:
                for table in tables:
                    found = [dict(r._mapping) for r in await conn.execute(select(table))]
                    key = [c.name for c in table.primary_key.columns]
                    order = sorted(found, key=lambda r, k=key: [r[c] for c in k])  # type: ignore[misc]
                    assert order == rows_for(table), table.name
        assert journeys("db", "current", **env).returncode == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_the_migrated_schema_is_the_models(tmp_path: Any, kind: str) -> None:
    """Fails when storage/tables.py changes without a revision: `journeys db revision`."""
    with database(kind, tmp_path) as (url, name):
        async with engine_for(url, name) as engine:
            assert await schema.upgrade(engine) == (None, schema.head())
            assert await schema.drift(engine) == []
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert tables == {t.name for t in SQLModel.metadata.sorted_tables} | {"alembic_version"}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_processes_starting_together_migrate_once(tmp_path: Any, kind: str) -> None:
    for _ in range(3):
        with database(kind, tmp_path) as (url, name):
            engines = [make_engine(url, schema=name) for _ in range(3)]
            try:
                done = await asyncio.gather(*(schema.upgrade(e) for e in engines))
                assert sorted(before or "" for before, _ in done) == ["", *[schema.head()] * 2]
                assert await schema.current(engines[0]) == schema.head()
            finally:
                for engine in engines:
                    await engine.dispose()


def journeys(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeys.cli.main", *args],
        env={**os.environ, **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_api_refuses_a_database_not_migrated_in_one_line(
    tmp_path: Any, temporal_address: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await legacy_database(url, None)
    done = journeys(
        "api",
        JOURNEYS_DATABASE_URL=url,
        JOURNEYS_TEMPORAL_ADDRESS=temporal_address,
        JOURNEYS_GENERATE_SECRETS="true",
        JOURNEYS_DATA_DIR=str(tmp_path),
        JOURNEYS_METRICS_ADDRESS="null",
        JOURNEYS_TRACING="false",
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"journeys: cannot use the database {url}: the database is not migrated; this version "
        f"needs {schema.head()}: run `journeys db upgrade` (deploy/README.md, Upgrading)"
    )
