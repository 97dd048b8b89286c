"""Which scope each route needs, and how much it may be sent: the one place that says so.

Every route of the app is in `ROUTES` or in `PUBLIC`; `check_covered` refuses to build an
app with a route in neither, so a new route is closed until someone gives it a scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path

from journeys.schemas import segment
from journeys.schemas.access import Scope

KB = 1024
MB = 1024 * KB


@dataclass(frozen=True)
class Access:
    """What a route needs: a scope (None: public), and the largest body it takes (as sent
    and once decompressed)."""

    scope: Scope | None
    max_body: int = 64 * KB
    gzip: bool = False
    """Takes `Content-Encoding: gzip` (Segment's libraries send it)."""
    basic: bool = False
    """Takes the key as a Basic-auth user or a `writeKey` (Segment's libraries)."""
    customer_token: bool = False
    """Also takes the customer's own inbox token (a customer's app)."""
    codec_token: bool = False
    """Also takes the codec token (the Temporal UI)."""
    audit: str | None = None
    """A body field naming what a change touches, kept in the audit log."""


def _segment(max_body: int) -> Access:
    return Access("events:write", max_body=max_body, gzip=True, basic=True)


READ = Access("read")
SEGMENT_MESSAGE = 32 * KB  # Segment's own limits: 32 KB a message, 500 KB a batch
SEGMENT_BATCH = 500 * KB
J = "/v1/journeys/{journey_id}"
ENROLLMENT = f"{J}/enrollments/{{customer_id}}"
CUSTOMER = "/v1/customers/{customer_id}"

ROUTES: dict[tuple[str, str], Access] = {
    # Customer data in: events, Segment calls, profiles.
    ("POST", "/v1/events"): Access("events:write", max_body=SEGMENT_BATCH),
    **{("POST", f"/v1/{call}"): _segment(SEGMENT_MESSAGE) for call in segment.CALLS},
    **{("POST", f"/v1/{route}"): _segment(SEGMENT_BATCH) for route in segment.BATCHES},
    ("PUT", CUSTOMER): Access("events:write"),
    # Journeys, templates, offers and migration.
    ("POST", "/v1/journeys"): Access("journeys:write", max_body=MB, audit="id"),
    ("PUT", "/v1/templates/{template_id}"): Access("journeys:write", max_body=256 * KB),
    ("PUT", "/v1/offers/{offer_id}"): Access("journeys:write"),
    ("DELETE", "/v1/offers/{offer_id}"): Access("journeys:write"),
    ("POST", f"{ENROLLMENT}/migrate"): Access("journeys:write"),
    ("POST", f"{J}/migrate"): Access("journeys:write"),
    # Operators: controls, audiences, consent, erasure.
    **{
        ("POST", f"{ENROLLMENT}/{action}"): Access("operate")
        for action in ("exit", "pause", "resume", "skip")
    },  # fmt: skip
    ("POST", f"{J}/controls/{{action}}"): Access("operate"),
    ("POST", "/v1/audiences/{audience_id}/members"): Access("operate", max_body=4 * MB),
    ("POST", f"{J}/audience-runs"): Access("operate"),
    ("POST", f"{J}/audience-runs/{{run}}/cancel"): Access("operate"),
    ("POST", f"{CUSTOMER}/unsubscribe"): Access("operate"),
    ("DELETE", CUSTOMER): Access("operate"),
    # Reading.
    ("GET", "/v1/journeys"): READ,
    ("GET", J): READ,
    ("GET", f"{J}/versions/{{version}}"): READ,
    ("GET", f"{J}/funnel"): READ,
    ("GET", ENROLLMENT): READ,
    ("GET", f"{J}/audience-runs/{{run}}"): READ,
    ("GET", "/v1/audiences/{audience_id}"): READ,
    ("GET", CUSTOMER): READ,
    ("GET", f"{CUSTOMER}/deliveries"): READ,
    ("GET", "/v1/templates"): READ,
    ("GET", "/v1/templates/{template_id}"): READ,
    ("GET", "/v1/offers"): READ,
    ("GET", "/v1/offers/{offer_id}"): READ,
    ("POST", f"{CUSTOMER}/inbox-token"): READ,
    # A customer's own app reads its inbox with the token its backend got for it.
    ("GET", f"{CUSTOMER}/inbox"): Access("read", customer_token=True),
    ("POST", f"{CUSTOMER}/inbox/{{message_id}}/read"): Access("read", customer_token=True),
    ("POST", f"{CUSTOMER}/inbox/{{message_id}}/dismiss"): Access("read", customer_token=True),
    # Workers ask the built-in decisioning service.
    ("POST", "/v1/decisions"): Access("decide"),
    # The Temporal UI decrypts payloads (codec token, or a read key).
    ("POST", "/codec/decode"): Access("read", max_body=4 * MB, codec_token=True),
    ("POST", "/codec/encode"): Access("read", max_body=4 * MB, codec_token=True),
    # Keys and the audit log.
    ("POST", "/v1/keys"): Access("admin"),
    ("GET", "/v1/keys"): Access("admin"),
    ("DELETE", "/v1/keys/{key_id}"): Access("admin"),
    ("GET", "/v1/audit"): Access("admin"),
}

OPEN = Access(None)
PUBLIC: dict[tuple[str, str], Access] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    # Signed links in emails: the token is the authority.
    ("GET", "/v1/unsubscribe/{token}"): OPEN,
    ("POST", "/v1/unsubscribe/{token}"): Access(None, max_body=4 * KB),
    # Twilio signs its callbacks (checked once JOURNEYS_TWILIO_AUTH_TOKEN is set).
    ("POST", "/v1/providers/twilio/status"): Access(None, max_body=16 * KB),
    # The funnel page is a shell without data; it reads the funnel with the viewer's key.
    ("GET", "/journeys/{journey_id}/funnel"): OPEN,
    ("GET", "/static/mermaid.js"): OPEN,
    # The API's own description and its offline viewers.
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("GET", "/static/docs/{name}"): OPEN,
}
SANDBOX_PREFIX = "/sandbox/"
"""The provider sandboxes are public, and exist only in the embedded default."""
SANDBOX = Access(None, max_body=256 * KB)


@dataclass(frozen=True)
class Matched:
    access: Access
    template: str
    params: dict[str, str]


class Table:
    """Finds the declared access of a request's route by method and path, before the app
    routes it (so a key is checked before the body is read)."""

    def __init__(self, entries: dict[tuple[str, str], Access]):
        self._entries: list[tuple[str, re.Pattern[str], str, Access]] = [
            (method, compile_path(path)[0], path, access)
            for (method, path), access in entries.items()
        ]

    def match(self, method: str, path: str) -> Matched | None:
        method = "GET" if method == "HEAD" else method
        for wanted, pattern, template, access in self._entries:
            if wanted == method and (found := pattern.match(path)):
                return Matched(access, template, found.groupdict())
        if path.startswith(SANDBOX_PREFIX):
            return Matched(SANDBOX, path, {})
        return None

    def methods(self, path: str) -> list[str]:
        """The methods some route takes at `path` (for a 405's `Allow`)."""
        return sorted({m for m, pattern, _, _ in self._entries if pattern.match(path)})


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves (HEAD aside), included routers flattened."""
    return [
        (method, str(route.path))
        for route in iter_route_contexts(app.routes)
        for method in sorted(getattr(route, "methods", None) or ())
        if method != "HEAD"
    ]


def check_covered(app: FastAPI) -> None:
    """Refuse an app with a route that declares no access."""
    missing = [
        f"{m} {p}"
        for m, p in app_routes(app)
        if (m, p) not in ROUTES and (m, p) not in PUBLIC and not p.startswith(SANDBOX_PREFIX)
    ]
    if missing:
        raise RuntimeError(f"routes without a scope in api/access.py: {', '.join(missing)}")
