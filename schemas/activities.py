"""Names and small payloads of the activities workflows call.

Workflows call activities by name so that `workflows/` never imports `activities/` (which
does I/O); both sides take the names from here.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from pydantic import BaseModel

SEND = "journeys.send"
GET_PROFILE = "journeys.get_profile"
NEXT_LOCAL_TIME = "journeys.next_local_time"
BEST_SEND_TIME = "journeys.best_send_time"


class LocalTimeRequest(BaseModel):
    """The next moment after `after` when the customer's clock shows `at`."""

    customer_id: str
    at: time
    after: datetime


class SendTimeRequest(BaseModel):
    """Send-time optimisation: the customer's usual active hour in [at, at + within]."""

    customer_id: str
    at: datetime
    within: timedelta
