"""Every channel end to end, each against a local server that speaks its provider's format
and records what it received: Twilio (SMS, WhatsApp, status callbacks), FCM HTTP v1,
signed webhooks, and the in-app inbox read and dismissed over the API."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from journeys.schemas.signatures import sign_twilio, sign_webhook, verify_webhook
from journeys.stack.embedded import Stack
from journeys.storage.secrets import twilio_token
from tests.conftest import Receiver, eventually, unique
from tests.helpers import (
    customer,
    deliveries,
    ended,
    event,
    one_send,
    publish_copy,
    received,
)


async def _one(
    api: httpx.AsyncClient, cid: str, properties: dict[str, Any] | None = None, **send: Any
) -> dict[str, Any]:
    """Publish a one-send journey, enter `cid` (the entry event carries `properties`), wait
    for the enrollment to end, and return the ledger entry of its send."""
    journey = await publish_copy(api, one_send(unique("chan"), **send))
    await event(api, cid, journey.entry, properties=properties or {})
    await ended(api, journey.id, cid)
    return (await deliveries(api, cid))[-1]


async def test_sms_in_twilio_format_with_status_callback(api: httpx.AsyncClient) -> None:
    phone = f"+1555{int(time.time() * 1000) % 10_000_000:07d}"
    cid = await customer(api, phone=phone)
    sent = await _one(
        api, cid, {"code": "428193"}, channel="sms", body="Your code is {{ event.code }}"
    )
    assert sent["status"] == "sent", sent
    assert sent["provider_id"].startswith("SM")
    [request] = await received(api, "twilio", phone)
    assert request["form"]["From"] == "+15005550006"
    assert request["form"]["Body"] == "Your code is 428193"
    assert request["form"]["StatusCallback"].endswith("/v1/providers/twilio/status")
    # Twilio's delivery receipts come back through the callback and update the ledger.
    receipt = await eventually(
        lambda: deliveries(api, cid), lambda d: d[-1]["provider_status"] == "delivered"
    )
    assert receipt[-1]["status"] == "sent"


async def test_whatsapp_goes_to_the_whatsapp_address_and_needs_consent(
    api: httpx.AsyncClient,
) -> None:
    phone = f"+4915{int(time.time() * 1000) % 100_000_000:08d}"
    cid = await customer(api, phone=phone)
    sent = await _one(api, cid, channel="whatsapp", body="Renew today")
    assert sent["status"] == "sent"
    [request] = await received(api, "twilio", f"whatsapp:{phone}")
    assert request["form"]["From"].startswith("whatsapp:")

    refused = await customer(api, phone=phone, consent={"whatsapp": False})
    suppressed = await _one(api, refused, channel="whatsapp", body="Renew today")
    assert (suppressed["status"], suppressed["reason"]) == ("suppressed", "no_consent")


async def test_a_number_twilio_rejects_fails_the_send_for_good(api: httpx.AsyncClient) -> None:
    cid = await customer(api, phone="+15005550001")  # Twilio's magic invalid number
    failed = await _one(api, cid, channel="sms", body="Hi")
    assert failed["status"] == "failed"
    assert "21211" in failed["reason"]
    assert failed["attempts"] == 1  # a 4xx is never retried


async def test_push_in_fcm_v1_format_removes_invalid_tokens(api: httpx.AsyncClient) -> None:
    good, stale = unique("tok"), unique("invalid-tok")
    cid = await customer(api, push_tokens=[good, stale])
    sent = await _one(api, cid, channel="push", subject="Come back", body="Your bag is empty")
    assert sent["status"] == "sent"
    assert sent["provider_status"] == "accepted by 1 of 2 device(s), 1 invalid token(s) removed"
    [request] = await received(api, "fcm", good)
    message = request["message"]
    assert message["notification"] == {"title": "Come back", "body": "Your bag is empty"}
    assert all(isinstance(v, str) for v in message["data"].values())
    collapse = message["android"]["collapse_key"]  # a repeated copy replaces the first
    assert len(collapse) == 32 and message["apns"]["headers"]["apns-collapse-id"] == collapse
    assert message["webpush"]["headers"]["Topic"] == collapse
    profile = (await api.get(f"/v1/customers/{cid}")).json()
    assert profile["push_tokens"] == [good]

    only_stale = await customer(api, push_tokens=[unique("expired-tok")])
    failed = await _one(api, only_stale, channel="push", body="Hi")
    assert failed["status"] == "failed"
    assert "no valid device token" in failed["reason"]
    assert (await api.get(f"/v1/customers/{only_stale}")).json()["push_tokens"] == []


async def test_webhook_is_signed_and_retried_after_a_provider_outage(
    api: httpx.AsyncClient,
) -> None:
    cid = await customer(api)
    await api.post("/sandbox/faults", json={"provider": "webhooks", "status": 503, "times": 2})
    sent = await _one(
        api, cid, {"cart_id": "c1"}, channel="webhook", body="cart {{ event.cart_id }}"
    )
    assert sent["status"] == "sent"
    assert sent["attempts"] == 3  # two 503s, retried with backoff, then accepted
    hooks = [
        r
        for r in await received(api, "webhooks")
        if json.loads(r["body"]).get("customer_id") == cid
    ]
    assert len(hooks) == 1
    assert hooks[0]["verified"] is True
    assert hooks[0]["idempotency_key"].endswith("/send/1")


async def test_webhook_refused_by_the_receiver_fails_the_step(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    cid = await customer(api)
    failed = await _one(api, cid, channel="webhook", body="x", url=f"{receiver.url}/no-such")
    assert failed["status"] == "failed"
    assert "HTTP 404" in failed["reason"]


def test_signatures_match_the_providers_own_libraries() -> None:
    url = "https://journeys.example/v1/providers/twilio/status"
    params = {"MessageSid": "SM123", "MessageStatus": "delivered", "To": "+15551234567"}
    signature = sign_twilio(b"auth-token", url, params)
    assert RequestValidator("auth-token").validate(url, params, signature)
    assert not RequestValidator("other-token").validate(url, params, signature)

    body = b'{"a":1}'
    header = sign_webhook(b"secret", 1_700_000_000, body)
    assert verify_webhook(b"secret", header, body, now=1_700_000_100)
    assert not verify_webhook(b"secret", header, body + b" ", now=1_700_000_100)
    assert not verify_webhook(b"secret", header, body, now=1_700_001_000)  # too old: a replay


async def test_inbox_read_and_dismiss(api: httpx.AsyncClient) -> None:
    cid = await customer(api)
    await _one(api, cid, channel="in_app", subject="Hello", body="Welcome")
    [message] = (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]
    assert message["read_at"] is None
    read = await api.post(f"/v1/customers/{cid}/inbox/{message['id']}/read")
    assert read.status_code == 200 and read.json()["read_at"]
    other = await api.post(f"/v1/customers/{unique('x')}/inbox/{message['id']}/dismiss")
    assert other.status_code == 404  # not another customer's message
    dismissed = await api.post(f"/v1/customers/{cid}/inbox/{message['id']}/dismiss")
    assert dismissed.json()["dismissed_at"]
    assert (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"] == []


async def test_the_sandboxes_want_keys_and_call_nothing_a_caller_names(
    anonymous: httpx.AsyncClient, api: httpx.AsyncClient, stack: Stack
) -> None:
    """Issue 34: what the sandboxes received needs a `read` key, faults an `operate` key,
    Twilio's endpoint its auth token; a StatusCallback elsewhere than this deployment's own
    route is refused, and nothing is called; a forged status callback is refused."""
    assert (await anonymous.get("/sandbox/twilio/received")).status_code == 401
    fault = {"provider": "twilio", "status": 503, "times": 1}
    assert (await anonymous.post("/sandbox/faults", json=fault)).status_code == 401
    path = "/sandbox/twilio/2010-04-01/Accounts/ACsandbox/Messages.json"
    form = {"To": "+15551234567", "From": "+15005550006", "Body": "x"}
    unauthorised = await anonymous.post(path, data=form, auth=("ACsandbox", "guess"))
    assert unauthorised.status_code == 401
    token = (twilio_token(stack.settings) or b"").decode()
    assert (await api.get("/sandbox/twilio/received")).status_code == 200
    ssrf = {**form, "StatusCallback": "http://127.0.0.1:9/anything"}
    elsewhere = await anonymous.post(path, data=ssrf, auth=("ACsandbox", token))
    assert elsewhere.status_code == 400 and elsewhere.json()["code"] == 21609  # before any call
    forged = await anonymous.post(
        "/v1/providers/twilio/status", data={"MessageSid": "SMx", "MessageStatus": "delivered"}
    )
    assert forged.status_code == 401
