"""Calls to services and providers over HTTP (through the worker's one client, made by
`activities.egress.shared_client`), and one rule for what a failure means to Temporal.

- timeouts, connection errors, 5xx, 408 and 425: `ServiceUnavailable`, retried by the
  activity's retry policy with backoff;
- 429: `Throttled`, with the provider's `Retry-After` (a send waits it out on a timer);
- any other 4xx: `ServiceRefused`, never retried (the request itself is wrong).

A failure keeps the status only, never the provider's body (which may echo the message or
carry anything the far side chose to put there).

Every call carries the send's or decision's idempotency key as `Idempotency-Key`, which
providers that support one (and the built-in services) use to drop a retried request.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

RETRYABLE_STATUS = frozenset({408, 425})


class Permanent(Exception):
    """A failure that retrying cannot mend; activities raise it as non-retryable."""


class ServiceRefused(Permanent):
    """A 4xx answer: retrying the same request cannot succeed."""

    def __init__(self, response: httpx.Response, what: str):
        self.response = response
        super().__init__(f"{what}: {status(response)}")


class InvalidTarget(Permanent):
    """A URL no request can be made to (malformed, or not http/https): retrying the same
    URL cannot succeed."""


class ServiceUnavailable(Exception):
    """A timeout, a connection failure or a 5xx/408/425 answer (a 429: `Throttled`):
    worth retrying later."""


class Throttled(ServiceUnavailable):
    """The provider is at its ceiling and said how long to wait (a 429's `Retry-After`,
    SES's `Throttling`): a send waits that long without using up an attempt."""

    def __init__(self, what: str, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"{what}: throttled, retry after {retry_after:g} s")


MAX_RETRY_AFTER = 3600.0
"""The longest wait a provider's Retry-After is taken at (an hour)."""


def retry_after(response: httpx.Response, default: float = 1.0) -> float:
    """A 429's `Retry-After` in seconds (a number or an HTTP date), bounded."""
    value = response.headers.get("Retry-After", "").strip()
    seconds = default
    if value.isdigit():
        seconds = float(value)
    elif value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    idempotency_key: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request; a 2xx response, or `ServiceRefused` / `ServiceUnavailable`."""
    headers = dict(kwargs.pop("headers", None) or {})
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    try:
        response = await client.request(method, url, headers=headers, **kwargs)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
        raise InvalidTarget(f"{what}: not a URL a request can go to ({err})") from err
    except httpx.TransportError as err:  # timeouts, refused connections, broken streams
        raise ServiceUnavailable(f"{what}: {type(err).__name__} {err}".strip()) from err
    if response.is_success:
        return response
    if response.status_code == 429:  # Twilio 20429, FCM QUOTA_EXCEEDED, any rate limit
        raise Throttled(what, retry_after(response))
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
        raise ServiceUnavailable(f"{what}: {status(response)}")
    raise ServiceRefused(response, what)


_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")


def status(response: httpx.Response) -> str:
    """`HTTP 400`, with the provider's own short error code when it gives one (Twilio's
    `code`, FCM's `error.status`): enough to act on, nothing of the body's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code = None
    if isinstance(body, dict):
        error = body.get("error")
        code = body.get("code") or (error.get("status") if isinstance(error, dict) else None)
    shown = f" ({code})" if code is not None and _CODE.match(str(code)) else ""
    return f"HTTP {response.status_code}{shown}"
