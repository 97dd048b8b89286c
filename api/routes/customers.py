"""Customer profiles and what the customer received."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request

from journeys.api import customer_tokens
from journeys.api.deps import ClientDep, CustomerId, RouterDep, RowId, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.api.models import ProfileIn, UnsubscribeIn
from journeys.api.pages import Cursor, Limit, Page, paginate
from journeys.schemas.access import requires
from journeys.schemas.base import Schema
from journeys.schemas.delivery import Delivery, InboxMessage
from journeys.schemas.profile import Profile
from journeys.schemas.reactions import CAN_REACT
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.consent import withdraw
from journeys.usecases.erasure import Erased, erase
from journeys.usecases.reactions import react
from journeys.usecases.routing import EventRouter

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.put("/{customer_id}")
@requires("operate")  # consent and addresses: operators (audited), not write keys
async def put_profile(customer_id: CustomerId, body: ProfileIn, stores: StoresDep) -> Profile:
    """Create or replace the customer's profile (activity learned from events is kept);
    503 while the customer is being erased."""
    return await stores.profiles.put(Profile(customer_id=customer_id, **body.model_dump()))


@router.delete("/{customer_id}")
@requires("operate")
async def erase_customer(customer_id: CustomerId, stores: StoresDep, client: ClientDep) -> Erased:
    """Erase the customer: their running enrollments end (as `exited`, "customer erased"),
    their profile, deliveries, inbox, offer grants, decisions and list memberships are
    deleted, and so is every workflow run that names them, with its history. Temporal
    removes deleted runs from visibility asynchronously, within seconds. Meanwhile the
    customer's events are answered 503 with `Retry-After`; a second erase of the same
    customer is 409."""
    try:
        return await erase(client, stores, customer_id)
    except ValueError as err:
        raise problem(409, str(err), "path", "customer_id") from err


@router.get("/{customer_id}")
@requires("read")
async def get_profile(customer_id: CustomerId, stores: StoresDep) -> Profile:
    """The customer's profile, with what the server learned from their events (activity
    hours, last seen, location)."""
    profile = await stores.profiles.get(customer_id)
    if profile is None:
        raise problem(404, "no such customer", "path", "customer_id")
    return profile


@router.get("/{customer_id}/deliveries")
@requires("read")
async def deliveries(
    customer_id: CustomerId, stores: StoresDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[Delivery]:
    """Every message sent, suppressed or failed for the customer, oldest first."""
    found = await stores.ledger.for_customer(customer_id)
    return paginate(found, lambda d: d.id or 0, limit, cursor)


class InboxToken(Schema):
    token: str
    """For the customer's app: `Authorization: Bearer <token>` on this customer's inbox
    routes (list, read, dismiss), and nothing else."""
    expires_at: datetime
    """When the token stops opening the inbox."""


@router.post("/{customer_id}/inbox-token")
@requires("read")
async def inbox_token(
    customer_id: CustomerId, request: Request, settings: SettingsDep
) -> InboxToken:
    """A token that opens this customer's in-app inbox, for their own app to read it
    without an API key (your backend asks for it when the customer signs in)."""
    expires = datetime.now(UTC) + settings.inbox_token_ttl
    token = customer_tokens.mint(request.app.state.inbox_key, customer_id, expires)
    return InboxToken(token=token, expires_at=expires)


@router.get("/{customer_id}/inbox")
@requires("read", customer_token=True)
async def inbox(
    customer_id: CustomerId, stores: StoresDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[InboxMessage]:
    """In-app messages not dismissed, newest first."""
    found = await stores.inbox.for_customer(customer_id)
    return paginate(found, lambda m: m.id, limit, cursor, newest_first=True)


@router.post("/{customer_id}/inbox/{message_id}/read")
@requires("read", customer_token=True)
async def read_message(
    customer_id: CustomerId,
    message_id: RowId,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
) -> InboxMessage:
    """The app showed the message (its `message.opened`)."""
    return await _mark(customer_id, message_id, "read", stores, events, settings)


@router.post("/{customer_id}/inbox/{message_id}/dismiss")
@requires("read", customer_token=True)
async def dismiss_message(
    customer_id: CustomerId,
    message_id: RowId,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
) -> InboxMessage:
    """The customer dismissed it: it leaves the inbox listing (`message.dismissed`)."""
    return await _mark(customer_id, message_id, "dismissed", stores, events, settings)


async def _mark(
    customer_id: CustomerId,
    message_id: RowId,
    what: Literal["read", "dismissed"],
    stores: Stores,
    events: EventRouter,
    settings: Settings,
) -> InboxMessage:
    message = await stores.inbox.mark(customer_id, message_id, what)
    if message is None:
        raise problem(404, "no such inbox message for this customer", "path", "message_id")
    key = await stores.inbox.key_of(message_id)
    sent = await stores.ledger.sent_by_key(key) if key else None
    if sent is not None:  # read is an open; dismissed, an open and a dismissal
        for reaction in ("opened", "dismissed") if what == "dismissed" else ("opened",):
            await react(stores, events, sent, reaction, datetime.now(UTC), **_app(settings))
    return message


def _app(settings: Settings) -> dict[str, Any]:
    return {"max_bytes": settings.max_event_bytes, "source": "app"}


@router.post("/{customer_id}/messages/{delivery_id}/{reaction}", status_code=204)
@requires("read", customer_token=True)
async def app_reaction(
    customer_id: CustomerId,
    delivery_id: RowId,
    reaction: Literal["opened", "clicked", "dismissed"],
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
) -> None:
    """The customer's app reports what the customer did with a push or in-app message
    (the push's `data.journeys_delivery` names it), with the customer's own token: no
    API key in the app. The first of each kind is a `message.*` event; repeats are
    counted. 404 for a message that is not this customer's push or in-app message."""
    found = await stores.ledger.sent_message(delivery_id)
    sent = found[0] if found is not None else None
    if sent is None or sent.customer_id != customer_id or sent.channel not in ("push", "in_app"):
        raise problem(
            404, "no such push or in-app message for this customer", "path", "delivery_id"
        )
    if reaction not in CAN_REACT[sent.channel]:
        raise problem(422, f"a {sent.channel} message cannot be {reaction}", "path", "reaction")
    await react(stores, events, sent, reaction, datetime.now(UTC), **_app(settings))


@router.post("/{customer_id}/unsubscribe")
@requires("operate")
async def unsubscribe(
    customer_id: CustomerId,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
    body: UnsubscribeIn | None = None,
) -> Profile:
    """Withdraw marketing consent (one channel, or all) and end marketing journeys."""
    channel = body.channel if body else None
    return await withdraw(customer_id, channel, "api", stores, events, settings)
