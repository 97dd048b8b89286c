"""Callbacks from providers, each checked for the provider's own signature before it is read:
- Twilio's delivery receipts update the ledger; its inbound messages are replies (STOP and
  START change consent; every reply is a `message.replied` event);
- Amazon SES's bounces, complaints and deliveries, through SNS (with its subscription
  handshake);
- SendGrid's Event Webhook.

An unsigned or badly signed callback is a 401 and changes nothing; a replayed one changes
nothing a second time; one about a message this deployment does not know is kept for the
operator (`GET /v1/providers/callbacks`)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Request, Response

from journeys.api.deps import RouterDep, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.api.pages import Cursor, Limit, Page, decode, encode
from journeys.schemas.access import KB, public, requires
from journeys.schemas.base import Schema
from journeys.schemas.feedback import Feedback, from_sendgrid, from_ses
from journeys.schemas.reactions import CAN_REACT
from journeys.schemas.settings import Settings
from journeys.schemas.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    TWILIO_HEADER,
    verify_sendgrid,
    verify_twilio,
)
from journeys.storage.secrets import twilio_token
from journeys.storage.stores import Stores
from journeys.usecases.feedback import apply
from journeys.usecases.reactions import react
from journeys.usecases.replies import replied
from journeys.usecases.routing import EventRouter

router = APIRouter(prefix="/v1/providers", tags=["providers"])
TWILIO_REACTIONS = {
    "delivered": "delivered",
    "read": "opened",
    "undelivered": "failed",
    "failed": "failed",
}
"""Twilio's message statuses that are reactions."""
UNSIGNED: dict[int | str, dict[str, Any]] = {
    401: {"description": "The provider's signature is missing or does not match."}
}
MessageSid = Annotated[
    str, Form(alias="MessageSid", min_length=1, max_length=64, description="Twilio's message id.")
]
SENDGRID_TOLERANCE = 600
"""Seconds a SendGrid signature's timestamp may be off (a replay outside it is refused)."""


async def _twilio_form(request: Request, settings: Any, signature: str | None) -> dict[str, str]:
    """The form of a request Twilio signed over the public URL and the form, made with
    the auth token (`JOURNEYS_TWILIO_AUTH_TOKEN`, or the sandbox's); 401 otherwise. With
    no token, no callback is trusted."""
    token = twilio_token(settings)
    url = f"{settings.public_url.rstrip('/')}{request.url.path}"
    form = {k: str(v) for k, v in (await request.form()).items()}
    if token is None or not signature or not verify_twilio(token, url, form, signature):
        raise problem(401, "invalid Twilio signature", "header", TWILIO_HEADER)
    return form


@router.post("/twilio/status", status_code=204, responses=UNSIGNED)
@public(max_body=16 * KB)
async def twilio_status(
    request: Request,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
    message_sid: MessageSid,
    message_status: Annotated[
        str,
        Form(
            alias="MessageStatus",
            min_length=1,
            max_length=32,
            description="queued, sent, delivered, undelivered or failed.",
        ),
    ],
    error_code: Annotated[
        str | None, Form(alias="ErrorCode", max_length=16, description="Twilio's error code.")
    ] = None,
    signature: Annotated[str | None, Header(alias=TWILIO_HEADER)] = None,
) -> None:
    """Twilio's status callback (signed: see the module). `delivered`, `read` (WhatsApp's
    read receipt) and `undelivered` or `failed` are the message's `message.delivered`,
    `message.opened` and `message.failed`."""
    await _twilio_form(request, settings, signature)
    detail = f"error {error_code}" if error_code else None
    sent = await stores.ledger.provider_update(message_sid, message_status, detail)
    if sent is None:
        raise problem(404, "no message with this sid", "body", "MessageSid")
    reaction = TWILIO_REACTIONS.get(message_status)
    if reaction is not None and reaction in CAN_REACT.get(sent.channel, ()):
        at = datetime.now(UTC)
        extra = {"error_code": error_code} if error_code else None
        await react(
            stores, events, sent, reaction, at,
            max_bytes=settings.max_event_bytes, source="twilio", extra=extra,
        )  # fmt: skip


@router.post(
    "/twilio/inbound",
    response_class=Response,
    responses={**UNSIGNED, 200: {"content": {"text/xml": {}}, "description": "Empty TwiML"}},
)
@public(max_body=16 * KB)
async def twilio_inbound(
    request: Request,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
    message_sid: MessageSid,
    sender: Annotated[
        str,
        Form(
            alias="From",
            min_length=2,
            max_length=40,
            pattern=r"^(whatsapp:)?\+[1-9][0-9]{6,14}$",
            description="The customer's number (E.164; `whatsapp:` for WhatsApp).",
        ),
    ],
    body: Annotated[str, Form(alias="Body", max_length=1600, description="What they wrote.")] = "",
    signature: Annotated[str | None, Header(alias=TWILIO_HEADER)] = None,
) -> Response:
    """Twilio's incoming-message webhook (signed): STOP, STOPALL, UNSUBSCRIBE, CANCEL, END
    and QUIT withdraw the channel's consent; START, UNSTOP and YES give it back. Every
    reply is a `message.replied` event with its body. Answers empty TwiML (no reply
    message)."""
    await _twilio_form(request, settings, signature)
    at = datetime.now(UTC)
    await replied(stores, events, settings, sender=sender, body=body, sid=message_sid, at=at)
    return Response("<Response/>", media_type="text/xml")


class Applied(Schema):
    """What a callback came to."""

    applied: int = 0
    """Events applied to a known message."""
    unknown_message: int = 0
    """Events about a message this deployment does not know (kept for the operator)."""
    replayed: int = 0
    """Events seen before: nothing changed."""


async def _applied(
    feedback: list[Feedback], stores: Stores, events: EventRouter, settings: Settings
) -> Applied:
    """Apply each feedback event once, in order; what they came to."""
    outcomes: Counter[str] = Counter([await apply(f, stores, events, settings) for f in feedback])
    return Applied(**outcomes)


def _json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise problem(400, "not JSON", "body", where) from None


@router.post(
    "/ses",
    responses=UNSIGNED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string", "maxLength": 262144}}},
            "description": "An SNS message (SNS posts JSON as text/plain).",
        }
    },
)
@public(max_body=256 * KB)
async def ses(
    request: Request, stores: StoresDep, events: RouterDep, settings: SettingsDep
) -> Applied:
    """Amazon SES's notifications through SNS: a `SubscriptionConfirmation` is answered
    (its SubscribeURL fetched, on an SNS host); a `Notification` from a topic in
    `JOURNEYS_SES_TOPIC_ARNS` carries a bounce, a complaint or a delivery. Both must carry
    SNS's signature, by a certificate from an SNS host."""
    try:
        message = json.loads(await request.body())
    except ValueError:
        message = None  # (not JSON: no message SNS signed)
    if not isinstance(message, dict) or not await request.app.state.sns.verify(message):
        raise problem(401, "not a message SNS signed for a topic taken here", "body", "Signature")
    if message.get("Type") == "SubscriptionConfirmation":
        if not await request.app.state.sns.confirm(message):
            raise problem(422, "the subscription could not be confirmed", "body", "SubscribeURL")
        return Applied()
    if message.get("Type") != "Notification":
        return Applied()
    notification = _json(str(message.get("Message", "")).encode(), "Message")
    if not isinstance(notification, dict):
        raise problem(422, "the notification is not a JSON object", "body", "Message")
    feedback = from_ses(str(message.get("MessageId")), notification)
    return await _applied(feedback, stores, events, settings)


@router.post(
    "/sendgrid",
    responses=UNSIGNED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "maxItems": 1000, "items": {"type": "object"}}
                }
            },
            "description": "A batch of SendGrid Event Webhook events.",
        }
    },
)
@public(max_body=1024 * KB)
async def sendgrid(
    request: Request,
    stores: StoresDep,
    events: RouterDep,
    settings: SettingsDep,
    signature: Annotated[str | None, Header(alias=SENDGRID_SIGNATURE, max_length=200)] = None,
    timestamp: Annotated[str | None, Header(alias=SENDGRID_TIMESTAMP, max_length=20)] = None,
) -> Applied:
    """SendGrid's Event Webhook (signed, ECDSA, with the key in
    `JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY`): bounces (a `blocked` one is soft), drops,
    spam reports, unsubscribes and deliveries."""
    raw = await request.body()
    key = request.app.state.sendgrid_key
    fresh = timestamp is not None and timestamp.isdigit()
    if fresh:
        fresh = abs(datetime.now(UTC).timestamp() - int(timestamp)) <= SENDGRID_TOLERANCE  # type: ignore[arg-type]
    if not (key and signature and fresh and verify_sendgrid(key, timestamp, raw, signature)):  # type: ignore[arg-type]
        raise problem(401, "invalid SendGrid signature", "header", SENDGRID_SIGNATURE)
    batch = _json(raw, "events")
    if not isinstance(batch, list) or len(batch) > 1000:
        raise problem(422, "not a list of at most 1,000 events", "body", "events")
    return await _applied(from_sendgrid(batch), stores, events, settings)


class Unmatched(Schema):
    """A provider callback event about no message this deployment knows."""

    source: str
    """`ses`, `sendgrid` or `twilio`."""
    event_id: str
    """The provider's id for the event (SNS MessageId, sg_event_id, MessageSid)."""
    kind: str
    """What it said: `bounced`, `complained`, `delivered`, `replied`..."""
    received_at: datetime
    """When it came."""


@router.get("/callbacks")
@requires("read")
async def unmatched_callbacks(
    stores: StoresDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[Unmatched]:
    """Provider callbacks that named no known message (a message sent before this
    deployment, or erased with its customer), oldest first: kept, not dropped."""
    after = int(decode(cursor, int)) if cursor is not None else None
    rows = await stores.callbacks.unmatched(after, limit + 1)
    shown = rows[:limit]
    items = [Unmatched.model_validate(r, from_attributes=True) for r in shown]
    more = len(rows) > limit and shown and shown[-1].id is not None
    return Page[Unmatched](items=items, next_cursor=encode(shown[-1].id) if more else None)  # type: ignore[arg-type]
