"""`journeys db`: the database's schema. `upgrade` migrates to this version's schema (the
embedded default does it at start; a deployment runs it once per release, as a Job or a
one-shot service, before the new pods); `current` says where a database stands; `revision`
writes the migration for a change to storage/tables.py."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from journeys.cli.http import Json, print_json
from journeys.schemas.settings import Settings

# The database modules load when a command runs, not when `journeys --help` does.
if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
app = typer.Typer(help="The database schema: upgrade, current, revision.", no_args_is_help=True)


def _on_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work(engine)` on the configured database (Unreachable: one line)."""
    from journeys.stack.embedded import database_errors
    from journeys.storage.db import make_engine

    settings = Settings()

    async def run() -> T:
        engine = make_engine(settings.db_url(), schema=settings.database_schema)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    with database_errors(settings):
        return asyncio.run(run())


@app.command()
def upgrade() -> None:
    """Migrate JOURNEYS_DATABASE_URL to this version's schema (safe to run again, and from
    several places at once: one migrates, the others wait and find it done)."""
    from journeys.storage import schema

    before, now = _on_engine(schema.upgrade)
    if before == now:
        print(f"the database is at {now}: nothing to do")
    else:
        print(f"migrated the database from {before or 'empty'} to {now}")


@app.command()
def current(as_json: Json = False) -> None:
    """Print the database's revision and this version's; exit 1 if it needs `upgrade`."""
    from journeys.storage import schema

    at = _on_engine(schema.current)
    if as_json:
        print_json({"database": at, "code": schema.head(), "current": at == schema.head()})
    else:
        print(f"database: {at or 'not migrated'}; this version: {schema.head()}")
    if at != schema.head():
        raise typer.Exit(1)


@app.command()
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the change is for.")],
) -> None:
    """Write a new migration with what storage/tables.py changed since the newest revision
    (compared on a scratch SQLite database migrated to it; check it on PostgreSQL too)."""

    from journeys.storage import schema
    from journeys.storage.db import make_engine

    async def write(folder: str) -> str:
        engine = make_engine(f"sqlite+aiosqlite:///{folder}/scratch.db")
        try:
            await schema.upgrade(engine)
            return await schema.revision(engine, message)
        finally:
            await engine.dispose()

    with tempfile.TemporaryDirectory() as folder:
        print(f"wrote {asyncio.run(write(folder))}: read it before committing it")
