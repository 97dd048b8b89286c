"""How the CLI reaches the API and talks to scripts: the address and key `journeys up`
keeps in the data folder (or JOURNEYS_API_URL, JOURNEYS_API_KEY), answers that are not a
success as one-line CliErrors, `--json` output, and a console that does not cut tables
when piped."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from journeys.schemas.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"

console = Console(width=None if sys.stdout.isatty() else 10_000)
"""Rich output; piped, it keeps every column whole (a script reads it)."""

ApiUrl = Annotated[
    str | None,
    typer.Option(
        envvar="JOURNEYS_API_URL",
        help="The journeys API; default: the one `journeys up` runs (its data folder says).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the answer as JSON, for scripts.")]


class CliError(Exception):
    """What went wrong, in one line for stderr (exit status 1)."""


def _kept(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def find_key() -> str | None:
    """JOURNEYS_API_KEY, else the key `journeys up` keeps in the data folder."""
    settings = Settings()
    given = settings.api_key.get_secret_value() if settings.api_key else None
    return given or _kept(settings.api_key_file)


def find_api_url(given: str | None = None) -> str:
    """`given` (the option or JOURNEYS_API_URL), else the address `journeys up` wrote to
    the data folder, else the default."""
    return (given or _kept(Settings().api_url_file) or DEFAULT_URL).rstrip("/")


def api_client(api_url: str | None = None, timeout: float = 60) -> httpx.Client:
    """A client of the API (relative URLs) that carries the CLI's key."""
    key = find_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=find_api_url(api_url), timeout=timeout, headers=headers)


def ok(response: httpx.Response, *statuses: int) -> Any:
    """The answer's JSON, or CliError: `HTTP 404 Not Found: <the problem's detail>`."""
    if response.status_code in (statuses or (200,)):
        return response.json() if response.content else None
    try:
        detail = str(response.json().get("detail") or "")
    except ValueError:
        detail = response.text[:200]
    phrase = response.reason_phrase or ""
    raise CliError(f"HTTP {response.status_code} {phrase}: {detail}".rstrip(": "))


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
