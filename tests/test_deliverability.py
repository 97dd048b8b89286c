"""Deliverability (issue 30): SES's notifications (through SNS, signed, with the handshake),
SendGrid's Event Webhook and Twilio's inbound messages, each in its real wire format,
change the suppression list and consent, and come back as reactions journeys wait for.
Through the real SMTP server (which answers as SES's mailbox simulator), API and ledger."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from journeys.schemas.journey import (
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForReactionStep,
)
from journeys.schemas.signatures import TWILIO_HEADER, sign_twilio
from journeys.schemas.suppression import refusal
from journeys.services.email_sandbox import SendGridSandbox, SesSandbox
from journeys.stack.embedded import Stack
from journeys.storage.secrets import twilio_token
from tests.conftest import eventually, unique
from tests.helpers import customer, deliveries, ended, event, one_send, publish_copy, state


def awaiting(channel: str, reaction: str, **content: str) -> JourneySpec:
    """Send one message, then wait a day for its reaction: the path ends at `reacted` or
    at `timeout`."""
    return JourneySpec(
        id=f"await-{reaction}",
        name=f"Await {reaction}",
        entry={"event": "go"},  # type: ignore[arg-type]
        steps=[
            SendStep(id="send", channel=channel, content={"body": "x", **content}, next="w"),  # type: ignore[arg-type]
            WaitForReactionStep(
                id="w",
                send="send",
                reaction=reaction,
                timeout=timedelta(days=1),  # type: ignore[arg-type]
                on_reaction="reacted",
                on_timeout="timeout",
            ),  # fmt: skip
            ExitStep(id="reacted"),
            ExitStep(id="timeout"),
        ],
    )


async def suppressions(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await api.get("/v1/suppressions", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def suppressed(api: httpx.AsyncClient, address: str) -> dict[str, Any]:
    found = await eventually(
        lambda: suppressions(api, channel="email", limit=1000),
        lambda items: any(i["address"] == address for i in items),
    )
    return next(i for i in found if i["address"] == address)


async def mailed(api: httpx.AsyncClient, email: str, **profile: Any) -> tuple[str, int]:
    """A customer at `email` sent one marketing email: (customer, ledger row)."""
    spec = await publish_copy(api, one_send("mail-once", channel="email", subject="Hello"))
    cid = await customer(api, email=email, **profile)
    await event(api, cid, spec.entry)
    await ended(api, spec.id, cid)
    [sent] = await deliveries(api, cid)
    assert sent["status"] == "sent", sent
    return cid, sent["id"]


async def next_send(api: httpx.AsyncClient, cid: str, **step: Any) -> dict[str, Any]:
    """Another journey's email to the customer: its ledger row."""
    spec = await publish_copy(api, one_send("mail-again", channel="email", **step))
    await event(api, cid, spec.entry)
    await ended(api, spec.id, cid)
    rows = await deliveries(api, cid)
    return next(r for r in rows if r["journey_id"] == spec.id)


@pytest.mark.both_databases  # the reservation reads the list through the profile's JSON
async def test_a_hard_bounce_suppresses_the_address_for_every_journey(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    address = f"{unique('ann')}+bounce@example.com"
    cid, _ = await mailed(api, address)
    entry = await suppressed(api, address)
    assert entry["reason"] == "hard_bounce" and entry["source"] == "ses"
    assert "5.1.1" in (entry["detail"] or "")
    row = await next_send(api, cid)  # another journey, the same address
    assert row["status"] == "suppressed" and row["reason"] == refusal("hard_bounce")
    # The operator takes it off the list (audited), and mail goes again.
    assert (await anonymous.delete(f"/v1/suppressions/email/{address}")).status_code == 401
    assert (await api.delete(f"/v1/suppressions/email/{address}")).status_code == 204
    assert (await api.delete(f"/v1/suppressions/email/{address}")).status_code == 404
    assert (await next_send(api, cid))["status"] == "sent"


async def test_soft_bounces_suppress_only_at_the_limit(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    limit = stack.settings.soft_bounce_limit
    address = f"{unique('bo')}+softbounce@example.com"
    cid, _ = await mailed(api, address)
    for _ in range(limit - 2):
        assert (await next_send(api, cid))["status"] == "sent"
    found = await suppressions(api, channel="email", limit=1000)
    assert all(i["address"] != address for i in found)  # not yet
    await next_send(api, cid)  # the limit's bounce
    assert (await suppressed(api, address))["reason"] == "soft_bounces"


async def test_a_complaint_stops_marketing_email_but_not_transactional(
    api: httpx.AsyncClient,
) -> None:
    cid, _ = await mailed(api, f"{unique('cy')}+complaint@example.com")

    async def unsubscribed() -> list[str]:
        return list((await api.get(f"/v1/customers/{cid}")).json()["unsubscribed"])

    await eventually(unsubscribed, lambda u: "email" in u)
    marketing = await next_send(api, cid)
    assert marketing["status"] == "suppressed" and marketing["reason"] == "unsubscribed"
    receipt = await next_send(api, cid, topic="transactional")
    assert receipt["status"] == "sent"


async def test_a_journey_waits_for_the_bounce_and_takes_its_edge(api: httpx.AsyncClient) -> None:
    spec = awaiting("email", "bounced", subject="Hi")
    copy = await publish_copy(api, spec)
    cid = await customer(api, email=f"{unique('wb')}+bounce@example.com")
    await event(api, cid, copy.entry)
    done = await ended(api, copy.id, cid)
    assert done["path"][-1]["step"] == "reacted", done


async def test_sns_refuses_what_it_did_not_sign_and_answers_the_handshake(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    sandbox = SesSandbox(stack.settings)
    headers = {"content-type": "text/plain; charset=UTF-8"}
    confirmation = sandbox.subscription()
    answer = await anonymous.post(
        "/v1/providers/ses", content=json.dumps(confirmation), headers=headers
    )
    assert answer.status_code == 200, answer.text
    # The API fetched the SubscribeURL (on the SNS stand-in of this API's own sandbox).
    assert confirmation["Token"] in (await api.get("/sandbox/sns/confirmed")).json()
    address = f"{unique('f')}@example.com"
    note = {"notificationType": "Bounce", "mail": {"tags": {}}, "bounce": {
        "bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address}],
    }}  # fmt: skip
    forged = sandbox.sns("Notification", json.dumps(note))
    forged["Message"] = forged["Message"].replace("Permanent", "Transient")  # altered
    elsewhere = sandbox.sns("Notification", json.dumps(note))
    elsewhere["SigningCertURL"] = "http://127.0.0.1:9/cert.pem"  # not an SNS host
    other_topic = {**sandbox.sns("Notification", json.dumps(note)), "TopicArn": "arn:aws:sns:x"}
    for bad in (forged, elsewhere, other_topic, {"Type": "Notification"}):
        refused = await anonymous.post(
            "/v1/providers/ses", content=json.dumps(bad), headers=headers
        )
        assert refused.status_code == 401, refused.text
    assert (
        await anonymous.post("/v1/providers/ses", content=b"{", headers=headers)
    ).status_code == 401
    assert all(i["address"] != address for i in await suppressions(api, limit=1000))
    # The genuine one, twice: applied once (no message of ours: kept for the operator).
    genuine = json.dumps(sandbox.sns("Notification", json.dumps(note)))
    first = await anonymous.post("/v1/providers/ses", content=genuine, headers=headers)
    again = await anonymous.post("/v1/providers/ses", content=genuine, headers=headers)
    assert first.json() == {"applied": 0, "unknown_message": 1, "replayed": 0}
    assert again.json() == {"applied": 0, "unknown_message": 0, "replayed": 1}
    assert (await suppressed(api, address))["reason"] == "hard_bounce"
    kept = (await api.get("/v1/providers/callbacks", params={"limit": 1000})).json()["items"]
    assert any(k["source"] == "ses" and k["kind"] == "bounced" for k in kept)


async def test_sendgrid_events_are_signed_and_applied_once(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    address = f"{unique('sg')}@example.com"
    cid, row = await mailed(api, address)
    sandbox = SendGridSandbox(stack.settings)
    events = [
        sandbox.event("processed", address, row),
        sandbox.event("bounce", address, row, type="bounce", status="5.1.1", reason="no such user"),
    ]
    body, headers = sandbox.signed(events)
    unsigned = await anonymous.post(
        "/v1/providers/sendgrid", content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401
    tampered = body.replace(b"5.1.1", b"4.2.2")
    assert (
        await anonymous.post("/v1/providers/sendgrid", content=tampered, headers=headers)
    ).status_code == 401
    first = await anonymous.post("/v1/providers/sendgrid", content=body, headers=headers)
    assert first.json() == {"applied": 1, "unknown_message": 0, "replayed": 0}, first.text
    again = await anonymous.post("/v1/providers/sendgrid", content=body, headers=headers)
    assert again.json() == {"applied": 0, "unknown_message": 0, "replayed": 1}
    entry = await suppressed(api, address)
    assert entry["source"] == "sendgrid" and entry["reason"] == "hard_bounce"
    assert (await next_send(api, cid))["reason"] == refusal("hard_bounce")


@pytest.mark.both_databases  # the sender is found by the phone in the profile's JSON
async def test_stop_then_start_over_the_inbound_webhook(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    phone = f"+1555{unique('')[-7:].translate(str.maketrans('abcdef', '123456'))}"[:12]
    phone = phone + "0" * (12 - len(phone))
    spec = await publish_copy(api, one_send("sms-once", channel="sms", body="Reply YES"))
    cid = await customer(api, phone=phone)
    await event(api, cid, spec.entry)
    await ended(api, spec.id, cid)
    url = f"{stack.settings.public_url}/v1/providers/twilio/inbound"
    token = twilio_token(stack.settings)
    assert token is not None

    async def reply(body: str, sid: str, sign: bool = True) -> httpx.Response:
        form = {"MessageSid": sid, "From": phone, "To": stack.settings.sms_from, "Body": body}
        headers = {TWILIO_HEADER: sign_twilio(token, url, form)} if sign else {}
        return await anonymous.post("/v1/providers/twilio/inbound", data=form, headers=headers)

    assert (await reply("STOP", unique("SM"), sign=False)).status_code == 401
    stop = await reply("stop ", unique("SM"))
    assert stop.status_code == 200 and stop.text == "<Response/>"
    sms = await publish_copy(api, one_send("sms-again", channel="sms", topic="transactional"))
    await event(api, cid, sms.entry)
    await ended(api, sms.id, cid)
    rows = await deliveries(api, cid)
    assert next(r for r in rows if r["journey_id"] == sms.id)["reason"] == "no_consent"
    assert (await reply("START", unique("SM"))).status_code == 200
    later = await publish_copy(api, one_send("sms-later", channel="sms"))
    await event(api, cid, later.entry)
    await ended(api, later.id, cid)
    rows = await deliveries(api, cid)
    assert next(r for r in rows if r["journey_id"] == later.id)["status"] == "sent"


async def test_a_journey_waits_for_a_yes_reply(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    phone = "+1555" + str(abs(hash(unique("p"))))[:7]
    spec = awaiting("sms", "replied", body="Reply YES")
    copy = await publish_copy(api, spec)
    cid = await customer(api, phone=phone)
    await event(api, cid, copy.entry)
    await eventually(lambda: state(api, copy.id, cid), lambda s: s["step"] == "w")
    await eventually(
        lambda: deliveries(api, cid), lambda rows: rows and rows[0]["status"] == "sent"
    )
    url = f"{stack.settings.public_url}/v1/providers/twilio/inbound"
    form = {"MessageSid": unique("SM"), "From": phone, "Body": "YES"}
    token = twilio_token(stack.settings)
    assert token is not None
    headers = {TWILIO_HEADER: sign_twilio(token, url, form)}
    assert (
        await anonymous.post("/v1/providers/twilio/inbound", data=form, headers=headers)
    ).status_code == 200
    assert (await ended(api, copy.id, cid))["path"][-1]["step"] == "reacted"


async def test_the_funnel_counts_each_send_steps_reactions(api: httpx.AsyncClient) -> None:
    spec = await publish_copy(api, one_send("funnel-bounce", channel="email", subject="Hi"))
    for _ in range(2):
        cid = await customer(api, email=f"{unique('fb')}+bounce@example.com")
        await event(api, cid, spec.entry)
        await ended(api, spec.id, cid)

    async def reactions() -> dict[str, Any]:
        found = (await api.get(f"/v1/journeys/{spec.id}/funnel")).json()
        step = next(s for s in found["steps"] if s["id"] == "send")
        return step["reactions"] or {}

    counted = await eventually(reactions, lambda r: r.get("bounced") == 2)
    assert counted["bounce_rate"] == 1.0 and counted["opened"] == 0


async def test_the_app_reports_in_app_reactions_and_callers_cannot_forge_them(
    api: httpx.AsyncClient,
) -> None:
    spec = awaiting("in_app", "opened")
    copy = await publish_copy(api, spec)
    cid = await customer(api)
    forged = await api.post("/v1/events", json={"customer_id": cid, "name": "message.opened"})
    assert forged.status_code == 422  # no key makes a reaction
    await event(api, cid, copy.entry)
    await eventually(lambda: state(api, copy.id, cid), lambda s: s["step"] == "w")
    [card] = (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]
    [row] = await deliveries(api, cid)
    wrong = await api.post(f"/v1/customers/{cid}/messages/{row['id']}/clicked-twice")
    assert wrong.status_code == 422
    other = await api.post(f"/v1/customers/someone-else/messages/{row['id']}/opened")
    assert other.status_code == 404
    assert (await api.post(f"/v1/customers/{cid}/inbox/{card['id']}/read")).status_code == 200
    assert (await ended(api, copy.id, cid))["path"][-1]["step"] == "reacted"
    again = await api.post(f"/v1/customers/{cid}/messages/{row['id']}/dismissed")
    assert again.status_code == 204


async def test_twilios_delivery_receipt_is_the_sms_reaction(api: httpx.AsyncClient) -> None:
    spec = awaiting("sms", "delivered", body="Hi")
    copy = await publish_copy(api, spec)
    cid = await customer(api, phone="+15551230001")
    await event(api, cid, copy.entry)
    # The Twilio sandbox calls the status callback (signed): sent, then delivered.
    assert (await ended(api, copy.id, cid))["path"][-1]["step"] == "reacted"


async def test_the_apis_pixel_and_link_answer_in_front_and_count(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, mailbox: Any
) -> None:
    link = "https://shop.example/deal?id=9"
    content = MessageContent(subject="Deal", body="x", html=f'<a href="{link}">deal</a>')
    sends = one_send("tracked", channel="email")
    sends.steps[0] = SendStep(id="send", channel="email", content=content, next="end")
    spec = await publish_copy(api, sends)
    address = f"{unique('tr')}@example.com"
    cid = await customer(api, email=address)
    await event(api, cid, spec.entry)
    await ended(api, spec.id, cid)
    [received] = await eventually(lambda: _async(mailbox[0].to(address)), bool)
    html = received.message.get_body(("html",)).get_content()
    click = re.search(r'href="(http[^"]+/v1/track/click/[^"]+)"', html)[1]
    pixel = re.search(r'src="(http[^"]+/v1/track/open/[^"]+)"', html)[1]
    browser = {"user-agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari"}
    opened = await anonymous.get(pixel, headers=browser)
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    assert (
        opened.headers["x-frame-options"] == "DENY"
        and "no-store" in opened.headers["cache-control"]
    )
    went = await anonymous.get(click, headers=browser)
    assert went.status_code == 302 and went.headers["location"] == link
    forged = await anonymous.get(click[:-3] + "AAA")
    assert forged.status_code == 404 and "location" not in forged.headers

    async def counted() -> dict[str, Any]:
        found = (await api.get(f"/v1/journeys/{spec.id}/funnel")).json()
        return next(s for s in found["steps"] if s["id"] == "send")["reactions"] or {}

    seen = await eventually(counted, lambda r: r.get("opened") == 1)
    assert seen["clicked"] + seen["clicked_machine"] == 1  # (a click this soon may be a scanner's)


async def _async(value: Any) -> Any:
    return value


def test_an_email_through_sendgrid_comes_back_as_its_signed_events(tmp_path: Any) -> None:
    from journeys.activities.channels import EmailChannel, Outbound
    from journeys.schemas.feedback import from_sendgrid
    from journeys.schemas.settings import Settings
    from journeys.schemas.signatures import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, verify_sendgrid
    from journeys.services.mailbox import Received

    settings = Settings(data_dir=tmp_path, generate_secrets=True, email_provider="sendgrid")
    address = "ann+bounce@example.com"
    outbound = Outbound(
        key="k", customer_id="c", journey_id="j", step_id="s", addresses=[address],
        content={"subject": "Hi", "body": "x"}, delivery_id=42,
    )  # fmt: skip
    email = EmailChannel(settings).compose(outbound)
    assert "X-SES-MESSAGE-TAGS" not in email
    sandbox = SendGridSandbox(settings)
    events = sandbox.events_for(Received(settings.email_from, (address,), email))
    assert [e["event"] for e in events] == ["processed", "bounce"]
    body, headers = sandbox.signed(events)
    signature, timestamp = headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP]
    assert verify_sendgrid(sandbox.public_key(), timestamp, body, signature)
    assert not verify_sendgrid(sandbox.public_key(), timestamp, body + b" ", signature)
    [bounce] = from_sendgrid(json.loads(body))
    assert (bounce.kind, bounce.bounce, bounce.delivery_id) == ("bounced", "hard", 42)
