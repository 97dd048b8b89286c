"""An email's open pixel and tracked links: no key (a customer's mail client calls them),
a signed token that names a ledger row and no person, and an answer before the reaction is
recorded (it is routed right after, in the same process).

A click goes only to a link that was in that message as rendered (the row keeps them), so
the route is no open redirect. A forged, altered, expired or erased token is a 404 and
records nothing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response
from fastapi.responses import RedirectResponse

from journeys.api.deps import RouterDep, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.schemas import reactions
from journeys.schemas.access import public
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.reactions import react
from journeys.usecases.routing import EventRouter

router = APIRouter(prefix="/v1/track", tags=["tracking"])

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1x1 GIF."""
Token = Annotated[
    str, Path(min_length=5, max_length=64, pattern=r"^[0-9]+\.[0-9o]+\.[A-Za-z0-9_-]+$")
]
NO_STORE = {"Cache-Control": "no-store, private"}


NOT_FOUND = "unknown, tampered or expired tracking link"


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
    verified = reactions.verify(request.app.state.tracking_key, token)
    if verified is None or (verified[1] == reactions.OPEN) != (reaction == "opened"):
        raise problem(404, NOT_FOUND, "path", "token")
    delivery_id, target = verified
    found = await stores.ledger.recent_message(delivery_id)
    if found is None:
        raise problem(404, NOT_FOUND, "path", "token")
    sent, sent_at, links = found
    age = (datetime.now(UTC) - sent_at).total_seconds()
    link = links[target] if isinstance(target, int) and target < len(links) else None
    if age > settings.tracking_ttl.total_seconds() or (reaction == "clicked" and link is None):
        raise problem(404, NOT_FOUND, "path", "token")
    agent = request.headers.get("user-agent", "")
    background.add_task(
        react,
        stores,
        events,
        sent,
        reaction,
        datetime.now(UTC),
        max_bytes=settings.max_event_bytes,
        machine=reactions.is_machine(agent, age, reaction, settings.tracking_scanner_seconds),
        link=link,
    )
    return link


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
