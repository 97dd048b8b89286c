"""What happens to a message after its send, as customer events (`message.opened`, ...).

Pure: the event a reaction becomes, the signed tracking tokens of an email's pixel and links,
the rewriting of a rendered email's links, and the machine-open rule. The API's tracking
routes and the provider callbacks build reactions with these; journeys wait for them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from typing import Any, Literal, get_args

from journeys.schemas.events import CustomerEvent

Reaction = Literal[
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "failed",
    "replied",
    "unsubscribed",
    "dismissed",
]
"""What a message's recipient (or their provider) did with it."""
REACTIONS: tuple[str, ...] = get_args(Reaction)
PREFIX = "message."
EVENT_NAMES = frozenset(PREFIX + r for r in REACTIONS)

ONCE: frozenset[str] = frozenset(set(REACTIONS) - {"replied"})
"""Reactions a message has at most once as an event (a repeat open is counted, and enters
no journey twice); every reply is an event of its own."""

CAN_REACT: dict[str, frozenset[str]] = {
    "email": frozenset(REACTIONS) - {"replied", "dismissed"},
    "sms": frozenset({"delivered", "failed", "replied", "unsubscribed"}),
    "whatsapp": frozenset({"delivered", "opened", "failed", "replied", "unsubscribed"}),
    "push": frozenset({"delivered", "opened", "dismissed", "failed"}),
    "in_app": frozenset({"opened", "clicked", "dismissed"}),
    "webhook": frozenset({"delivered", "failed"}),
}
"""What each channel can report: an author waiting for an SMS's clicks or an in-app
message's bounce is told at publish."""


def event_name(reaction: str) -> str:
    return PREFIX + reaction


@dataclass(frozen=True)
class Sent:
    """The ledger's facts about one sent message that a reaction is attributed to."""

    delivery_id: int
    customer_id: str
    journey_id: str
    version: int
    step_id: str
    channel: str


def reaction_event(
    sent: Sent,
    reaction: str,
    at: datetime,
    *,
    machine: bool = False,
    link: str | None = None,
    source: str = "tracking",
    distinct: str | None = None,
    extra: dict[str, Any] | None = None,
) -> CustomerEvent:
    """The customer event of a reaction, attributed to its message. Its `message_id` makes
    the first of each kind the only one routed (`ONCE`): a repeat is a duplicate. A
    machine's open or click (a privacy proxy, a link scanner) is a kind of its own, so a
    later human open still counts. `distinct` separates reactions that are not repeats (a
    reply's provider id)."""
    properties: dict[str, Any] = {
        "delivery_id": sent.delivery_id,
        "journey_id": sent.journey_id,
        "version": sent.version,
        "step_id": sent.step_id,
        "channel": sent.channel,
        "machine": machine,
        "source": source,
        **({"link": link} if link is not None else {}),
        **(extra or {}),
    }
    suffix = "-machine" if machine else ""
    if reaction not in ONCE or distinct:
        suffix += f"-{distinct}"
    return CustomerEvent(
        customer_id=sent.customer_id,
        name=event_name(reaction),
        properties=properties,
        timestamp=at,
        message_id=f"reaction-{sent.delivery_id}-{reaction}{suffix}"[:200],
    )


# -- tracking tokens ---------------------------------------------------------------------

OPEN = "o"
"""A token's target for the open pixel (a click's target is the link's index)."""


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token(key: bytes, delivery_id: int, target: str | int) -> str:
    """`{delivery}.{target}.{mac}`: the ledger row and what in it (the pixel, a link's
    index); no address, no customer id. Dead once the row is erased or too old."""
    body = f"{delivery_id}.{target}"
    return f"{body}.{_mac(key, body)}"


def verify(key: bytes, value: str) -> tuple[int, str | int] | None:
    """(delivery id, target) of a token signed with `key`, else None."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 18:
        return None
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2].encode(), _mac(key, body).encode()):
        return None
    target = parts[1]
    if target == OPEN:
        return int(parts[0]), OPEN
    if target.isdigit() and len(target) <= 4:
        return int(parts[0]), int(target)
    return None


# -- links in a rendered email -------------------------------------------------------------

_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_NO_TRACK = re.compile(r"\sdata-no-track\b", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
MAX_LINKS = 100
"""Links tracked per message (the rest are left as they are)."""


def track_links(
    html: str, click_url: Callable[[int], str], *, skip: set[str]
) -> tuple[str, list[str]]:
    """The HTML with each `http(s)` link of an `<a>` replaced by `click_url(i)`, and the
    links in order of `i`. A link marked `data-no-track`, or in `skip` (the unsubscribe
    link: a click must unsubscribe, not count), keeps its own URL."""
    links: list[str] = []

    def rewrite(anchor: re.Match[str]) -> str:
        tag = anchor.group(0)
        found = _HREF.search(tag)
        if found is None or _NO_TRACK.search(tag) or len(links) >= MAX_LINKS:
            return tag
        url = unescape(found.group(1) if found.group(1) is not None else found.group(2))
        if not re.match(r"^https?://", url, re.IGNORECASE) or url in skip:
            return tag
        links.append(url)
        start, end = found.span()
        return f'{tag[:start]}href="{click_url(len(links) - 1)}"{tag[end:]}'

    return _ANCHOR.sub(rewrite, html), links


def with_pixel(html: str, pixel_url: str) -> str:
    """The HTML with a 1x1 open pixel at the end of its body."""
    img = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:none">'
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + img
    at = ends[-1].start()
    return html[:at] + img + html[at:]


def tracking_url(base_url: str, key: bytes, delivery_id: int, target: str | int) -> str:
    """Where a message's pixel (`OPEN`) or its `target`th link leads: the API's tracking
    route, with the signed token."""
    kind = "open" if target == OPEN else "click"
    return f"{base_url.rstrip('/')}/v1/track/{kind}/{token(key, delivery_id, target)}"


def tracked_email(
    rendered: dict[str, str], delivery_id: int, key: bytes, base_url: str, *, skip: set[str]
) -> tuple[dict[str, str], list[str]]:
    """A rendered email with its HTML's links tracked and an open pixel, and the links
    (what the message's click tokens may lead to). The same links in the text part lead
    through the same tokens. An email with no HTML part is left as it is."""
    html = rendered.get("html")
    if not html:
        return rendered, []

    def click(i: int) -> str:
        return tracking_url(base_url, key, delivery_id, i)

    html, links = track_links(html, click, skip=skip)
    pixel = tracking_url(base_url, key, delivery_id, OPEN)
    out = {**rendered, "html": with_pixel(html, pixel)}
    text = out.get("body") or ""
    for i, link in sorted(enumerate(links), key=lambda found: -len(found[1])):
        alone = rf"(?<![\w/]){re.escape(link)}(?![\w/?#%=&-]|\.\w)"  # not inside a longer URL
        text = re.sub(alone, click(i).replace("\\", "\\\\"), text)
    if text:
        out["body"] = text
    return out, links


# -- machines ----------------------------------------------------------------------------

_SCANNERS = re.compile(
    r"barracuda|mimecast|proofpoint|forcepoint|symantec|messagelabs|trend ?micro|"
    r"safelinks|microsoft office existence|linkscanner|urldefense|bot\b|spider|crawler|"
    r"headless",
    re.IGNORECASE,
)


def is_machine(user_agent: str, seconds_after_send: float, reaction: str, quick: float) -> bool:
    """Whether an open or click was a machine's: Apple Mail Privacy Protection fetches
    every pixel on delivery with a bare `Mozilla/5.0`; security gateways announce
    themselves, or click a link within `quick` seconds of the send (0: never by time)."""
    agent = user_agent.strip()
    if reaction == "opened" and agent == "Mozilla/5.0":
        return True
    if _SCANNERS.search(agent):
        return True
    return reaction == "clicked" and 0 <= seconds_after_send < quick
