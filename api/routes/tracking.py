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

router = APIRouter(prefix="/v1/track", tags=["tracking"])

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1x1 GIF."""
Token = Annotated[
    str, Path(min_length=5, max_length=64, pattern=r"^[0-9]+\.[0-9o]+\.[A-Za-z0-9_-]+$")
]
NO_STORE = {"Cache-Control": "no-store, private"}


async def _message(
    request: Request, stores: Stores, settings: Settings, token: str, wanted: str
) -> tuple[reactions.Sent, float, str | None]:
    """The message a token names, seconds since it was sent, and for a click its link."""
    verified = reactions.verify(request.app.state.tracking_key, token)
    if verified is None or (verified[1] == reactions.OPEN) != (wanted == "opened"):
        raise problem(404, "unknown or tampered tracking link", "path", "token")
    delivery_id, target = verified
    found = await stores.reactions.sent(delivery_id)
    if found is None:
        raise problem(404, "unknown or tampered tracking link", "path", "token")
    sent, sent_at, links = found
    age = (datetime.now(UTC) - sent_at).total_seconds()
    if age > settings.tracking_ttl.total_seconds():
        raise problem(404, "this tracking link has expired", "path", "token")
    if wanted == "opened":
        return sent, age, None
    assert isinstance(target, int)
    if target >= len(links):
        raise problem(404, "unknown or tampered tracking link", "path", "token")
    return sent, age, links[target]


def _record(
    background: BackgroundTasks,
    request: Request,
    stores: Stores,
    events: RouterDep,
    settings: Settings,
    sent: reactions.Sent,
    reaction: str,
    age: float,
    link: str | None = None,
) -> None:
    machine = reactions.is_machine(
        request.headers.get("user-agent", ""), age, reaction, settings.tracking_scanner_seconds
    )
    background.add_task(
        react,
        stores,
        events,
        sent,
        reaction,
        datetime.now(UTC),
        max_bytes=settings.max_event_bytes,
        machine=machine,
        link=link,
    )


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
    sent, age, _ = await _message(request, stores, settings, token, "opened")
    _record(background, request, stores, events, settings, sent, "opened", age)
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
    sent, age, link = await _message(request, stores, settings, token, "clicked")
    assert link is not None
    _record(background, request, stores, events, settings, sent, "clicked", age, link)
    return RedirectResponse(link, status_code=302, headers=NO_STORE)
