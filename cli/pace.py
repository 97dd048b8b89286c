"""`journeys pace [show|set|reset]`: the send queues over the API (`read` to show,
`operate` to change a ceiling; changes are audited and hold on every worker at once)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from journeys.cli.http import ApiUrl, Json, api_client, console, ok, print_json

app = typer.Typer(
    help="Send queues: what waits for a provider's ceiling or a journey's pace, and how "
    "long until it has gone. Change a ceiling at run time with `set`.",
    no_args_is_help=False,
    invoke_without_command=True,
)
Bucket = Annotated[
    str,
    typer.Argument(
        help="email, push, webhook, sms:+15005550006, whatsapp:+14155238886, "
        "journey:<id> or journey:<id>/<step>."
    ),
]


def _show(queues: list[dict[str, Any]]) -> None:
    table = Table("queue", "ceiling /s", "from", "waiting", "oldest wait", "drains in", "sent/min")
    for q in queues:
        ceiling = "none" if q["per_second"] is None else f"{q['per_second']:g}"
        table.add_row(
            q["bucket"], ceiling, q["limit_from"], str(q["waiting"]),
            f"{q['oldest_wait_seconds']:.0f} s", f"{q['drain_seconds']:.0f} s",
            str(q["sent_last_minute"]),
        )  # fmt: skip
    console.print(table)


@app.callback()
def pace(ctx: typer.Context, api_url: ApiUrl = None, as_json: Json = False) -> None:
    """Every send queue (the same as `journeys pace show`)."""
    if ctx.invoked_subcommand is None:
        show(api_url, as_json)


@app.command()
def show(api_url: ApiUrl = None, as_json: Json = False) -> None:
    """Every send queue: its ceiling, waiting sends, oldest wait and drain time."""
    with api_client(api_url) as http:
        found = ok(http.get("/v1/pace"))
    if as_json:
        print_json(found)
        return
    _show(found["queues"])


@app.command("set")
def set_(
    bucket: Bucket,
    per_second: Annotated[float, typer.Argument(help="Sends a second at most, cluster-wide.")],
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Set a queue's ceiling now, without a restart (a provider raised your limit)."""
    _change(bucket, per_second, api_url, as_json)


@app.command()
def reset(bucket: Bucket, api_url: ApiUrl = None, as_json: Json = False) -> None:
    """Put a queue's ceiling back to the settings' (a journey's: its spec's)."""
    _change(bucket, None, api_url, as_json)


def _change(bucket: str, per_second: float | None, api_url: str | None, as_json: bool) -> None:
    with api_client(api_url) as http:
        found = ok(http.put("/v1/pace", json={"bucket": bucket, "per_second": per_second}))
    if as_json:
        print_json(found)
        return
    _show([q for q in found["queues"] if q["bucket"] == bucket])
