"""The codec server (Temporal's remote codec protocol): the Temporal UI posts encrypted
payloads here and shows what comes back. Only where a payload key is configured, and, with
a codec token, only to callers bearing it."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Header, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.deps import SettingsDep
from api.errors import problem
from workers.codec import codec

router = APIRouter(prefix="/codec", tags=["codec"])


async def _convert(
    request: Request,
    settings: SettingsDep,
    authorization: str | None,
    decrypt: bool,
) -> dict[str, Any]:
    found = codec(settings)
    if found is None:
        raise problem(404, "payload encryption is off (no JOURNEYS_PAYLOAD_KEY)", "path", "codec")
    token = settings.codec_token
    if token is not None and not secrets.compare_digest(
        authorization or "", f"Bearer {token.get_secret_value()}"
    ):
        raise problem(401, "the codec endpoint needs the codec token", "header", "authorization")
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as err:
        raise problem(400, f"not a payloads message: {err}", "body", "payloads") from err
    convert = found.decode if decrypt else found.encode
    converted = await convert(list(payloads.payloads))
    out: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=converted))
    return out


@router.post("/decode")
async def decode(
    request: Request, settings: SettingsDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    """`{"payloads": [...]}` as the UI sends it, decrypted."""
    return await _convert(request, settings, authorization, decrypt=True)


@router.post("/encode")
async def encode(
    request: Request, settings: SettingsDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    """`{"payloads": [...]}` encrypted with the current key (the UI uses it to send signals)."""
    return await _convert(request, settings, authorization, decrypt=False)
