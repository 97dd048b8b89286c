"""Payload encryption: on the PostgreSQL stack (which sets a payload key) histories hold
only ciphertext, unreadable without the key, and the codec endpoint decrypts them for the
Temporal UI; on the SQLite stack encryption is off and the endpoint says so."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from journeys.api.app import create_app
from journeys.runtime.codec import codec, new_key
from journeys.runtime.temporal import connect_config
from journeys.schemas.enrollment import enrollment_workflow_id
from journeys.stack.embedded import Stack
from tests.conftest import unique
from tests.helpers import customer, ended, event, one_send, publish_copy

pytestmark = pytest.mark.both_databases

UI = "http://127.0.0.1:8233"


async def started_input(stack: Stack, api: httpx.AsyncClient, secret: str) -> Payloads:
    """The input payloads of a fresh enrollment whose trigger carries `secret`, as the
    server stores them (read by a client with no codec)."""
    copy = await publish_copy(api, one_send("codec", body="hi"))
    cid = await customer(api)
    await event(api, cid, copy.entry, properties={"sku": secret})
    await ended(api, copy.id, cid)
    raw = await Client.connect(connect_config(stack.settings)["target_host"])  # no payload codec
    history = await raw.get_workflow_handle(enrollment_workflow_id(copy.id, cid)).fetch_history()
    return history.events[0].workflow_execution_started_event_attributes.input


def as_json(payloads: Payloads) -> dict[str, Any]:
    found: dict[str, Any] = json_format.MessageToDict(payloads)
    return found


async def test_encrypted_payloads_need_the_key_or_the_codec_endpoint(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    if stack.settings.payload_key is None:
        pytest.skip("this stack keeps payloads plain (see the test below)")
    secret = unique("sku")
    stored = await started_input(stack, api, secret)
    payload = stored.payloads[0]
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"test"
    assert secret.encode() not in payload.data

    # Another key cannot read it.
    other = codec(stack.settings.model_copy(update={"payload_key": SecretStr(new_key())}))
    assert other is not None
    with pytest.raises(InvalidTag):
        await other.decode([payload])

    # The codec endpoint, as the Temporal UI calls it, can.
    response = await api.post(
        "/codec/decode", json=as_json(stored), headers={"Origin": UI, "X-Namespace": "default"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI
    decoded = response.json()["payloads"][0]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert secret in base64.b64decode(decoded["data"]).decode()

    # Encode then decode returns the same payload.
    plain = Payloads()
    json_format.ParseDict(response.json(), plain)
    sealed = await api.post("/codec/encode", json=as_json(plain))
    assert sealed.status_code == 200
    again = await api.post("/codec/decode", json=sealed.json())
    assert again.json() == response.json()
    assert (await api.post("/codec/decode", content=b"{not json")).status_code == 400


async def test_codec_token_guards_the_endpoint(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"payload_key": SecretStr(new_key()), "codec_token": SecretStr("s3cret")}
    )
    app = create_app(settings, stack.stores, stack.client)
    body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}}]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        refused = await http.post("/codec/encode", json=body)
        assert refused.status_code == 401
        assert "API key" in refused.json()["errors"][0]["msg"]
        wrong = await http.post("/codec/encode", json=body, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        ok = await http.post("/codec/encode", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        preflight = await http.options(
            "/codec/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == UI
        elsewhere = await http.options(
            "/codec/decode",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in elsewhere.headers


async def test_plain_payloads_when_no_key_is_set(stack: Stack, api: httpx.AsyncClient) -> None:
    if stack.settings.payload_key is not None:
        pytest.skip("this stack encrypts its payloads (see the test above)")
    secret = unique("sku")
    stored = await started_input(stack, api, secret)
    assert stored.payloads[0].metadata["encoding"] == b"json/plain"
    assert secret.encode() in stored.payloads[0].data
    response = await api.post("/codec/decode", json=as_json(stored))
    assert response.status_code == 404
    assert "encryption is off" in response.json()["errors"][0]["msg"]
