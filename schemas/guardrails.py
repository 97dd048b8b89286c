"""Customer-first guardrails as data, and the pure arithmetic behind them.

Consent, frequency caps and quiet hours are decided together in one atomic reservation in the
database (storage/reservations.py); this module holds what that decision is made of: the
policy models and the functions over times and windows, with no I/O, so they are tested
directly (tests/test_guardrails_math.py) and shared by the worker and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Literal, get_args

from pydantic import ConfigDict, Field

from journeys.schemas.base import Schema
from journeys.schemas.wire import Duration
from journeys.schemas.zones import zone

Channel = Literal["email", "sms", "push", "in_app", "whatsapp", "webhook"]
CHANNELS: tuple[str, ...] = get_args(Channel)
Topic = Literal["marketing", "transactional"]
"""Marketing sends are capped, kept out of quiet hours and need marketing consent;
transactional sends (receipts, security) ignore caps and quiet hours, never channel consent."""


class _Model(Schema):
    model_config = ConfigDict(extra="forbid")


QUIET_EXEMPT: tuple[Channel, ...] = ("in_app",)
"""Channels quiet hours leave alone by default: an in-app message waits in the inbox until
the customer opens the app, so it wakes no one."""


class QuietHours(_Model):
    """A daily window in the customer's own time zone when marketing sends wait, e.g.
    21:00-08:00 (it may wrap midnight). `start == end` means no quiet hours. `channels`
    are those that wait (default: all but in-app)."""

    start: time
    """Local time the quiet hours start (`21:00`)."""
    end: time
    """Local time they end (`08:00`, the next morning when earlier than start)."""
    channels: list[Channel] | None = None
    """The channels that wait; others send at any hour."""

    def applies_to(self, channel: str) -> bool:
        if self.channels is None:
            return channel not in QUIET_EXEMPT
        return channel in self.channels

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class FrequencyCap(_Model):
    """At most `limit` marketing messages per rolling `window`, on one channel or in total."""

    limit: int = Field(ge=0)
    """Marketing messages allowed per window."""
    window: Duration = Field(gt=timedelta(0))
    channel: str | None = None
    """Count only this channel; default: every channel."""

    def applies_to(self, channel: str) -> bool:
        return self.channel is None or self.channel == channel


def next_local_time(at: time, after: datetime, timezone: str) -> datetime:
    """The first instant after `after` when the wall clock in `timezone` reads `at`. A wall
    time skipped by a DST change resolves to the instant after the gap."""
    tz = zone(timezone)
    local_now = after.astimezone(tz)
    for days in range(0, 3):
        day = (local_now + timedelta(days=days)).date()
        # Round-trip through UTC to normalise non-existent (spring-forward) wall times.
        instant = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if instant > after:
            return instant
    raise AssertionError("unreachable: a wall time recurs within two days")


def quiet_until(quiet: QuietHours | None, at: datetime, timezone: str) -> datetime | None:
    """When the quiet hours around `at` end, or None when `at` is outside them."""
    if quiet is None or not quiet.contains(at.astimezone(zone(timezone)).time()):
        return None
    return next_local_time(quiet.end, at, timezone)


def window_start(cap: FrequencyCap, at: datetime) -> datetime:
    """Sends after this instant count against `cap` at `at`."""
    return at - cap.window


def counted(cap: FrequencyCap, at: datetime, sent_at: Sequence[datetime]) -> int:
    """Sends in the window (at - window, at]. Sends recorded at a later instant count too:
    enrollments' clocks are not in step, and one that reserved later but runs ahead must
    still hold its slot against one whose clock is behind."""
    start = window_start(cap, at)
    return sum(1 for s in sent_at if s > start)


def free_at(cap: FrequencyCap, at: datetime, sent_at: Sequence[datetime]) -> datetime:
    """The first instant >= `at` when one more send fits under `cap`, given the send times
    already counted. A cap of 0 never frees: the answer is `datetime.max` (in UTC)."""
    if cap.limit == 0:
        return datetime.max.replace(tzinfo=UTC)
    inside = sorted(s for s in sent_at if s > window_start(cap, at))
    excess = len(inside) - cap.limit
    if excess < 0:
        return at
    # The (excess+1)-th oldest send must leave the window: it does at s + window.
    return inside[excess] + cap.window


def best_hour(
    active_hours: Sequence[int], at: datetime, within: timedelta, *, min_events: int = 5
) -> datetime:
    """Send-time optimisation: the instant in [at, at + within] that falls in the UTC hour
    of day when the customer is most often active (from their event timestamps). Without
    enough history, `at`. Ties go to the earliest candidate."""
    if len(active_hours) != 24 or sum(active_hours) < min_events:
        return at
    candidates = [at]
    top = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while top <= at + within:
        candidates.append(top)
        top += timedelta(hours=1)
    return max(candidates, key=lambda c: (active_hours[c.astimezone(UTC).hour], -c.timestamp()))
