"""List-Unsubscribe links (RFC 8058). Mail clients POST `List-Unsubscribe=One-Click` to
the link; a person who clicks it gets a page with a button, because link scanners GET
every URL in an email and must not unsubscribe anyone."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from journeys.api.deps import RouterDep, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.schemas import unsubscribe as links
from journeys.schemas.access import KB, public
from journeys.usecases.consent import withdraw

router = APIRouter(prefix="/v1/unsubscribe", tags=["consent"])

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body><main><h1>{heading}</h1><p>{text}</p>{form}</main></body></html>"""


def _verified(request: Request, token: str) -> tuple[str, str]:
    found = links.verify(request.app.state.unsubscribe_key, token)
    if found is None:
        raise problem(404, "unknown or tampered unsubscribe link", "path", "token")
    return found


@router.get("/{token}", response_class=HTMLResponse)
@public()
async def confirm_page(request: Request, token: str) -> str:
    """The link in an email: a page asking to confirm (opening it changes nothing, since
    mail scanners open every link)."""
    _, channel = _verified(request, token)
    form = f'<form method="post"><button type="submit">Unsubscribe from {channel}</button></form>'
    return PAGE.format(
        heading="Unsubscribe", text=f"Stop marketing messages on {channel}?", form=form
    )


@router.post("/{token}", response_class=HTMLResponse)
@public(max_body=4 * KB)
async def one_click(
    request: Request, token: str, stores: StoresDep, events: RouterDep, settings: SettingsDep
) -> str:
    """Unsubscribe: the confirmation page's button, or a mail client's RFC 8058 one-click
    POST. Marketing on the link's channel stops; the unsubscribe event ends journeys."""
    customer_id, channel = _verified(request, token)
    await withdraw(customer_id, channel, "list-unsubscribe", stores, events, settings)
    return PAGE.format(
        heading="Unsubscribed", text=f"You will get no more marketing on {channel}.", form=""
    )
