"""`journeys suppressions list|add|remove`: the suppression list over the API (`read` to
list, `operate` to change; changes are audited)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.table import Table

from journeys.cli.http import ApiUrl, Json, api_client, console, ok, print_json

app = typer.Typer(
    help="Addresses no message goes to (hard bounces, repeated soft bounces, an operator's "
    "word): list, add, remove.",
    no_args_is_help=True,
)
Channel = Annotated[str, typer.Option(help="email, sms or whatsapp.")]


@app.command("list")
def list_(
    channel: Annotated[str | None, typer.Option(help="One channel only.")] = None,
    limit: Annotated[int, typer.Option(help="How many, oldest first.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="The next_cursor of a --json answer.")] = None,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Suppressed addresses, with why and who said so."""
    params: dict[str, str | int] = {"limit": limit}
    params |= {"channel": channel} if channel else {}
    params |= {"cursor": cursor} if cursor else {}
    with api_client(api_url) as http:
        page = ok(http.get("/v1/suppressions", params=params))
    if as_json:
        print_json(page)
        return
    table = Table("channel", "address", "reason", "source", "since", "detail")
    for s in page["items"]:
        table.add_row(
            s["channel"], s["address"], s["reason"], s["source"], s["created_at"][:19],
            s["detail"] or "",
        )  # fmt: skip
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


@app.command()
def add(
    address: Annotated[str, typer.Argument(help="The email address or phone number (E.164).")],
    channel: Channel = "email",
    detail: Annotated[str | None, typer.Option(help="Why, in your words.")] = None,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Suppress an address: no message goes to it on that channel until it is removed."""
    body = {"channel": channel, "address": address, **({"detail": detail} if detail else {})}
    with api_client(api_url) as http:
        found = ok(http.post("/v1/suppressions", json=body), 200, 201)
    if as_json:
        print_json(found)
        return
    console.print(f"{found['address']} ({found['channel']}): suppressed, {found['reason']}")


@app.command()
def remove(
    address: Annotated[str, typer.Argument(help="The address to take off the list.")],
    channel: Channel = "email",
    api_url: ApiUrl = None,
) -> None:
    """Take an address off the list (its soft-bounce count too)."""
    with api_client(api_url) as http:
        ok(http.delete(f"/v1/suppressions/{channel}/{quote(address, safe='')}"), 204)
    console.print(f"{address} ({channel}): no longer suppressed")
