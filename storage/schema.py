"""The database schema, owned by Alembic migrations (storage/migrations): upgrade to the
newest revision, say where a database stands, and write a new revision from the models.

`journeys db upgrade` migrates (the embedded default and the tests do it as they open the
stores); `journeys api` and `journeys worker` only check, and refuse an old database in
one line, so a deployment migrates once, in its own Job, before new pods start.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from journeys.storage import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

BASELINE = "0001"
"""The first revision: the schema as it was when migrations began. A database made before
then (tables, no `alembic_version`) is stamped with it, then upgraded."""


LEGACY = f"{BASELINE} (tables made before migrations)"


class SchemaBehind(Exception):
    """The database needs `journeys db upgrade` before this version can use it."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "journeys.storage:migrations")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this version of the code knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, target: str = "head") -> tuple[str | None, str]:
    config = _config(connection)
    before = _current(connection)
    if before is None and inspect(connection).has_table("deliveries"):
        command.stamp(config, BASELINE)  # made by create_all before migrations existed
        before = LEGACY
    command.upgrade(config, target)
    return before, str(_current(connection))


async def _locked(engine: AsyncEngine, work: Any) -> Any:
    """Run `work(connection)` holding the lock an API and a worker starting together
    contend for: SQLite's write lock (BEGIN IMMEDIATE) or a PostgreSQL advisory lock."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await conn.execute(text("SELECT pg_advisory_xact_lock(7007)"))
        result = await conn.run_sync(work)
        await conn.commit()
        return result


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str]:
    """Migrate to the newest revision (or `target`); (the revision before, the one now)."""
    result: tuple[str | None, str] = await _locked(engine, lambda c: _upgrade(c, target))
    return result


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def check(engine: AsyncEngine) -> None:
    """SchemaBehind unless the database is at a revision this code can use: its head, or
    one newer (a rollback of the code after an additive migration)."""
    at = await current(engine)
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    if at == head() or (at is not None and at not in known):
        return
    where = f"at revision {at}" if at else "not migrated"
    raise SchemaBehind(
        f"the database is {where}; this version needs {head()}: run "
        "`journeys db upgrade` (deploy/README.md, Upgrading)"
    )


async def drift(engine: AsyncEngine) -> list[Any]:
    """What the models have that the migrated database lacks, or the reverse: empty unless
    a model changed without a revision (`journeys db revision` writes one)."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def revision(engine: AsyncEngine, message: str) -> str:
    """Write a new revision file with what the models changed since the head (the
    database, at head, is only read)."""

    def write(connection: Connection) -> str:
        number = len(list(ScriptDirectory.from_config(_config()).walk_revisions())) + 1
        script = command.revision(
            _config(connection), message=message, autogenerate=True, rev_id=f"{number:04d}"
        )
        assert script is not None and not isinstance(script, list)
        return str(script.path)

    async with engine.connect() as conn:
        return await conn.run_sync(write)
