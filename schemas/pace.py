"""Send pace: provider ceilings and a journey's own cap, as one booking rule (GCRA).

Every paced bucket (a provider account, an SMS number, a journey) keeps one number, its
theoretical arrival time `tat`: the moment its next send may go. Booking a send takes
`max(tat, now)` and moves `tat` on by one interval (1 / rate), so bookings are spaced at
exactly the rate whatever the number of workers: the bucket's row is locked while it is
booked (storage/pace.py). A send booked further ahead than `pace_poll_seconds` is *queued*: the
enrollment waits for its slot on a timer (no worker holds it) and comes back with the
booking, which is honoured instead of booking again. Pure data and pure functions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.wire import Duration

STALE = timedelta(seconds=30)
"""A booked slot this far in the past is given up (the enrollment was held up) and the send
books again, at the back of the queue: a late crowd must not burst past the ceiling."""
PROVIDERS: tuple[str, ...] = ("email", "sms", "whatsapp", "push", "webhook")
"""The channels whose provider has a send ceiling (in-app writes a table)."""
UNPACED: dict[str, None] = {f"pace_{c}_per_second": None for c in PROVIDERS}
"""Settings that leave every provider unpaced: for a stack that measures or tests something
else (the shared test stack, the authors' kit, the throughput benchmarks)."""


class Pace(Schema):
    """A journey's (or one send step's) own cap on its sends, as Braze's Canvas rate limit:
    sends over it wait their turn, first come first served, never dropped, unless they
    have waited `ttl`."""

    per_minute: Annotated[int, Field(ge=1, le=500_000)]
    """Sends a minute at most (spread evenly: 60 a minute is one a second)."""
    ttl: Duration | None = Field(default=None, gt=timedelta(0))
    """How long a send may wait for its turn before it is skipped with reason `expired`
    (a cart reminder is worthless the next day); None: it waits as long as it takes."""


@dataclass(frozen=True)
class Booking:
    """A slot taken in `bucket`, or refused (`expired`: it would come after the deadline)."""

    bucket: str
    slot: datetime
    per_second: float
    expired: bool = False


def interval(per_second: float) -> timedelta:
    return timedelta(seconds=1 / per_second)


def book(
    tat: datetime | None, now: datetime, per_second: float, deadline: datetime | None = None
) -> tuple[datetime, datetime | None]:
    """(the slot, the bucket's new tat), or (the slot it would get, None) when that slot is
    after `deadline`: a send that cannot make its deadline takes nothing from the queue."""
    slot = max(tat, now) if tat is not None else now
    if deadline is not None and slot > deadline:
        return slot, None
    return slot, slot + interval(per_second)


def journey_bucket(journey_id: str, step_id: str | None = None) -> str:
    """The bucket of a journey's pace (or of one send step's)."""
    return f"journey:{journey_id}" + (f"/{step_id}" if step_id else "")


def drain(tat: datetime | None, now: datetime) -> timedelta:
    """How long until everything booked in a bucket has gone out."""
    return max(tat - now, timedelta(0)) if tat is not None else timedelta(0)


class PaceLimit(Schema):
    """A paced bucket's ceiling, as an operator sets it at run time."""

    per_second: Annotated[float, Field(gt=0, le=1_000_000)]
    """Sends a second at most, across every worker."""


class QueueView(Schema):
    """One paced bucket's queue: what is waiting and when it will have gone."""

    bucket: str
    """`email`, `sms:+15005550006`, `journey:cart/remind`, ..."""
    per_second: float | None
    """The ceiling (None: unpaced)."""
    limit_from: str
    """`settings`, `journey` (its spec's pace) or `operator` (set at run time)."""
    waiting: int
    """Sends queued for a slot."""
    oldest_wait_seconds: float
    """How long the longest-waiting one has waited."""
    drain_seconds: float
    """When the last booked slot comes, from now."""
    sent_last_minute: int
    """Sends that went out in the last 60 s (the rate actually reached)."""
