"""API keys on the command line: where the CLI finds its key, the admin key `journeys up`
makes on first run, and `journeys keys create|list|revoke` and `journeys audit`.

`keys` works on the database itself (JOURNEYS_DATABASE_URL, else the data folder's SQLite
file), as Django's `createsuperuser` does: that is how the first key of a production
deployment is made, before any key exists to call the API with.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from journeys.cli.http import Json, console, print_json
from journeys.schemas.access import SCOPE_HELP, SCOPES, Caller, Scope
from journeys.schemas.settings import Settings

if TYPE_CHECKING:
    from journeys.storage.stores import Stores  # loaded when a command runs, not for --help

T = TypeVar("T")
app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


def _on_database(work: Callable[[Stores], Awaitable[T]]) -> T:
    """Run `work` on the configured database, which `journeys db upgrade` has migrated
    (else Unreachable: one line, from `journeys`' main)."""
    from journeys.stack.embedded import open_stores

    async def run() -> T:
        stores = await open_stores(Settings(), migrate=False)
        try:
            return await work(stores)
        finally:
            await stores.close()

    return asyncio.run(run())


LOCAL = Caller(key_id="cli", name=f"cli:{getpass.getuser()}", scopes=frozenset({"admin"}))
SCOPE_LIST = "; ".join(f"{s}: {h}" for s, h in SCOPE_HELP.items())


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Who holds it, e.g. 'checkout-service'.")],
    scope: Annotated[
        list[str], typer.Option(help=f"Repeatable. {SCOPE_LIST}.", show_default=False)
    ],
) -> None:
    """Make a key and print it once (only its hash is kept)."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        console.print(f"[red]unknown scope {', '.join(unknown)}[/]: one of {', '.join(SCOPES)}")
        raise typer.Exit(2)
    scopes: list[Scope] = [s for s in SCOPES if s in scope]

    async def work(stores: Stores) -> str:
        made = await stores.keys.create(name, scopes)
        await stores.audit.record(LOCAL, "keys create", {"key_id": made.id}, 201, None)
        return made.token

    token = _on_database(work)
    console.print(f"key for {name} ({', '.join(scopes)}); it is not shown again:")
    print(token)


@app.command("list")
def list_keys(as_json: Json = False) -> None:
    """Every key: id, name, scopes, created, last used, revoked."""
    keys = _on_database(lambda stores: stores.keys.all())
    if as_json:
        print_json([k.model_dump(mode="json", exclude={"hash"}) for k in keys])
        return
    table = Table("id", "name", "scopes", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k.id, k.name, ", ".join(k.scopes), f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-",
        )  # fmt: skip
    console.print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Revoke a key; API processes stop taking it within seconds."""

    async def work(stores: Stores) -> bool:
        revoked = await stores.keys.revoke(key_id)
        if revoked is not None:
            await stores.audit.record(LOCAL, "keys revoke", {"key_id": key_id}, 200, None)
        return revoked is not None

    if not _on_database(work):
        console.print(f"[red]no key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
