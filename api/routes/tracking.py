"""An email's open pixel and tracked links: no key (a customer's mail client calls them),
a signed token that names a ledger row and no person, and an answer before the reaction is
recorded (it is routed right after, in the same process).

A click goes only to a link that was in that message as rendered (the row keeps them), so
the route is no open redirect. A forged, altered, expired or erased token is a 404 and
records nothing."""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from journeys.api.deps import RouterDep, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.api.headers import HEADERS
from journeys.schemas import reactions
from journeys.schemas.access import public
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.reactions import held, react
from journeys.usecases.routing import EventRouter

router = APIRouter(prefix="/v1/track", tags=["tracking"])

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1x1 GIF."""
Token = Annotated[
    str, Path(min_length=5, max_length=64, pattern=r"^[0-9]+\.[0-9o]+\.[A-Za-z0-9_-]+$")
]
NO_STORE = {"Cache-Control": "no-store, private"}
PREFIX = "/v1/track/"
_FIXED = [(b"cache-control", b"no-store, private"), *HEADERS.items()]


NOT_FOUND = "unknown, tampered or expired tracking link"


TOKEN = re.compile(r"^[0-9]+\.[0-9o]+\.[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Tracked:
    """A live message's pixel or link, as a token names it."""

    sent: reactions.Sent
    age: float
    """Seconds since the send."""
    link: str | None


async def _tracked(
    key: bytes, stores: Stores, settings: Settings, token: str, reaction: str
) -> Tracked | None:
    """What a token names, or None for any token that is not a live message's (forged,
    altered, erased, expired, or a click past the message's links)."""
    verified = reactions.verify(key, token)
    if verified is None or (verified[1] == reactions.OPEN) != (reaction == "opened"):
        return None
    delivery_id, target = verified
    found = await stores.ledger.recent_message(delivery_id)
    if found is None:
        return None
    sent, sent_at, links = found
    age = (datetime.now(UTC) - sent_at).total_seconds()
    link = links[target] if isinstance(target, int) and target < len(links) else None
    if age > settings.tracking_ttl.total_seconds() or (reaction == "clicked" and link is None):
        return None
    return Tracked(sent, age, link)


async def _record(
    stores: Stores, events: EventRouter, settings: Settings, tracked: Tracked, reaction: str,
    agent: str,
) -> None:  # fmt: skip
    """Record the reaction (run once the answer is out)."""
    machine = reactions.is_machine(agent, tracked.age, reaction, settings.tracking_scanner_seconds)
    await react(
        stores, events, tracked.sent, reaction, datetime.now(UTC),
        max_bytes=settings.max_event_bytes, machine=machine, link=tracked.link,
    )  # fmt: skip


async def _react(
    request: Request,
    token: str,
    reaction: str,
    background: BackgroundTasks,
    stores: Stores,
    events: EventRouter,
    settings: Settings,
) -> str | None:
    """Check the token, and record the reaction once the answer is out: for a click, the
    link it leads to (the message's own, as rendered). 404 for any token that is not a
    live message's, before anything is recorded."""
    tracked = await _tracked(request.app.state.tracking_key, stores, settings, token, reaction)
    if tracked is None:
        raise problem(404, NOT_FOUND, "path", "token")
    agent = request.headers.get("user-agent", "")
    background.add_task(_record, stores, events, settings, tracked, reaction, agent)
    return tracked.link


class FastTracking:
    """The pixel and links, answered in front of the API's middleware: customers' mail
    clients fetch them by the million, and a redirect should cost about what a bare one
    does. Only a live message's token is answered here (with the same answer and the
    security headers); anything else goes on to the routes below, which refuse it as
    documented. Not rate-limited per address: a forged token costs one HMAC, and a real
    one at most one read in 10 seconds (`DeliveryLedger.recent_message`)."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope.get("method") != "GET" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        kind, _, token = path[len(PREFIX) :].partition("/")
        reaction = {"open": "opened", "click": "clicked"}.get(kind)
        tracked = None
        if reaction is not None and 5 <= len(token) <= 64 and TOKEN.match(token):
            state = self.state
            tracked = await _tracked(
                state.tracking_key, state.stores, state.settings, token, reaction
            )
        if tracked is None or reaction is None:
            await self.app(scope, receive, send)
            return
        if reaction == "opened":
            headers = [(b"content-type", b"image/gif"), *_FIXED]
            status, body = 200, PIXEL
        else:
            assert tracked.link is not None
            headers = [(b"location", tracked.link.encode()), *_FIXED]
            status, body = 302, b""
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        agent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"user-agent"), "")
        state = self.state
        machine = reactions.is_machine(
            agent, tracked.age, reaction, state.settings.tracking_scanner_seconds
        )
        if held(state.stores, state.router, tracked.sent, reaction, datetime.now(UTC), machine):
            return  # a repeat, counted in memory
        task = asyncio.ensure_future(
            _record(state.stores, state.router, state.settings, tracked, reaction, agent)
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)


@router.get(
    "/open/{token}",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A 1x1 GIF"}},
)
@public()
async def opened(
    request: Request,
    token: Token,
    background: BackgroundTasks,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
) -> Response:
    """An email's open pixel: a transparent GIF; the message's `message.opened` (a mail
    privacy proxy's open is a machine's)."""
    await _react(request, token, "opened", background, stores, events, settings)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/click/{token}", status_code=302, response_class=RedirectResponse)
@public()
async def clicked(
    request: Request,
    token: Token,
    background: BackgroundTasks,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
) -> RedirectResponse:
    """A tracked link: a redirect to the link as the message had it; the message's
    `message.clicked` with the link (a scanner's click, or one within seconds of the
    send, is a machine's)."""
    link = await _react(request, token, "clicked", background, stores, events, settings)
    assert link is not None
    return RedirectResponse(link, status_code=302, headers=NO_STORE)
