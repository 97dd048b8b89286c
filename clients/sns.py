"""Trusting an Amazon SNS message (SES's notifications arrive through SNS): its topic is one
this deployment subscribed, its certificate comes from where AWS keeps them, and the
certificate's key signed it. The subscription handshake is answered by fetching the
`SubscribeURL` of a verified confirmation, on an SNS host.

Only two kinds of URL are ever fetched, each checked before: a signing certificate
(`SNS_CERT_URL`) and a verified message's SubscribeURL (`SNS_SUBSCRIBE_URL`); with the
sandbox on, also the sandbox's own SNS stand-in on this API. No redirect is followed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography import x509

from journeys.schemas.feedback import SANDBOX_TOPIC
from journeys.schemas.settings import Settings
from journeys.schemas.signatures import SNS_CERT_URL, SNS_SUBSCRIBE_URL, verify_sns

MAX_CERTIFICATE = 16 * 1024
KEPT = 32


class SnsTrust:
    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None):
        self._own = f"{settings.public_url.rstrip('/')}/sandbox/sns/" if settings.sandbox else None
        self._topics = set(settings.ses_topic_arns) | (
            {SANDBOX_TOPIC} if settings.sandbox else set()
        )
        self._http = http
        self._timeout = min(settings.http_timeout_seconds, 10.0)
        self._certificates: dict[str, x509.Certificate] = {}

    def _allowed(self, url: Any, pattern: re.Pattern[str]) -> bool:
        if not isinstance(url, str) or len(url) > 2000:
            return False
        return bool(pattern.match(url)) or (self._own is not None and url.startswith(self._own))

    async def verify(self, message: Mapping[str, Any]) -> bool:
        """Whether the message is SNS's, from a topic taken here."""
        if message.get("TopicArn") not in self._topics:
            return False
        url = message.get("SigningCertURL")
        if not self._allowed(url, SNS_CERT_URL):
            return False
        certificate = await self._certificate(str(url))
        return certificate is not None and verify_sns(certificate, message)

    async def confirm(self, message: Mapping[str, Any]) -> bool:
        """Answer a verified subscription confirmation, as SNS asks: GET its SubscribeURL."""
        url = message.get("SubscribeURL")
        if not self._allowed(url, SNS_SUBSCRIBE_URL):
            return False
        answer = await self._get(str(url))
        return answer is not None and answer.status_code == 200

    async def _certificate(self, url: str) -> x509.Certificate | None:
        if url in self._certificates:
            return self._certificates[url]
        answer = await self._get(url)
        if answer is None or answer.status_code != 200 or len(answer.content) > MAX_CERTIFICATE:
            return None
        try:
            certificate = x509.load_pem_x509_certificate(answer.content)
        except ValueError:
            return None
        if len(self._certificates) >= KEPT:
            self._certificates.pop(next(iter(self._certificates)))
        self._certificates[url] = certificate
        return certificate

    async def _get(self, url: str) -> httpx.Response | None:
        try:
            if self._http is not None:
                return await self._http.get(url, timeout=self._timeout, follow_redirects=False)
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as http:
                return await http.get(url)
        except httpx.HTTPError:
            return None
