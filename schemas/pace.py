"""Send pace: provider ceilings and a journey's own cap, as one booking rule (GCRA).

Every paced bucket (a provider account, an SMS number, a journey) keeps two moments: `tat`,
when its next send may go (the GCRA's theoretical arrival time: sends are exactly 1 / rate
apart, whatever the number of workers, as the bucket's row is locked while it is booked,
storage/pace.py), and where its queue ends for each journey priority (a send queues after
the sends of its priority or higher, ahead of the lower ones). A send whose turn is further off than
`pace_poll_seconds` gets a *ticket* at the queue's end instead: the enrollment waits for it
on a timer (no worker held) and comes back with it, and only then takes its send slot, so a
crowd of enrollments woken late still goes out at the rate, never in a burst. Pure data and
pure functions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.wire import Duration

TICKET_WAIT = timedelta(seconds=10)
"""How long a send back with its ticket may wait inside its activity for its send slot (a
crowd woken together is spaced out there); a longer wait (a provider's hold) queues it again."""
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
    """What booking decided in `bucket`: `go` at `slot`, `queue` until `slot` (a ticket),
    or `expired` (its turn would come after its deadline)."""

    kind: Literal["go", "queue", "expired"]
    bucket: str
    slot: datetime
    per_second: float


@dataclass(frozen=True)
class Turn:
    """A bucket's booking, decided: its kind and slot, and the bucket's new moments."""

    kind: Literal["go", "queue", "expired"]
    slot: datetime
    tat: datetime | None
    tails: dict[int, datetime]
    """Where the queue ends for a send of each priority (the priorities with sends queued)."""

    @property
    def tail(self) -> datetime | None:
        """Where the whole queue ends."""
        return max(self.tails.values(), default=None)


def interval(per_second: float) -> timedelta:
    return timedelta(seconds=1 / per_second)


def queue_end(tails: dict[int, datetime], priority: int) -> datetime | None:
    """Where a send of `priority` joins the queue: after every queued send of its
    priority or a higher one, ahead of the lower ones."""
    return max((t for p, t in tails.items() if p >= priority), default=None)


def take(
    tat: datetime | None,
    tails: dict[int, datetime],
    now: datetime,
    per_second: float,
    *,
    ticket: bool,
    poll: timedelta,
    deadline: datetime | None = None,
    priority: int = 0,
) -> Turn:
    """A send's turn in a bucket whose next send slot is `tat` and whose queue ends at
    `tails` (by priority).

    A fresh send goes at the next send slot when that is at most `poll` away and no send
    of its priority or higher is queued; else it gets a ticket at its place in the queue
    (after those), and every queued lower priority's end moves one slot back. A send back
    with its ticket waits again while sends of a higher priority are queued (until the
    last of them is called back), else takes the next send slot if it is within
    `TICKET_WAIT`, else waits again until it (a provider's hold). One whose slot comes
    after `deadline` takes nothing."""
    step = interval(per_second)
    free = max(tat or now, now)
    live = {p: t for p, t in tails.items() if t > now}
    if ticket:
        ahead = max((t for p, t in live.items() if p > priority), default=None)
        if ahead is not None:  # sends of a higher priority are queued: they go first
            return Turn("queue", ahead, tat, live)
        if free - now > TICKET_WAIT:
            return Turn("queue", free, tat, live)
        if deadline is not None and free > deadline:
            return Turn("expired", free, tat, live)
        return Turn("go", free, free + step, live)
    end = queue_end(live, priority)
    start = max(end or now, free)
    if end is None and start - now <= poll:
        if deadline is not None and free > deadline:
            return Turn("expired", free, tat, live)
        return Turn("go", free, free + step, live)
    if deadline is not None and start > deadline:
        return Turn("expired", start, tat, live)
    behind = {p: t + step if p < priority and t > start else t for p, t in live.items()}
    return Turn("queue", start, tat, behind | {priority: start + step})


def journey_bucket(journey_id: str, step_id: str | None = None) -> str:
    """The bucket of a journey's pace (or of one send step's)."""
    return f"journey:{journey_id}" + (f"/{step_id}" if step_id else "")


def drain(tat: datetime | None, tail: datetime | None, now: datetime) -> timedelta:
    """How long until everything booked in a bucket has gone out."""
    last = max(tat or now, tail or now)
    return max(last - now, timedelta(0))


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
