"""The activity contract: every activity a workflow calls, as a typed method of a contract
class, with one input model each, and the error kinds that cross the boundary.

Workflows call `workflow.execute_activity_method(Sends.send, request, ...)`: the name,
the input type and the result type come from the method here, so `workflows/` never
imports `activities/` (which does I/O). Each class in `activities/` implements one contract
(subclassing it, each method under the same name and types: tests/test_contract.py).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys.schemas.audience import AudiencePage, AudiencePageRequest, Enrolled, EnrollRequest
from journeys.schemas.base import Schema
from journeys.schemas.decision import DecisionRequest, DecisionResult
from journeys.schemas.delivery import SendRequest, SendResult
from journeys.schemas.experiments import SplitWeights, WeightsRequest
from journeys.schemas.journey import Audience, HttpCall, RateLimit

INVALID_REQUEST = "InvalidRequest"
"""The error kind of a request that retrying cannot mend (a provider's 4xx, a template
that does not render, an action that refuses its input): never retried."""
RATE_LIMITED = "RateLimited"
"""An action's own rate limit held the call past its wait: retried later."""
ERROR_KINDS = frozenset({INVALID_REQUEST, RATE_LIMITED})
"""Every error kind an activity raises for a workflow's retry policy to name."""


def invalid_request(message: str) -> ApplicationError:
    """The non-retryable failure of a request that is wrong in itself."""
    return ApplicationError(message, type=INVALID_REQUEST, non_retryable=True)


SEND = "journeys.send"
GIVE_UP = "journeys.give_up_send"
GET_PROFILE = "journeys.get_profile"
NEXT_LOCAL_TIME = "journeys.next_local_time"
BEST_SEND_TIME = "journeys.best_send_time"
DECIDE = "journeys.decide"
UPDATE_PROFILE = "journeys.update_profile"
ACTION = "journeys.action"


class LocalTimeRequest(Schema):
    """The next moment after `after` when the customer's clock shows `at`."""

    customer_id: str
    at: time
    after: datetime


class SendTimeRequest(Schema):
    """Send-time optimisation: the customer's usual active hour in [at, at + within]."""

    customer_id: str
    at: datetime
    within: timedelta


class GiveUp(Schema):
    """A send whose activity gave up: its ledger row is settled as `status` (`unknown` after
    a timeout: the provider may have taken it; `failed` otherwise) unless it settled."""

    idempotency_key: str
    status: Literal["unknown", "failed"]
    reason: str = Field(max_length=500)


class ProfileRequest(Schema):
    """The profile fields a branch reads (None: the whole view)."""

    customer_id: str
    fields: list[str] | None = None


class ProfileUpdate(Schema):
    customer_id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    lifecycle_stage: str | None = None


class ActionRequest(Schema):
    """One `action` step call. `key` (workflow, enrollment, step, visit) goes to the
    endpoint as Idempotency-Key and to a registered action as `key`."""

    key: str
    journey_id: str
    step_id: str
    customer_id: str
    activity: str | None = None
    http: HttpCall | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    scope: dict[str, Any] = Field(default_factory=dict)
    """The trigger event, the last event and the enrollment's context."""


SPLIT_WEIGHTS = "journeys.split_weights"
AUDIENCE_COUNT = "journeys.audience_count"
AUDIENCE_PAGE = "journeys.audience_page"
AUDIENCE_ENROLL = "journeys.audience_enroll"


# -- the contract: what each activity takes and returns ---------------------------------


class Profiles:
    """Profile lookups and changes."""

    @activity.defn(name=GET_PROFILE)
    async def get_profile(self, request: ProfileRequest) -> dict[str, Any]:
        """Only the profile fields asked for: the result goes into history."""
        raise NotImplementedError

    @activity.defn(name=UPDATE_PROFILE)
    async def update_profile(self, update: ProfileUpdate) -> None:
        """Set attributes and the lifecycle stage; nothing comes back."""
        raise NotImplementedError

    @activity.defn(name=NEXT_LOCAL_TIME)
    async def next_local_time(self, request: LocalTimeRequest) -> datetime:
        """The next moment the customer's clock shows `request.at`."""
        raise NotImplementedError

    @activity.defn(name=BEST_SEND_TIME)
    async def best_send_time(self, request: SendTimeRequest) -> datetime:
        """The customer's usual active hour within the window."""
        raise NotImplementedError


class Sends:
    """The one send path: reservation, rendering, the channel, settling."""

    @activity.defn(name=SEND)
    async def send(self, request: SendRequest) -> SendResult:
        """Send once per idempotency key (or say why not)."""
        raise NotImplementedError

    @activity.defn(name=GIVE_UP)
    async def give_up(self, request: GiveUp) -> SendResult:
        """Settle a send its activity gave up on; the outcome it has."""
        raise NotImplementedError


class Decisions:
    """Offers from the decisioning service."""

    @activity.defn(name=DECIDE)
    async def decide(self, request: DecisionRequest) -> DecisionResult:
        """The ranked offers for a placement."""
        raise NotImplementedError


class Actions:
    """Custom actions: a registered Python action or an HTTP endpoint."""

    @activity.defn(name=ACTION)
    async def run(self, request: ActionRequest) -> dict[str, Any]:
        """The action's JSON output."""
        raise NotImplementedError


class Experiments:
    """A bandit split's weights."""

    @activity.defn(name=SPLIT_WEIGHTS)
    async def weights(self, request: WeightsRequest) -> SplitWeights:
        """Thompson sampling's weights from the arms' counts (cached up to a minute), or
        the operator's frozen weights or winner."""
        raise NotImplementedError


class Audiences:
    """Audience entry: count, page and enrol."""

    @activity.defn(name=AUDIENCE_COUNT)
    async def count(self, audience: Audience) -> int:
        """How many customers match the audience now."""
        raise NotImplementedError

    @activity.defn(name=AUDIENCE_PAGE)
    async def page(self, request: AudiencePageRequest) -> AudiencePage:
        """One page of matching customer ids."""
        raise NotImplementedError

    @activity.defn(name=AUDIENCE_ENROLL)
    async def enroll(self, request: EnrollRequest) -> Enrolled:
        """Start the page's enrollments at the run's rate."""
        raise NotImplementedError


CONTRACTS: tuple[type, ...] = (Profiles, Sends, Decisions, Actions, Experiments, Audiences)
