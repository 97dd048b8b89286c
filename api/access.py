"""Which scope each route needs, and how much it may be sent, as the routes declare it.

Each endpoint declares its `Access` where it is defined (`schemas.access.requires` and
`public`); `table` reads them off the app's routes, and refuses an app with a route that
declares nothing, so a new route is closed until someone gives it a scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path

from journeys.schemas.access import Access, declared

LIBRARY: dict[tuple[str, str], Access] = {("GET", "/openapi.json"): Access(None)}
"""Routes a library defines (FastAPI's own OpenAPI document): the only ones declared here."""


@dataclass(frozen=True)
class Matched:
    access: Access
    template: str
    params: dict[str, str]


class Table:
    """Finds the declared access of a request's route by method and path, before the app
    routes it (so a key is checked before the body is read)."""

    def __init__(self, entries: dict[tuple[str, str], Access]):
        self.entries = entries
        self._entries: list[tuple[str, re.Pattern[str], str, Access]] = [
            (method, compile_path(path)[0], path, access)
            for (method, path), access in entries.items()
        ]

    def match(self, method: str, path: str) -> Matched | None:
        method = "GET" if method == "HEAD" else method
        for wanted, pattern, template, access in self._entries:
            if wanted == method and (found := pattern.match(path)):
                return Matched(access, template, found.groupdict())
        return None

    def methods(self, path: str) -> list[str]:
        """The methods some route takes at `path` (for a 405's `Allow`). A path that is a
        route of its own (`/v1/journeys/backtests`) names that route's methods only, not
        those of a route it fits by a parameter (`/v1/journeys/{journey_id}`)."""
        found = [(m, t) for m, pattern, t, _ in self._entries if pattern.match(path)]
        literal = [(m, t) for m, t in found if "{" not in t]
        return sorted({m for m, _ in (literal or found)})


def table(app: FastAPI) -> Table:
    """The access every route of `app` declares (included routers flattened, HEAD aside);
    RuntimeError naming any route that declares none."""
    entries: dict[tuple[str, str], Access] = {}
    missing = []
    for route in iter_route_contexts(app.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method == "HEAD":
                continue
            key = (method, str(route.path))
            access = declared(getattr(route, "endpoint", None)) or LIBRARY.get(key)
            if access is None:
                missing.append(f"{method} {route.path}")
            else:
                entries[key] = access
    if missing:
        raise RuntimeError(f"routes that declare no access (requires/public): {', '.join(missing)}")
    return Table(entries)
