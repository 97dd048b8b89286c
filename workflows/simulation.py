"""The step engine's second runtime: one enrollment simulated over recorded events, in
virtual time, with nothing sent, stored or started (a backtest, usecases/backtest.py).

The clock jumps from one moment to the next: a wait ends at the customer's next recorded
event or at its timeout, whichever is first, and activities take no time. The activities
answer from what was read before the run (`World`): the profile as it is now, the cap
slots of the marketing messages the customer really received from other journeys, and the
deployment's guardrails; a send is decided by the same pure function as the delivery
ledger's (`schemas.send_decision.decide`).

What a backtest cannot know, it assumes, and says so (`ASSUMPTIONS`). Deterministic: no
I/O, no wall clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.common import RetryPolicy

from journeys.schemas.activities import (
    ActionRequest,
    LocalTimeRequest,
    ProfileRequest,
    ProfileUpdate,
    SendTimeRequest,
)
from journeys.schemas.decision import DecisionRequest, DecisionResult
from journeys.schemas.delivery import FINAL, SendRequest, SendResult
from journeys.schemas.enrollment import EnrollmentInput, PathEntry
from journeys.schemas.events import CustomerEvent
from journeys.schemas.experiments import SplitWeights, WeightsRequest
from journeys.schemas.guardrails import best_hour, next_local_time
from journeys.schemas.journey import BEST_CHANNEL
from journeys.schemas.profile import Profile
from journeys.schemas.send_decision import Earlier, Rules, Slot, Snapshot, arbitrate, decide
from journeys.workflows.engine import Interpreter

T = TypeVar("T")
A = TypeVar("A")

ASSUMPTIONS = (
    "Reactions are the customer's recorded events, as they happened: a message the real "
    "history never sent gets no reaction of its own (no opens, clicks or purchases it "
    "would have caused), and one it did send keeps the reactions that followed.",
    "Profiles are as they are now (consent, addresses, time zone, attributes); an "
    "update_profile step changes the simulated copy only.",
    "Caps count the marketing messages customers really received from other journeys, "
    "plus this journey's simulated sends; this journey's own real sends are left out.",
    "Every granted send is delivered (no provider failures, no missing templates); a "
    "decide step gets no offers and an action step succeeds with no output.",
    "Events are replayed up to the range's end; an enrollment still waiting then is "
    "reported as waiting at its step.",
    "Messages' own reactions (message.opened, .clicked, .bounced...) name real sends, so "
    "they are not replayed: a wait_for_reaction in a backtest takes its timeout edge, and "
    "the suppression list is not consulted.",
    "A bandit split takes its written weights (the past has no counts for it); a holdout, "
    "a split and content variants assign customers as the real ones do (by the same hash).",
)


MAX_CALLS = 10_000
"""Activity calls one simulated enrollment may make (a journey's steps are capped at
1,000): past it, a bug, not a journey, and the backtest says so."""
TIMER_GRAIN = timedelta(microseconds=2)
"""A hold scaled by `time_scale` ends up to this much, times the scale, before its moment
on the enrollment's clock (microsecond rounding); a real timer fires after, never before."""


class StillWaiting(Exception):
    """The range ended during a wait: the enrollment is reported as waiting there."""


@dataclass
class World:
    """What one customer's simulated enrollments read, loaded before the run."""

    profile: Profile
    events: Sequence[CustomerEvent]
    """The customer's recorded events after the entry, in the order they happened."""
    slots: list[Slot] = field(default_factory=list)
    """Cap slots held: real marketing sends of other journeys, then simulated ones."""
    rules: Rules = field(default_factory=Rules)
    until: datetime | None = None
    """The range's end: no event after it is replayed, no wait past it ends."""


@dataclass(frozen=True)
class SimulatedSend:
    """One send's outcome, as the delivery ledger would have written it."""

    step: str
    channel: str | None
    status: str
    reason: str | None
    at: datetime


@dataclass
class Outcome:
    """One simulated enrollment: how it ended (or `waiting`), where, and what it sent."""

    status: str
    step: str
    """The step it ended (or waits) at: the last it entered."""
    path: list[PathEntry]
    sends: list[SimulatedSend]
    held: list[SimulatedSend]
    """Deferrals (quiet hours, best time, a cap freeing up), each a hold before a retry."""
    ended_at: datetime
    next_event: int
    """The index in `World.events` of the first event this enrollment did not take."""


class Simulation(Interpreter):
    """`Interpreter` in virtual time over a `World`. `run` simulates to the end."""

    def __init__(self, input: EnrollmentInput, world: World, *, now: datetime, key: str):
        super().__init__(input, now=now, run_id=key)
        self._at = now
        self._world = world
        self._key = key
        self._next = 0
        self._customer = world.profile
        self._ledger: dict[str, tuple[str, str | None, str | None]] = {}
        self._sends: list[SimulatedSend] = []
        self._held: list[SimulatedSend] = []
        self._held_until: dict[str, datetime] = {}
        self._calls = 0

    async def run(self) -> Outcome:
        status = "active"
        try:
            while self._ending is None:
                await self._take_step()
            await self._watch_goal()
            assert self._ending is not None
            status = self._ending[0]
        except StillWaiting:
            status = "waiting"
        return Outcome(
            status=status,
            step=self._carry.path[-1].step if self._carry.path else self._carry.step,
            path=self._carry.path,
            sends=self._sends,
            held=self._held,
            ended_at=self._at,
            next_event=self._next,
        )

    # -- effects (engine.Interpreter): virtual ones -------------------------------------------

    def _now(self) -> datetime:
        return self._at

    def _workflow_id(self) -> str:
        return self._key

    def _patched(self, patch: str) -> bool:
        return True  # a new enrollment takes every patch

    async def _wait_condition(
        self, over: Callable[[], bool], timeout: timedelta, summary: str
    ) -> None:
        deadline = self._at + timeout
        events, until = self._world.events, self._world.until
        while not over():
            upcoming = events[self._next] if self._next < len(events) else None
            if upcoming is not None and upcoming.timestamp <= deadline:
                self._at = max(self._at, upcoming.timestamp)
                self._next += 1
                self._on_event(upcoming)
                continue
            if until is not None and deadline > until:
                self._at = until
                raise StillWaiting
            self._at = deadline
            raise TimeoutError
        return

    async def _activity(
        self,
        method: Callable[[Any, A], Awaitable[T]],
        arg: A,
        *,
        timeout: timedelta,
        retry: RetryPolicy,
        summary: str,
        local: bool = False,
    ) -> T:
        self._calls += 1
        if self._calls > MAX_CALLS:
            raise RuntimeError(f"the enrollment made {MAX_CALLS} calls without ending: a loop?")
        answer: Any
        match arg:
            case SendRequest():
                answer = self._reserve(arg)
            case ProfileRequest():
                answer = self._customer.view(arg.fields)
                if arg.fields and any(f.startswith("group.") for f in arg.fields):
                    answer["group"] = {}
            case LocalTimeRequest():
                answer = next_local_time(arg.at, arg.after, self._customer.timezone)
            case SendTimeRequest():
                answer = best_hour(self._customer.active_hours, arg.at, arg.within)
            case ProfileUpdate():
                attributes = {**self._customer.attributes, **arg.attributes}
                attributes = {k: v for k, v in attributes.items() if v is not None}
                stage = arg.lifecycle_stage or self._customer.lifecycle_stage
                self._customer = self._customer.model_copy(
                    update={"attributes": attributes, "lifecycle_stage": stage}
                )
                answer = None
            case DecisionRequest():
                answer = DecisionResult(placement=arg.placement, offers=[])
            case ActionRequest():
                answer = {}
            case WeightsRequest():  # a backtest has no arm counts: the written weights
                total = sum(w for _, w in arg.paths)
                answer = SplitWeights(
                    weights=[w / total for _, w in arg.paths], basis="prior", computed_at=self._at
                )
            case _:
                raise TypeError(f"a simulation has no activity for {type(arg).__name__}")
        return answer  # type: ignore[no-any-return]

    def _reserve(self, request: SendRequest) -> SendResult:
        """The ledger's reservation, in memory: the same verdict for the same snapshot."""
        at = request.at or self._at
        until = self._held_until.get(request.idempotency_key)
        grain = TIMER_GRAIN * max(1.0, self._spec.time_scale)
        if until is not None and at < until <= at + grain:
            at = until  # a held send is retried once its hold is over, as a timer fires
        earlier = self._ledger.get(request.idempotency_key)
        snapshot = Snapshot(
            profile=self._customer,
            earlier=Earlier(earlier[0], earlier[1] or "") if earlier else None,
            slots=self._world.slots,
        )
        verdict = decide(snapshot, request, self._world.rules, at)
        if verdict.kind == "contend":  # no other journey contends in a backtest
            assert verdict.channel is not None
            mine = Slot(
                at,
                verdict.channel,
                request.journey_id,
                request.priority,
                at,
                request.idempotency_key,
            )
            verdict = arbitrate(request, self._world.rules, at, mine, self._world.slots, [])
        named = request.channel if request.channel != BEST_CHANNEL else None
        channel = verdict.channel or (earlier[1] if earlier else None) or named
        step = request.step_id
        if verdict.kind == "earlier" and earlier is not None:
            return SendResult(status=earlier[0], reason=earlier[2], channel=channel)  # type: ignore[arg-type]
        if verdict.kind in ("grant", "again"):
            if request.topic == "marketing" and channel is not None:
                self._world.slots.append(
                    Slot(
                        at,
                        channel,
                        request.journey_id,
                        request.priority,
                        at,
                        request.idempotency_key,
                    )
                )
            self._ledger[request.idempotency_key] = ("sent", channel, None)
            self._sends.append(SimulatedSend(step, channel, "sent", None, at))
            return SendResult(status="sent", channel=channel)
        if verdict.kind == "defer":
            assert verdict.until is not None
            self._held_until[request.idempotency_key] = verdict.until
            self._held.append(SimulatedSend(step, channel, "deferred", verdict.reason, at))
            return SendResult(
                status="deferred", reason=verdict.reason, channel=channel, until=verdict.until
            )
        reason = verdict.reason or ""
        self._ledger[request.idempotency_key] = ("suppressed", channel, reason)
        assert "suppressed" in FINAL
        self._sends.append(SimulatedSend(step, channel, "suppressed", reason, at))
        return SendResult(status="suppressed", reason=reason, channel=channel)


def _slot(request: SendRequest, channel: str, at: datetime) -> Slot:
    return Slot(at, channel, request.journey_id, request.priority, at, request.idempotency_key)
