"""The send decision, as a pure function of what the ledger read under the customer's lock.

`DeliveryLedger.reserve` locks the customer, reads one `Snapshot` (the profile with its
consent, suppressions and time zone; the key's earlier row; the marketing sends holding a
slot in the widest cap window), calls `decide`, and writes the `Verdict`. The rules and
their order live here and nowhere else:

1. a settled key answers its first outcome; a granted one is granted again (a retry);
2. an abandoned send (the enrollment ended) is suppressed;
3. consent and an address not on the suppression list: the first reachable channel of the
   candidates, else suppressed (with the first candidate's reason);
4. a dry run is suppressed, after the channel is chosen (it says which one);
5. send-time optimisation defers to the customer's best hour;
6. a transactional send goes now: no quiet hours, no caps;
7. quiet hours in the customer's zone defer it;
8. a full frequency cap suppresses it (or defers it to when a slot frees);
9. a capped send that a higher-priority journey could outrank waits the arbitration
   window (`contend`), then `arbitrate` ranks the contenders;
10. else it is granted.

A deferral past the request's deadline is suppressed instead. No I/O, no clock: `at` is
the moment the send is for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from journeys.schemas.delivery import FINAL, SendRequest
from journeys.schemas.guardrails import FrequencyCap, QuietHours, best_hour, counted, free_at
from journeys.schemas.guardrails import quiet_until as quiet_end
from journeys.schemas.journey import channel_candidates
from journeys.schemas.profile import Profile
from journeys.schemas.settings import Settings


@dataclass(frozen=True)
class Rules:
    """The deployment's guardrails; the journey's own come with each request."""

    caps: Sequence[FrequencyCap] = ()
    quiet_hours: QuietHours | None = None
    arbitration: timedelta = timedelta(0)
    top_priority: int | None = None
    """The highest priority of any journey that sends marketing messages (None: not
    known). A send at it cannot be outranked (ties go to who asked first), so it takes
    no arbitration window."""

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        """The deployment's guardrails, as its settings give them."""
        return cls(
            caps=settings.frequency_caps,
            quiet_hours=settings.quiet_hours,
            arbitration=timedelta(seconds=settings.arbitration_seconds),
        )

    def contends(self, priority: int) -> bool:
        """Whether a capped send of this priority waits the arbitration window."""
        outranked = self.top_priority is None or priority < self.top_priority
        return self.arbitration > timedelta(0) and outranked


@dataclass(frozen=True)
class Slot:
    """One send already holding (or contending for) a cap slot."""

    at: datetime
    channel: str
    journey_id: str
    priority: int
    since: datetime
    """When it asked (contenders rank by it after priority)."""
    key: str

    def rank(self) -> tuple[int, datetime, str]:
        """Contention order: higher priority first, then who asked first."""
        return (-self.priority, self.since, self.key)


@dataclass(frozen=True)
class ScopedCap:
    """A cap and its scope: the whole customer, or one journey's sends (`journey_id`)."""

    cap: FrequencyCap
    journey_id: str | None = None

    def counts(self, slot: Slot) -> bool:
        scoped = self.journey_id is None or slot.journey_id == self.journey_id
        return scoped and self.cap.applies_to(slot.channel)

    def fits(self, at: datetime, slots: Sequence[Slot], extra: Sequence[Slot] = ()) -> bool:
        """Whether one more send fits at `at` beside `slots` (in the window) and `extra`
        (contenders ranked ahead, wherever their clocks are)."""
        used = counted(self.cap, at, [s.at for s in slots if self.counts(s)])
        return used + sum(1 for e in extra if self.counts(e)) + 1 <= self.cap.limit

    def free_at(self, at: datetime, slots: Sequence[Slot]) -> datetime:
        return free_at(self.cap, at, [s.at for s in slots if self.counts(s)])


def caps_for(request: SendRequest, rules: Rules, channel: str | None) -> list[ScopedCap]:
    """The caps on `channel` (None: on any channel): the deployment's and the journey's."""
    scoped = [ScopedCap(c) for c in rules.caps]
    scoped += [ScopedCap(c, request.journey_id) for c in request.journey_caps]
    return [c for c in scoped if channel is None or c.cap.applies_to(channel)]


@dataclass(frozen=True)
class Earlier:
    """The key's row from an earlier attempt."""

    status: str
    channel: str


@dataclass(frozen=True)
class Snapshot:
    """What the reservation read under the customer's lock."""

    profile: Profile
    earlier: Earlier | None
    slots: Sequence[Slot]
    suppressed: Mapping[str, str] = field(default_factory=dict)
    """Channels whose address (the profile's) is on the suppression list, and why."""


@dataclass(frozen=True)
class Verdict:
    """What to write. `earlier`: answer the settled row as it is; `again`: it was granted
    before (a retry); `grant`, `contend`, `suppress`, `defer`: set the row so. `channel`
    is the chosen channel (None: not chosen, the row keeps its own)."""

    kind: Literal["earlier", "again", "grant", "contend", "suppress", "defer"]
    channel: str | None = None
    reason: str | None = None
    until: datetime | None = None


def decide(snapshot: Snapshot, request: SendRequest, rules: Rules, at: datetime) -> Verdict:
    """The reservation's verdict for `request` at `at` (the rules above, in order)."""
    earlier = snapshot.earlier
    if earlier is not None and earlier.status in FINAL:
        return Verdict("earlier", earlier.channel)
    if earlier is not None and earlier.status == "queued" and request.abandon:
        return Verdict("suppress", earlier.channel, "ended")
    if earlier is not None and earlier.status in ("pending", "queued"):
        return Verdict("again", earlier.channel)
    if request.abandon:
        return Verdict("suppress", reason="ended")
    profile = snapshot.profile
    candidates = channel_candidates(request.channel, request.fallbacks, profile.preferred_channel)
    channel, refusal = profile.reachable(candidates, request.topic, snapshot.suppressed)
    if channel is None:
        return Verdict("suppress", reason=refusal)
    if request.dry_run:
        return Verdict("suppress", channel, "dry_run")
    if request.best_time_within is not None:  # send-time optimisation: no extra call
        best = best_hour(profile.active_hours, at, request.best_time_within)
        if best > at:
            return _defer(request, channel, best, "best_time")
    if request.topic == "transactional":
        return Verdict("grant", channel)
    quiet = request.quiet_hours or rules.quiet_hours
    if quiet is not None and quiet.applies_to(channel):
        until = quiet_end(quiet, at, profile.timezone)
        if until is not None:
            return _defer(request, channel, until, "quiet_hours")
    caps = caps_for(request, rules, channel)
    blocked = [c for c in caps if not c.fits(at, snapshot.slots)]
    if blocked:
        return _capped(request, channel, at, blocked, snapshot.slots)
    if caps and rules.contends(request.priority) and request.contested():
        return Verdict("contend", channel)
    return Verdict("grant", channel)


def arbitrate(
    request: SendRequest,
    rules: Rules,
    at: datetime,
    mine: Slot,
    slots: Sequence[Slot],
    contenders: Sequence[Slot],
) -> Verdict:
    """A contending send's verdict: a slot when the sends already counted plus the
    contenders ranked above `mine` (priority, then who asked first) leave one free."""
    caps = caps_for(request, rules, mine.channel)
    ahead = [c for c in contenders if c.rank() < mine.rank()]
    blocked = [c for c in caps if not c.fits(at, slots, ahead)]
    if blocked:
        return _capped(request, mine.channel, at, blocked, slots)
    return Verdict("grant", mine.channel)


def _capped(
    request: SendRequest,
    channel: str,
    at: datetime,
    blocked: Sequence[ScopedCap],
    slots: Sequence[Slot],
) -> Verdict:
    if request.when_capped == "defer":
        until = max(c.free_at(at, slots) for c in blocked)
        return _defer(request, channel, until, "capped")
    return Verdict("suppress", channel, "capped")


def _defer(request: SendRequest, channel: str, until: datetime, reason: str) -> Verdict:
    if request.deadline is not None and until > request.deadline:
        return Verdict("suppress", channel, reason)
    return Verdict("defer", channel, reason, until)
