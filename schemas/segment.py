"""The Segment spec's messages (track, identify, page, batch) as this runner reads them.

A Segment message becomes a `CustomerEvent`: `userId` (else `anonymousId`) is the customer,
`messageId` the de-duplication key, `timestamp` (else `originalTimestamp`, else now) the time.
`page` (`screen`) becomes the event `page.viewed` (`screen.viewed`) with the page's name as
`properties.page_name`. `identify` does not route; it updates the profile from `traits` and
`context`. Identity resolution: `alias` (`previousId` into `userId`) and an `identify`
carrying both `anonymousId` and `userId` merge the anonymous profile into the customer's,
and route the anonymous id's later events to the customer. `group` keeps the group's
`traits` (`group.*` in branch predicates) and makes the customer a member. Ids may be
numbers, as Segment allows; they are read as their decimal text.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from journeys.schemas import zones
from journeys.schemas.base import Schema
from journeys.schemas.events import CUSTOMER_ID, CustomerEvent, sent_by_caller
from journeys.schemas.profile import EMAIL, PHONE_MAX
from journeys.schemas.wire import Timestamp

PAGE_EVENT = "page.viewed"
SCREEN_EVENT = "screen.viewed"
# Traits that are profile fields rather than attributes.
PROFILE_TRAITS = ("email", "phone")
_EMAIL = re.compile(EMAIL)

CALLS = ("track", "identify", "page", "screen", "group", "alias")
"""Segment's calls, each a route of its own (`/v1/{call}`) and a message `type` in a batch."""
BATCHES = ("batch", "import")
"""Segment's routes that take a batch of calls (`import` is the older name of `batch`)."""
PATHS = frozenset(f"/v1/{route}" for route in CALLS + BATCHES)


def _number_as_text(value: Any) -> Any:
    """Segment takes numeric ids (`"userId": 42`): the same customer as `"42"`."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Call = Literal["track", "identify", "page", "screen", "group", "alias"]
assert Call.__args__ == CALLS  # type: ignore[attr-defined]

_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": CUSTOMER_ID}
SegmentId = Annotated[
    str,
    BeforeValidator(_number_as_text),
    StringConstraints(min_length=1, max_length=200, pattern=CUSTOMER_ID),
    WithJsonSchema({"anyOf": [_ID_SCHEMA, {"type": "integer"}]}),
]
"""A user, anonymous, previous or group id: text, or a whole number."""


class SegmentMessage(Schema):
    """One call. Unknown fields (integrations, sentAt, writeKey, ...) are accepted and
    ignored, as Segment does."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "userId": "golfer-42",
                    "event": "Order Completed",
                    "properties": {"total": 42.5},
                    "messageId": "ajs-next-1",
                    "timestamp": "2026-11-29T08:00:00Z",
                },
                {"anonymousId": "visitor-9", "userId": "golfer-42", "traits": {"plan": "pro"}},
            ]
        },
    )

    type: Call | None = None
    """The call: track, identify, page, screen, group or alias (a batch's messages say
    it; a single call's route does)."""
    user_id: SegmentId | None = Field(default=None, alias="userId")
    """Your id for the customer."""
    anonymous_id: SegmentId | None = Field(default=None, alias="anonymousId")
    """A visitor's id before they are known."""
    previous_id: SegmentId | None = Field(default=None, alias="previousId")
    """`alias`: the id (anonymous, or an earlier user id) merged into `userId`."""
    group_id: SegmentId | None = Field(default=None, alias="groupId")
    """`group`: the group (account, company) the customer belongs to."""
    event: Annotated[str, AfterValidator(sent_by_caller)] | None = Field(
        default=None, max_length=200
    )
    """track: what happened (not `message.*`: the reactions this API makes itself)."""
    name: str | None = None
    """page, screen: the page's name."""
    category: str | None = None
    """page: the page's category."""
    properties: dict[str, Any] = Field(default_factory=dict)
    """track, page, screen: the event's details."""
    traits: dict[str, Any] = Field(default_factory=dict)
    """identify: the customer's traits; group: the group's."""
    message_id: str = Field(
        default_factory=lambda: str(uuid.uuid4()), alias="messageId", min_length=1, max_length=200
    )
    """Segment's libraries always send one; a hand-made call without it gets a fresh one."""
    timestamp: Timestamp | None = None
    """When it happened."""
    original_timestamp: Timestamp | None = Field(default=None, alias="originalTimestamp")
    """When it happened, by the sender's clock."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Segment's context: `timezone` and `locale` are read."""

    @model_validator(mode="after")
    def _who_and_what(self) -> SegmentMessage:
        if not (self.user_id or self.anonymous_id):
            raise ValueError("either userId or anonymousId is required")
        if self.type == "track" and not self.event:
            raise ValueError("a track call needs `event`")
        if self.type == "alias" and not (self.user_id and self.previous_id):
            raise ValueError("an alias call needs `userId` and `previousId`")
        if self.type == "group" and not self.group_id:
            raise ValueError("a group call needs `groupId`")
        if self.type == "identify":  # the same rules as a profile written over the API
            email, phone = self.traits.get("email"), self.traits.get("phone")
            if email and not (isinstance(email, str) and len(email) <= 320 and _EMAIL.match(email)):
                raise ValueError("traits.email is not an email address")
            if phone and not (isinstance(phone, str) and len(phone) <= PHONE_MAX):
                raise ValueError(f"traits.phone is a string of at most {PHONE_MAX} characters")
        return self

    @property
    def customer_id(self) -> str:
        return str(self.user_id or self.anonymous_id)

    def merge(self) -> tuple[str, str] | None:
        """(the id merged, the customer it is merged into) for an `alias`, or an `identify`
        that carries both ids; None for every other call."""
        if self.type == "alias" and self.previous_id and self.user_id:
            return self.previous_id, self.user_id
        if self.type == "identify" and self.anonymous_id and self.user_id:
            return self.anonymous_id, self.user_id
        return None

    def to_event(self) -> CustomerEvent:
        """The customer event of a track or page call."""
        if self.type in ("page", "screen"):
            name = PAGE_EVENT if self.type == "page" else SCREEN_EVENT
            properties = {**self.properties, "page_name": self.name, "category": self.category}
            properties = {k: v for k, v in properties.items() if v is not None}
        else:
            name, properties = str(self.event), self.properties
        return CustomerEvent.create(
            self.customer_id,
            name,
            properties,
            timestamp=self.timestamp or self.original_timestamp,
            message_id=self.message_id,
        )

    def profile_changes(self) -> dict[str, Any]:
        """What an identify call sets: traits as attributes, and the time zone and locale
        from `context`. Email and phone fill the channel addresses only where the profile
        has none (`fill_in`): a write key (it ships in browsers) adds, it never replaces an
        address, and never touches consent."""
        changes: dict[str, Any] = {
            "attributes": {k: v for k, v in self.traits.items() if k not in PROFILE_TRAITS}
        }
        changes["fill_in"] = {k: self.traits[k] for k in PROFILE_TRAITS if self.traits.get(k)}
        if zones.is_known(self.context.get("timezone")):  # an unknown zone would break local times
            changes["timezone"] = self.context["timezone"]
        if isinstance(self.context.get("locale"), str):
            changes["locale"] = self.context["locale"]
        return changes


class SegmentBatch(Schema):
    """`/v1/batch`: messages with their own `type`; the batch's `context` is merged
    under each message's own."""

    model_config = ConfigDict(extra="ignore")

    batch: list[Any] = Field(min_length=1, max_length=2500)
    """The messages, each with its `type`."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Merged under each message's own `context`."""


class SegmentBatchDoc(Schema):
    """`/v1/batch` as the API documents it. Each message is a `SegmentMessage`; one that
    is not is reported in the answer's `rejected` and the others are accepted, as
    Segment's own API does (its libraries drop a whole batch answered with a 400)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch": [
                        {"type": "identify", "userId": "golfer-42", "traits": {"plan": "pro"}},
                        {"type": "track", "userId": "golfer-42", "event": "Trial Started"},
                        {"type": "alias", "previousId": "visitor-9", "userId": "golfer-42"},
                    ]
                }
            ]
        }
    )

    batch: list[dict[str, Any]] = Field(min_length=1, max_length=2500)
    """The messages, each with its `type`."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Merged under each message's own `context`."""


class Rejected(Schema):
    """A message of a batch that was not accepted, by its place in the batch."""

    index: int
    """The message's place in the batch."""
    loc: list[str | int]
    """Where in that message (`userId`, `properties`, ...)."""
    msg: str
    """Why it was not taken."""


class SegmentAnswer(Schema):
    success: bool = True
    """True: the accepted messages are durable."""
    accepted: int
    """Messages taken (each exactly once by `messageId`)."""
    rejected: list[Rejected] = Field(default_factory=list)
    """Messages of a batch not taken, by index."""
