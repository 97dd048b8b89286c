"""Callbacks from providers: Twilio's delivery receipts update the ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request

from journeys.api.deps import SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.schemas.access import KB, public
from journeys.schemas.signatures import TWILIO_HEADER, verify_twilio
from journeys.storage.secrets import twilio_token

router = APIRouter(prefix="/v1/providers", tags=["providers"])


@router.post(
    "/twilio/status",
    status_code=204,
    responses={403: {"description": "Twilio's signature is missing or does not match."}},
)
@public(max_body=16 * KB)
async def twilio_status(
    request: Request,
    stores: StoresDep,
    settings: SettingsDep,
    message_sid: Annotated[
        str,
        Form(alias="MessageSid", min_length=1, max_length=64, description="Twilio's message id."),
    ],
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
    """Twilio's status callback: the request must carry Twilio's signature over the public
    URL and the form, made with the auth token (`JOURNEYS_TWILIO_AUTH_TOKEN`, or the
    sandbox's). With no token, no callback is trusted."""
    token = twilio_token(settings)
    url = f"{settings.public_url.rstrip('/')}{request.url.path}"
    form = {k: str(v) for k, v in (await request.form()).items()}
    if token is None or not signature or not verify_twilio(token, url, form, signature):
        raise problem(403, "invalid Twilio signature", "header", TWILIO_HEADER)
    detail = f"error {error_code}" if error_code else None
    if not await stores.ledger.provider_update(message_sid, message_status, detail):
        raise problem(404, "no message with this sid", "body", "MessageSid")
