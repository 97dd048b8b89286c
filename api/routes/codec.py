"""The codec server (Temporal's remote codec protocol): the Temporal UI posts encrypted
payloads here and shows what comes back. Only where a payload key is configured; callers
bear the codec token or a `read` key (`api.access`), except in the embedded default."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from journeys.api.deps import SettingsDep
from journeys.api.errors import problem
from journeys.runtime.codec import codec
from journeys.schemas.access import MB, requires

router = APIRouter(prefix="/codec", tags=["codec"])


async def _convert(
    request: Request,
    settings: SettingsDep,
    decrypt: bool,
) -> dict[str, Any]:
    found = codec(settings)
    if found is None:
        raise problem(404, "payload encryption is off (no JOURNEYS_PAYLOAD_KEY)", "path", "codec")
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, ValueError) as err:  # (not UTF-8 is a ValueError)
        raise problem(400, "not a payloads message", "body", "payloads") from err
    convert = found.decode if decrypt else found.encode
    try:
        converted = await convert(list(payloads.payloads))
    except Exception as err:  # a tampered payload, or one under a key not held here
        raise problem(422, "a payload cannot be decoded with the keys held", "body") from err
    out: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=converted))
    return out


@router.post("/decode")
@requires("read", max_body=4 * MB, codec_token=True)
async def decode(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """`{"payloads": [...]}` as the UI sends it, decrypted."""
    return await _convert(request, settings, decrypt=True)


@router.post("/encode")
@requires("read", max_body=4 * MB, codec_token=True)
async def encode(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """`{"payloads": [...]}` encrypted with the current key (the UI uses it to send signals)."""
    return await _convert(request, settings, decrypt=False)
