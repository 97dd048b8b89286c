"""Who may call the API: scopes, API keys and the audit log's entries.

A key is a random token shown once at creation; only its SHA-256 is stored (the token has
256 bits of entropy, so a slow password hash would add nothing but latency per request).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

from pydantic import ConfigDict, Field

from journeys.schemas.base import Schema

Scope = Literal["events:write", "journeys:write", "operate", "read", "decide", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
SCOPE_HELP: dict[Scope, str] = {
    "events:write": "send customer events (/v1/events and the Segment routes; such a key "
    "is also a Segment write key)",
    "journeys:write": "publish journeys, change templates and offers, migrate enrollments",
    "operate": "steer enrollments, audiences and audience runs, write, unsubscribe and "
    "erase customers' profiles",
    "read": "read journeys, enrollments, funnels, profiles, deliveries and inboxes",
    "decide": "ask the decisioning service for offers (workers do)",
    "admin": "everything, and manage keys and read the audit log",
}
KEY_PREFIX = "jk_"
KB = 1024
MB = 1024 * KB


@dataclass(frozen=True)
class Access:
    """What a route needs: a scope (None: public), and the largest body it takes (as sent
    and once decompressed). Each route declares it where it is defined (`requires`,
    `public`); the API's guard reads it off the app's routes."""

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


F = TypeVar("F", bound=Callable[..., Any])
ACCESS_ATTRIBUTE = "__journeys_access__"


def requires(scope: Scope | None, **limits: Any) -> Callable[[F], F]:
    """Declare a route's access on its endpoint, under the route's decorator:

        @router.post("/v1/journeys")
        @requires("journeys:write", max_body=MB, audit="id")
        async def publish(...): ...

    Args:
        scope: the scope a caller's key needs; None for a public route (`public`).
        limits: the other fields of `Access` (`max_body`, `gzip`, ...).
    """
    access = Access(scope, **limits)

    def declare(endpoint: F) -> F:
        setattr(endpoint, ACCESS_ATTRIBUTE, access)
        return endpoint

    return declare


def public(**limits: Any) -> Callable[[F], F]:
    """Declare a route that takes no key (health, signed links, provider callbacks)."""
    return requires(None, **limits)


def declared(endpoint: object) -> Access | None:
    """The access an endpoint declares, or None."""
    return getattr(endpoint, ACCESS_ATTRIBUTE, None)


class KeyIn(Schema):
    """A new key: who holds it, and what it may do."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "checkout-service", "scopes": ["events:write"]}]}
    )

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
    """Who holds it, e.g. `checkout-service`."""
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))
    """What it may do (see the scopes)."""


class KeyOut(Schema):
    """A key as listed: never the token itself."""

    id: str
    """The key's id (not the key itself)."""
    name: str
    """Who holds it."""
    scopes: list[Scope]
    """What it may do."""
    created_at: datetime
    """When it was made."""
    last_used_at: datetime | None
    """When it last called the API (to the minute)."""
    revoked_at: datetime | None
    """When it was revoked; null while it works."""


class KeyCreated(KeyOut):
    token: str
    """The key itself (`Authorization: Bearer <token>`). Shown once: it is stored hashed."""


class Caller(Schema):
    """Who made a request: a key's id and name (or a built-in identity) and its scopes."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


class AuditEntry(Schema):
    """One change made through the API: by which key, when, what and from where."""

    id: int
    """The entry's number; higher is newer."""
    at: datetime
    """When the change was made."""
    key_id: str
    """The key that made it."""
    key_name: str
    """That key's name."""
    action: str
    """The operation, e.g. `POST /v1/journeys/{journey_id}/migrate`."""
    target: dict[str, Any]
    """The ids it touched (path parameters; a published journey's id)."""
    status: int
    """The HTTP status the change was answered with."""
    client: str | None
    """The caller's address."""
