"""An API and a worker started together both create the tables: neither may fail."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect

from storage.db import create_tables, make_engine
from tests.conftest import POSTGRES_URL


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_processes_starting_together_both_create_the_tables(
    tmp_path: Path, database: str
) -> None:
    for i in range(5):
        schema = f"race_{uuid.uuid4().hex[:8]}"
        if database == "sqlite":
            url, schema_arg = f"sqlite+aiosqlite:///{tmp_path / f'race-{i}.db'}", None
        else:
            url, schema_arg = POSTGRES_URL, schema
            with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as c:
                c.execute(f"CREATE SCHEMA {schema}")
        engines = [make_engine(url, schema=schema_arg) for _ in range(3)]
        try:
            await asyncio.gather(*(create_tables(e) for e in engines))
            async with engines[0].connect() as conn:
                tables = await conn.run_sync(
                    lambda c, s=schema_arg: inspect(c).get_table_names(schema=s)
                )
            assert {"profiles", "deliveries", "journey_versions"} <= set(tables)
        finally:
            for engine in engines:
                await engine.dispose()
            if database == "postgres":
                with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as c:
                    c.execute(f"DROP SCHEMA {schema} CASCADE")
