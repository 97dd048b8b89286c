"""Names and small payloads of the activities workflows call.

Workflows call activities by name so that `workflows/` never imports `activities/` (which
does I/O); both sides take the names from here.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.journey import HttpCall, RateLimit

SEND = "journeys.send"
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


AUDIENCE_COUNT = "journeys.audience_count"
AUDIENCE_PAGE = "journeys.audience_page"
AUDIENCE_ENROLL = "journeys.audience_enroll"
