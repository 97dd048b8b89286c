"""Provider sandboxes: local stand-ins for the providers that cannot exist here (Twilio, FCM,
a brand's webhook receiver), each speaking that provider's real wire format and recording
what it received, as Twilio's test credentials and FCM's `validate_only` would.

- Twilio Messages API (`/sandbox/twilio/2010-04-01/Accounts/{sid}/Messages.json`): basic
  auth, form fields, E.164 checks with Twilio's error codes and magic test numbers
  (+15005550001 invalid, +15005550009 not reachable, numbers ending 0000 undelivered), then
  signed status callbacks (`sent`, then `delivered` or `undelivered`) to `StatusCallback`.
- FCM HTTP v1 (`/sandbox/fcm/v1/projects/{project}/messages:send`): bearer auth, one target,
  string-only `data`; tokens starting `invalid-` or `expired-` answer UNREGISTERED.
- Webhook receiver (`/sandbox/webhooks`): checks the `Journeys-Signature`.

`GET /sandbox/{provider}/received` lists the recorded requests (newest last; a `read` key:
they hold phone numbers and message bodies); `POST /sandbox/faults` makes the next N
requests to a provider fail with a status, a 429 with `Retry-After`, or answer late after
doing the work (to see retries; an `operate` key); `PUT /sandbox/ceilings` sets a
send rate ceiling per Twilio number or FCM project, kept as the real ones keep it (FCM
answers 429 over it; Twilio queues the message, as a number does up to 10 hours), and
`GET /sandbox/ceilings` counts the requests that went over. Twilio's list call
(`GET .../Messages.json?To=&From=`) answers what was created, newest first. The Twilio
and FCM endpoints want the credentials the channels send (`storage.secrets.twilio_token`,
`fcm_token`), and a status callback goes only to this deployment's own callback route: the
sandbox calls nothing a caller names. Off unless turned on (`JOURNEYS_SANDBOX`): the
embedded default and the tests do.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from pydantic import BaseModel, ConfigDict, Field

from journeys.schemas.access import KB, public, requires
from journeys.schemas.rates import Bucket
from journeys.schemas.settings import Settings
from journeys.schemas.signatures import TWILIO_HEADER, WEBHOOK_HEADER, sign_twilio, verify_webhook
from journeys.storage.secrets import fcm_token, twilio_token, webhook_key

Provider = Literal["twilio", "fcm", "webhooks"]
_basic = HTTPBasic(auto_error=False)  # the provider answers in its own error format
_bearer = HTTPBearer(auto_error=False)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
KEPT = 2000


class Fault(BaseModel):
    """A failure the sandbox answers a provider call with, to try retries."""

    model_config = ConfigDict(use_attribute_docstrings=True)
    provider: Provider
    """The provider whose calls fail."""
    status: int = Field(ge=400, le=599)
    """The HTTP status they answer."""
    times: int = Field(default=1, ge=1, le=100)
    """How many calls fail before they succeed again."""
    retry_after: int | None = Field(default=None, ge=0, le=3600)
    """With status 429: the `Retry-After` seconds the answer carries."""
    after: int = Field(default=0, ge=0, le=100)
    """Let this many calls through first (a failure midway through a customer's devices)."""
    delay_seconds: float = Field(default=0, ge=0, le=120)
    """Answer this late, after doing the work (Twilio creates the message): a caller that
    times out cannot tell whether its message was taken. Status is then ignored."""


class Ceiling(BaseModel):
    """A provider's send rate ceiling, kept as the real one keeps it: over it FCM answers
    429 and Twilio queues the message; both count it."""

    model_config = ConfigDict(use_attribute_docstrings=True)
    provider: Literal["twilio", "fcm"]
    """Twilio (per `From` number) or FCM (per project)."""
    per_second: float | None = Field(gt=0, le=100_000)
    """Requests a second at most (a token bucket holding one second's); None: none."""


class Sandbox:
    """What each provider received, and the faults still to inject."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.received: dict[str, deque[dict[str, Any]]] = {
            p: deque(maxlen=KEPT) for p in ("twilio", "fcm", "webhooks")
        }
        self.faults: dict[str, list[Fault]] = {}
        self.passes: dict[str, int] = {}
        self.ceilings: dict[str, float] = {}
        self.buckets: dict[str, Bucket] = {}
        """Each sender's token bucket (FCM's projects), at the ceiling when first asked."""
        self.over: dict[str, int] = {}
        """Requests over a ceiling, by sender: FCM answered them 429; Twilio queued them
        longer than one send's interval."""
        self.free_at: dict[str, float] = {}
        """Twilio: when each number's queue sends its next message (monotonic seconds)."""
        self.longest_wait: dict[str, float] = {}
        """Twilio: the longest a message waited in a number's queue, seconds."""
        self.accepted: dict[str, list[str]] = {}
        """FCM: the messages accepted for each device token (what reached the device)."""
        self.messages: deque[dict[str, Any]] = deque(maxlen=KEPT)
        """The Twilio message resources made, newest last (what its list call reads)."""
        self.webhook_secret = webhook_key(settings)  # the one the webhook channel signs with
        self.twilio_token = twilio_token(settings) or b""  # (the sandbox on: never None)
        self.fcm_token = fcm_token(settings) or b""
        self.status_callback = f"{settings.public_url.rstrip('/')}/v1/providers/twilio/status"
        """The one URL status callbacks go to: this deployment's own callback route."""
        self._callbacks: set[asyncio.Task[None]] = set()

    def fault(self, provider: str) -> JSONResponse | None:
        pending = self.faults.get(provider)
        if not pending or pending[0].delay_seconds:
            return None
        if self.passes.get(provider, 0) > 0:
            self.passes[provider] -= 1
            return None
        fault = pending.pop(0)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.status == 429 and provider == "twilio":
            return _twilio_error(429, 20429, "Too Many Requests", headers)
        if fault.status == 429 and provider == "fcm":
            return _fcm_error(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED", headers
            )
        body = {"error": f"injected fault {fault.status}"}
        return JSONResponse(body, status_code=fault.status, headers=headers)

    async def delay(self, provider: str) -> None:
        """Hold the answer, if a fault says to (after the work is done; past its `after`)."""
        pending = self.faults.get(provider)
        if not pending or not pending[0].delay_seconds:
            return
        if self.passes.get(provider, 0) > 0:
            self.passes[provider] -= 1
            return
        await asyncio.sleep(pending.pop(0).delay_seconds)

    def over_ceiling(self, sender: str, provider: str) -> bool:
        """Whether a request from `sender` now goes over its ceiling (counted if so): a
        token bucket holding one second of sends, refilled at the ceiling, as FCM's quota
        is enforced."""
        ceiling = self.ceilings.get(provider)
        if ceiling is None:
            return False
        bucket = self.buckets.setdefault(sender, Bucket(ceiling, max(ceiling, 1.0)))
        if bucket.take() > 0:
            self.over[sender] = self.over.get(sender, 0) + 1
            return True
        return False

    def queue_at_twilio(self, sender: str) -> None:
        """Queue a message at its number as Twilio does over the number's rate: it goes
        when the messages ahead have gone, one interval apart. One that waits longer than
        an interval (the queue held another whole message) counts as over the ceiling."""
        ceiling = self.ceilings.get("twilio")
        if ceiling is None:
            return
        now, step = time.monotonic(), 1 / ceiling
        goes = max(now, self.free_at.get(sender, now))
        self.free_at[sender] = goes + step
        wait = goes - now
        self.longest_wait[sender] = max(self.longest_wait.get(sender, 0.0), wait)
        if wait > step:
            self.over[sender] = self.over.get(sender, 0) + 1

    def record(self, provider: str, **entry: Any) -> None:
        self.received[provider].append({"at": datetime.now(UTC).isoformat(), **entry})

    def later(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)


def _twilio_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _fcm_error(
    status: int, state: str, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    detail = {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
    body = {"error": {"code": status, "message": message, "status": state, "details": [detail]}}
    return JSONResponse(body, status_code=status, headers=headers)


def build_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["provider sandboxes"])

    @router.post("/twilio/2010-04-01/Accounts/{account_sid}/Messages.json", status_code=201)
    @public(max_body=256 * KB)
    async def twilio_message(
        account_sid: str,
        request: Request,
        auth: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    ) -> Any:
        """Twilio's Messages create call."""
        if (failed := sandbox.fault("twilio")) is not None:
            return failed
        user, password = (auth.username, auth.password) if auth else ("", "")
        if user != account_sid or not hmac.compare_digest(password.encode(), sandbox.twilio_token):
            return _twilio_error(401, 20003, "Authenticate")
        form = {k: str(v) for k, v in (await request.form()).items()}
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        sandbox.queue_at_twilio(f"twilio:{sender}")  # (over its rate, a number queues)
        sandbox.record("twilio", account_sid=account_sid, form=form)
        channel = "whatsapp:" if to.startswith("whatsapp:") else ""
        number = to.removeprefix("whatsapp:")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not body:
            return _twilio_error(400, 21602, "Message body is required.")
        if not sender.startswith(channel) or (channel and not sender.startswith("whatsapp:")):
            return _twilio_error(400, 63007, f"Twilio could not find a Channel with From {sender}")
        if not E164.match(number) or number == "+15005550001":
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if number == "+15005550009":
            return _twilio_error(400, 21614, f"'To' number {to} is not a mobile number")
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        callback = form.get("StatusCallback")
        if callback and callback != sandbox.status_callback:  # it calls nothing else
            return _twilio_error(400, 21609, "Invalid StatusCallback URL")
        if callback:
            final = "undelivered" if number.endswith("0000") else "delivered"
            params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": account_sid, "From": sender}
            params |= {"To": to, "ApiVersion": "2010-04-01"}
            sandbox.later(_status_callbacks(sandbox, callback, params, final))
        resource = {
            "sid": sid,
            "account_sid": account_sid,
            "to": to,
            "from": sender,
            "body": body,
            "status": "queued",
            "num_segments": str(max(1, -(-len(body) // 160))),
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }
        sandbox.messages.append(resource)
        await sandbox.delay("twilio")
        return resource

    @router.get("/twilio/2010-04-01/Accounts/{account_sid}/Messages.json")
    @public()
    async def twilio_messages(
        account_sid: str,
        auth: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
        to: Annotated[str | None, Query(alias="To", max_length=40)] = None,
        sender: Annotated[str | None, Query(alias="From", max_length=40)] = None,
        page_size: Annotated[int, Query(alias="PageSize", ge=1, le=1000)] = 50,
    ) -> Any:
        """Twilio's Messages list call: newest first, filtered by `To` and `From`."""
        user, password = (auth.username, auth.password) if auth else ("", "")
        if user != account_sid or not hmac.compare_digest(password.encode(), sandbox.twilio_token):
            return _twilio_error(401, 20003, "Authenticate")
        found = [
            m
            for m in reversed(sandbox.messages)
            if m["account_sid"] == account_sid
            and (to is None or m["to"] == to)
            and (sender is None or m["from"] == sender)
        ][:page_size]
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        return {"messages": found, "page": 0, "page_size": page_size, "uri": uri}

    @router.post("/fcm/v1/projects/{project}/messages:send")
    @public(max_body=256 * KB)
    async def fcm_send(
        project: str,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Any:
        """FCM HTTP v1 send: one message to one target."""
        if (failed := sandbox.fault("fcm")) is not None:
            return failed
        if bearer is None or not hmac.compare_digest(
            bearer.credentials.encode(), sandbox.fcm_token
        ):
            return _fcm_error(
                401, "UNAUTHENTICATED", "Request had invalid credentials.", "THIRD_PARTY_AUTH_ERROR"
            )
        try:
            payload = await request.json()
            message = payload["message"]
        except (ValueError, KeyError, TypeError):
            return _fcm_error(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received.", "INVALID_ARGUMENT"
            )
        if sandbox.over_ceiling(f"fcm:{project}", "fcm"):  # (it took nothing)
            return _fcm_error(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED", {"Retry-After": "1"}
            )
        sandbox.record("fcm", project=project, message=message)
        targets = [k for k in ("token", "topic", "condition") if k in message]
        if len(targets) != 1:
            return _fcm_error(
                400,
                "INVALID_ARGUMENT",
                "Exactly one of token, topic or condition is required.",
                "INVALID_ARGUMENT",
            )
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return _fcm_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'message.data': values must be strings.",
                "INVALID_ARGUMENT",
            )
        device = str(message.get("token", ""))
        if device.startswith(("invalid-", "expired-")):
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        name = f"projects/{project}/messages/{uuid.uuid4().int % 10**19}"
        sandbox.accepted.setdefault(device, []).append(name)
        await sandbox.delay("fcm")
        return {"name": name}

    @router.post("/webhooks")
    @public(max_body=256 * KB)
    async def webhook(request: Request) -> Any:
        """A brand's webhook receiver: accepts only correctly signed bodies."""
        if (failed := sandbox.fault("webhooks")) is not None:
            return failed
        body = await request.body()
        signature = request.headers.get(WEBHOOK_HEADER, "")
        valid = verify_webhook(sandbox.webhook_secret, signature, body, now=time.time())
        sandbox.record(
            "webhooks",
            verified=valid,
            idempotency_key=request.headers.get("idempotency-key"),
            body=body.decode(errors="replace"),
        )
        if not valid:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        return {"received": True}

    @router.get("/{provider}/received")
    @requires("read")
    async def received(provider: Provider, to: str | None = None) -> list[dict[str, Any]]:
        """What the provider received, oldest first (`to`: Twilio recipient or FCM token)."""
        found = list(sandbox.received[provider])
        if to is None:
            return found
        return [
            r
            for r in found
            if to in (r.get("form", {}).get("To"), r.get("message", {}).get("token"))
        ]

    @router.post("/faults", status_code=204)
    @requires("operate")
    async def add_fault(fault: Fault) -> None:
        """Fail the provider's next `times` requests with `status`."""
        sandbox.faults.setdefault(fault.provider, []).extend([fault] * fault.times)
        sandbox.passes[fault.provider] = fault.after

    @router.put("/ceilings", status_code=204)
    @requires("operate")
    async def set_ceiling(ceiling: Ceiling) -> None:
        """Enforce a provider's send ceiling (per Twilio number, per FCM project)."""
        if ceiling.per_second is None:
            sandbox.ceilings.pop(ceiling.provider, None)
        else:
            sandbox.ceilings[ceiling.provider] = ceiling.per_second
        sandbox.buckets.clear()  # (each refills at the new ceiling)
        sandbox.free_at.clear()

    @router.get("/ceilings")
    @requires("read")
    async def ceilings() -> dict[str, Any]:
        """The ceilings, the requests over one by sender (FCM: answered 429; Twilio:
        queued longer than a send's interval), and Twilio's longest queue wait by number."""
        return {
            "ceilings": sandbox.ceilings,
            "over": sandbox.over,
            "longest_wait_seconds": sandbox.longest_wait,
        }

    return router


async def _status_callbacks(sandbox: Sandbox, url: str, params: dict[str, str], final: str) -> None:
    """Twilio's delivery receipts: `sent`, then the final status, each signed."""
    key = sandbox.twilio_token
    async with httpx.AsyncClient(timeout=10) as client:
        for status in ("sent", final):
            await asyncio.sleep(0.5)
            form = {**params, "MessageStatus": status, "SmsStatus": status}
            if status == "undelivered":
                form["ErrorCode"] = "30003"
            headers = {TWILIO_HEADER: sign_twilio(key, url, form)}
            try:
                await client.post(url, data=form, headers=headers)
            except httpx.HTTPError:
                return  # Twilio gives up on an unreachable callback too
