"""The step engine: what each step of a journey does, written once, over a small effects
protocol (a clock, a durable wait, activity calls, patch checks and what an operator sees).

Two runtimes implement the protocol: `JourneyWorkflow` (workflows/journey.py) runs it in
Temporal, where the clock is workflow time, waits are timers and conditions, and calls are
activities; `Simulation` (workflows/simulation.py) runs it over recorded events in virtual
time, for a backtest, with nothing sent. A change to a step changes both
(tests/test_backtest.py runs the same spec both ways and compares every path).

Deterministic, like any workflow code: no I/O, clocks, randomness or threads here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, assert_never

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

from journeys.schemas.activities import (
    INVALID_REQUEST,
    ActionRequest,
    Actions,
    Decisions,
    Experiments,
    GiveUp,
    LocalTimeRequest,
    ProfileRequest,
    Profiles,
    ProfileUpdate,
    Sends,
    SendTimeRequest,
)
from journeys.schemas.decision import DecisionRequest, DecisionResult
from journeys.schemas.delivery import SendRequest, SendResult
from journeys.schemas.enrollment import (
    Carry,
    EnrollmentInput,
    PathEntry,
    Status,
    Waiting,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.experiments import WeightsRequest
from journeys.schemas.journey import (
    BEST_CHANNEL,
    HOLDOUT,
    ActionStep,
    BranchStep,
    ContentVariant,
    DecideStep,
    EventCondition,
    ExitStep,
    Holdout,
    SendStep,
    SplitStep,
    Step,
    UpdateProfileStep,
    WaitForEventStep,
    WaitForReactionStep,
    WaitStep,
)
from journeys.schemas.pace import journey_bucket
from journeys.schemas.predicates import AllOf, Comparison, Predicate, evaluate
from journeys.workflows import patches
from journeys.workflows.clock import local_time
from journeys.workflows.controls import Controls
from journeys.workflows.split import bucket, choose, weighted

T = TypeVar("T")
A = TypeVar("A")
DEDUP_WINDOW = 1000
EVENTS_BETWEEN_WAITS = patches.EVENTS_BETWEEN_WAITS.id
EVENTS_DURING_HOLDS = patches.EVENTS_DURING_HOLDS.id
BEST_TIME_IN_SEND = patches.BEST_TIME_IN_SEND.id
SETTLE_GIVEN_UP_SENDS = patches.SETTLE_GIVEN_UP_SENDS.id
PATH_KEPT = 200
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=8,
    non_retryable_error_types=[INVALID_REQUEST],
)
LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=20)
CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
    non_retryable_error_types=[INVALID_REQUEST],
)


class Interpreter:
    """One enrollment's state and steps. A runtime subclasses it and supplies the effects
    (the methods under "effects" below); everything else is the journey's behaviour."""

    EFFECTS = (
        "_now",
        "_workflow_id",
        "_activity",
        "_wait_condition",
        "_patched",
        "_shown",
        "_details",
        "_count_sent",
        "_held_out",
    )
    """What a runtime supplies; no runtime overrides any other method (a test checks)."""

    def __init__(self, input: EnrollmentInput, *, now: datetime, run_id: str) -> None:
        """`now`: the moment of entry; `run_id`: the enrollment's first run (its id)."""
        self._input = input
        self._spec = input.journey
        self._steps: dict[str, Step] = {s.id: s for s in input.journey.steps}
        carry = input.carry or Carry(
            enrollment_id=run_id,
            entered_at=now,
            step=input.journey.steps[0].id,
            path=[],
            context={},
            visits={},
            seen=[input.trigger.message_id],
            last_event=None,
            steps_taken=0,
        )
        self._carry = carry
        self._seen = set(carry.seen)
        self._status: Status = "active"
        self._ended_reason: str | None = None
        self._ending: tuple[Status, str] | None = None
        self._waiting: Waiting | None = None
        self._inbox: list[CustomerEvent] = []  # events a wait_for_event may take
        self._controls = Controls()

    # -- effects: what a runtime supplies ---------------------------------------------------

    def _now(self) -> datetime:
        """The runtime's clock (workflow time; virtual time in a simulation)."""
        raise NotImplementedError

    def _workflow_id(self) -> str:
        raise NotImplementedError

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
        """Call one activity of the contract (schemas/activities.py); `ActivityError` when
        it failed for good. `local`: a short lookup the worker runs in the workflow task
        itself (no round trip through the server; its result is still in history)."""
        raise NotImplementedError

    async def _wait_condition(
        self, over: Callable[[], bool], timeout: timedelta, summary: str
    ) -> None:
        """Until `over()` (events arrive meanwhile, through `_on_event`), or TimeoutError."""
        raise NotImplementedError

    def _patched(self, patch: str) -> bool:
        raise NotImplementedError

    def _shown(self, step: Step) -> None:
        """The step was entered: what an operator sees of it (search attributes, details)."""

    def _details(self, text: str) -> None:
        """What the enrollment is doing, in words (the Temporal UI's current details)."""

    def _count_sent(self, step_id: str, channel: str, result: SendResult) -> None:
        """A send's outcome, for metrics."""

    def _held_out(self) -> None:
        """The enrollment joined the journey's holdout: what an operator sees of it."""

    # -- events -----------------------------------------------------------------------------

    def _on_event(self, event: CustomerEvent) -> None:
        """A customer event. Duplicates (same message_id) are ignored."""
        if event.message_id in self._seen:
            return
        self._seen.add(event.message_id)
        self._carry.seen.append(event.message_id)
        del self._carry.seen[:-DEDUP_WINDOW]
        if self._ending or self._status != "active":
            return
        if self._matches(self._spec.goal, event):
            self._ending = ("converted", f"goal {event.name}")
        elif any(self._matches(c, event) for c in self._spec.exit_when):
            self._ending = ("exited", f"exit event {event.name}")
        else:
            self._inbox.append(event)

    # -- steps ------------------------------------------------------------------------------

    async def _take_step(self) -> None:
        """Enter the current step, run it, and move to the one it leads to (or end)."""
        if self._spec.holdout is not None and await self._hold_out(self._spec.holdout):
            return
        step = self._steps[self._carry.step]
        self._enter(step)
        following = await self._execute(step)
        if self._controls.migration is not None and self._controls.cut_wait:
            following = step.id  # the wait was cut short to migrate: map the wait itself
        if self._ending is None and following is None:
            self._ending = ("completed", f"exit step {step.id}")
        elif following is not None:
            self._carry.step = following

    def _enter(self, step: Step) -> None:
        c = self._carry
        c.visits[step.id] = c.visits.get(step.id, 0) + 1
        c.steps_taken += 1
        c.path.append(PathEntry(step=step.id, at=self._now()))
        del c.path[:-PATH_KEPT]
        self._shown(step)

    def _interrupted(self) -> str | None:
        """What ended a wait early, for its path entry: the goal, an exit event or an
        operator's exit (not "timeout", which it was not)."""
        return f"{self._ending[0]}: {self._ending[1]}" if self._ending else None

    def _record(self, outcome: str) -> None:
        self._carry.path[-1].outcome = outcome

    async def _execute(self, step: Step) -> str | None:
        """Run one step; the step it leads to, or None to end. A new step type is a class
        in the `Step` union and a case here (mypy names a missing one)."""
        match step:
            case WaitStep():
                return await self._wait(step)
            case WaitForEventStep():
                return await self._wait_for_event(step)
            case WaitForReactionStep():
                return await self._wait_for_reaction(step)
            case BranchStep():
                return await self._branch(step)
            case SplitStep():
                return await self._split(step)
            case SendStep():
                return await self._send(step)
            case DecideStep():
                return await self._decide(step)
            case UpdateProfileStep():
                return await self._update_profile(step)
            case ActionStep():
                return await self._action(step)
            case ExitStep():
                self._record("exit")
                return None
            case _:
                assert_never(step)

    async def _wait(self, step: WaitStep) -> str:
        now = self._now()
        if step.duration is not None:
            until = now + self._spec.scaled(step.duration)
        else:
            assert step.until_local_time is not None
            target = await self._activity(
                Profiles.next_local_time,
                LocalTimeRequest(
                    customer_id=self._input.customer_id, at=step.until_local_time, after=now
                ),
                timeout=timedelta(seconds=10),
                retry=LOOKUP_RETRY,
                summary=f"{step.id}: customer's local {step.until_local_time.isoformat('minutes')}",
            )
            until = now + self._spec.scaled(target - now)
        await self._until(Waiting(event=None, until=until))
        self._record(self._controls.skipped or self._interrupted() or "waited")
        return step.next

    async def _wait_for_event(self, step: WaitForEventStep) -> str | None:
        condition = EventCondition(event=step.event, where=step.where)
        found = await self._wait_for(condition, step.timeout, f"waiting for {step.event}")
        if found:
            self._record(f"event {step.event}")
            return step.on_event
        return None if self._ending else step.on_timeout

    async def _wait_for_reaction(self, step: WaitForReactionStep) -> str | None:
        """A wait_for_event on the reaction to the send step's last message (by its
        ledger id); a message not sent has none, so its timeout edge is taken at once."""
        sent = self._carry.context.get("steps", {}).get(step.send, {})
        if sent.get("status") != "sent":
            self._record(f"{step.send} not sent")
            return step.on_timeout
        condition = EventCondition(event=step.event, where=_reaction_filter(step, sent))
        what = f"waiting for {step.send}'s message to be {step.reaction}"
        if await self._wait_for(condition, step.timeout, what):
            self._record(step.reaction)
            return step.on_reaction
        return None if self._ending else step.on_timeout

    async def _wait_for(self, condition: EventCondition, timeout: timedelta, what: str) -> bool:
        """Wait up to `timeout` for an event meeting `condition`: whether it came (it is
        then the last event). When it did not, the path says why the wait ended."""
        until = self._now() + self._spec.scaled(timeout)
        self._keep_inbox(starting=True)
        event = await self._until(
            Waiting(event=condition.event, until=until), lambda: self._take(condition), what
        )
        if event is not None:
            self._carry.last_event = event
            return True
        self._record(self._controls.skipped or self._interrupted() or "timeout")
        return False

    async def _until(
        self,
        waiting: Waiting,
        arrived: Callable[[], CustomerEvent | None] = lambda: None,
        what: str | None = None,
    ) -> CustomerEvent | None:
        """Wait durably until `arrived()` finds an event, the enrollment ends, an operator
        cuts the wait short, or `waiting.until`. The event found, if that ended it. `what`
        is what the Temporal UI says it waits for."""
        self._waiting = waiting
        what = what or waiting.reason or "waiting"
        until = local_time(waiting.until, self._input.timezone)
        self._details(f"step {self._carry.step}, {what} until {until}")
        remaining = max(waiting.until - self._now(), timedelta(0))
        controls = self._controls

        def over() -> bool:
            return self._ending is not None or not controls.skip_settled or bool(arrived())

        try:
            await self._wait_condition(over, remaining, f"{self._carry.step}: {what}")
            found = arrived() if self._ending is None and controls.skip_settled else None
        except TimeoutError:
            found = None
        self._waiting = None
        self._controls.wait_ended()  # an operator's skip: the timeout's way
        # (Not in a `finally`: an evicted workflow must not call workflow APIs.)
        self._keep_inbox(starting=False, hold=waiting.reason is not None)
        return found

    def _take(self, condition: EventCondition) -> CustomerEvent | None:
        """The first inbox event a wait_for_event takes (it stays first until the wait
        ends). The events before it can count for neither this wait nor a later one (the
        inbox is cleared when this wait ends), so they go now: a long wait on a busy event
        stream checks each event once, on the workflow task it arrives in."""
        for i, event in enumerate(self._inbox):
            if self._matches(condition, event):
                del self._inbox[:i]
                return event
        self._inbox.clear()
        return None

    def _keep_inbox(self, *, starting: bool, hold: bool = False) -> None:
        """The inbox rule, at a wait's start and end: a wait_for_event takes the events that
        came after the previous wait ended, and those that came during a send's hold (a
        customer who reacts to a message while its send is settling is not missed).
        Histories from before EVENTS_BETWEEN_WAITS cleared it when a wait_for_event began;
        from before EVENTS_DURING_HOLDS, after a hold too. (The order of the `patched`
        calls is the recorded one.)"""
        if starting:
            if not self._patched(EVENTS_BETWEEN_WAITS):
                self._inbox.clear()
            return
        held_send = hold and self._patched(EVENTS_DURING_HOLDS)
        if self._patched(EVENTS_BETWEEN_WAITS) and not held_send:
            self._inbox.clear()

    async def _branch(self, step: BranchStep) -> str:
        wanted = step.profile_fields()
        scope = self._scope(await self._profile(wanted) if wanted else None)
        for i, case in enumerate(step.cases):
            if evaluate(case.when, scope):
                self._record(f"case {i}")
                return case.next
        self._record("default")
        return step.default

    async def _split(self, step: SplitStep) -> str:
        """A fixed split weighs its arms as written; a bandit by the weights one activity
        gives it, recorded in history. Either way the customer's place in [0, 1) is a hash,
        so a replay, a retry or a crash never re-rolls an arm."""
        point = bucket(self._spec.id, step.id, self._input.customer_id)
        if step.mode == "fixed":
            path = choose(step.paths, point)
            outcome = f"path {path.name}"
        else:
            weights = await self._activity(
                Experiments.weights,
                WeightsRequest(
                    journey_id=self._spec.id,
                    version=self._input.version,
                    split_id=step.id,
                    paths=[(p.name, p.weight) for p in step.paths],
                    exploration=step.exploration,
                    min_sample=step.min_sample,
                    windowed=step.window is not None,
                ),
                timeout=timedelta(seconds=10),
                retry=LOOKUP_RETRY,
                summary=f"{step.id}: bandit weights",
                local=True,  # (cached counts, mostly: one marker, no activity task)
            )
            path = step.paths[weighted(weights.weights, point)]
            share = weights.weights[step.paths.index(path)]
            outcome = f"path {path.name} ({weights.basis}, weight {share:.2f})"
        self._carry.context.setdefault("splits", {})[step.id] = path.name
        if step.window is not None:
            self._carry.context.setdefault("exposed_at", {})[step.id] = self._now().isoformat()
        self._record(outcome)
        return path.next

    def _windows(self) -> list[tuple[str, datetime]]:
        """(experiment, when its attribution window ends) for each experiment with a
        window that this enrollment is in: the holdout (from entry), windowed splits (from
        the split)."""
        found = []
        if self._spec.holdout is not None:
            found.append(
                (HOLDOUT, self._carry.entered_at + self._spec.scaled(self._spec.holdout.window))
            )
        exposed = self._carry.context.get("exposed_at", {})
        for step in self._spec.steps:
            if isinstance(step, SplitStep) and step.window is not None and step.id in exposed:
                at = datetime.fromisoformat(exposed[step.id])
                found.append((step.id, at + self._spec.scaled(step.window)))
        return found

    async def _watch_goal(self) -> None:
        """After its exit step, an enrollment in an experiment with an attribution window
        keeps watching for the goal until the window is over (as a held-out customer does),
        so every group has the same time to convert. Nothing else happens meanwhile."""
        if self._ending is None or self._ending[0] != "completed" or self._spec.goal is None:
            return
        windows = self._windows()
        until = max((end for _, end in windows), default=None)
        if until is None or until <= self._now():
            return
        ending, self._ending = self._ending, None
        await self._until(
            Waiting(event=self._spec.goal.event, until=until),
            what="watching for the goal (attribution window)",
        )
        if self._ending is None or self._ending[0] != "converted":
            self._ending = ending

    def _attributed(self) -> list[str]:
        """The experiments whose window this conversion came within (none unless it
        converted)."""
        if self._ending is None or self._ending[0] != "converted":
            return []
        now = self._now()
        return [experiment for experiment, end in self._windows() if now <= end]

    async def _hold_out(self, holdout: Holdout) -> bool:
        """Assign the journey's holdout at entry. A held-out customer gets nothing: they
        stay enrolled for the window (so a goal still converts them), then complete.
        Whether the enrollment was held out (and so takes no step)."""
        splits = self._carry.context.setdefault("splits", {})
        if HOLDOUT not in splits:
            point = bucket(self._spec.id, HOLDOUT, self._input.customer_id)
            splits[HOLDOUT] = "control" if point < holdout.share else "treated"
            if splits[HOLDOUT] == "control":
                self._held_out()
        if splits[HOLDOUT] != "control":
            return False
        until = self._carry.entered_at + self._spec.scaled(holdout.window)
        await self._until(Waiting(event=None, until=until), what="held out: no messages")
        if self._ending is None and self._controls.migration is None:
            self._ending = ("completed", "holdout window over")
        return True

    async def _send(self, step: SendStep) -> str | None:
        """One send, through the guardrails. A deferred send (quiet hours, a cap) waits
        durably on a timer, still ending on goal and exit events, then tries again under
        the same idempotency key."""
        best_within: timedelta | None = None
        if step.send_at == "best_time" and self._patched(BEST_TIME_IN_SEND):
            best_within = step.best_time_within  # the send defers to the hour, if not now
        elif step.send_at == "best_time":
            best = await self._activity(
                Profiles.best_send_time,
                SendTimeRequest(
                    customer_id=self._input.customer_id,
                    at=self._clock(),
                    within=step.best_time_within,
                ),
                timeout=timedelta(seconds=10),
                retry=LOOKUP_RETRY,
                summary=f"{step.id}: best send time",
            )
            await self._until_clock(best, "the customer's usual active hour")
        deadline = self._clock() + step.max_delay + (best_within or timedelta(0))
        variant = self._variant(step)
        queued: SendResult | None = None
        while True:
            result = await self._send_once(
                step,
                deadline,
                abandon=self._ending is not None,
                best_within=best_within,
                variant=variant,
                queued=queued,
            )
            best_within = None  # the best hour is asked once; then only the guardrails hold
            if result.status != "deferred" or self._ending is not None:
                break
            if result.wait is not None:  # queued for a paced slot: real time, not scaled
                queued = result
                turn = Waiting(event=None, until=self._now() + result.wait)
                await self._until(turn, what=f"send queued: {result.reason}")
                continue
            assert result.until is not None
            await self._until_clock(result.until, f"send deferred: {result.reason}")
        self._carry.context.setdefault("steps", {})[step.id] = result.model_dump(
            mode="json", exclude_none=True
        )
        self._record(result.status if not self._ending else f"{result.status}, then ended")
        channel = result.channel or step.channel
        self._count_sent(step.id, channel, result)
        if self._ending is not None:
            return None
        if result.status == "sent":
            return step.next
        if result.status == "suppressed":
            return step.on_suppressed or step.next
        return step.on_failed or step.next

    async def _send_once(
        self,
        step: SendStep,
        deadline: datetime,
        *,
        abandon: bool,
        best_within: timedelta | None = None,
        variant: ContentVariant | None = None,
        queued: SendResult | None = None,
    ) -> SendResult:
        pace = step.pace or self._spec.pace
        request = SendRequest(
            idempotency_key=self._step_key(step.id),
            journey_id=self._spec.id,
            version=self._input.version,
            step_id=step.id,
            customer_id=self._input.customer_id,
            channel=step.channel,
            fallbacks=step.fallbacks,
            template=variant.template if variant else step.template,
            content=variant.content if variant else step.content,
            variant=variant.name if variant else None,
            event=self._input.trigger,
            last_event=self._carry.last_event,
            # Without the earlier sends' outcomes (`steps`): they would make a journey's
            # history grow with the square of its sends; a template that reads them gets
            # them from the ledger.
            context={k: v for k, v in self._carry.context.items() if k != "steps"},
            dry_run=self._input.options.dry_run,
            topic=step.topic,
            priority=self._spec.priority,
            when_capped=step.when_capped,
            at=self._clock(),
            deadline=deadline,
            quiet_hours=self._spec.quiet_hours,
            journey_caps=self._spec.frequency_caps,
            abandon=abandon,
            best_time_within=best_within,
            tracking=self._spec.tracking,
            pace=pace,
            pace_bucket=journey_bucket(self._spec.id, step.id if step.pace else None)
            if pace
            else None,
            slots=queued.slots if queued else {},
            passed=queued.passed if queued else [],
        )
        try:
            return await self._activity(
                Sends.send,
                request,
                timeout=timedelta(seconds=self._input.options.send_timeout),
                retry=SEND_RETRY,
                summary=f"{step.id}: {self._channels(step)}",
            )
        except ActivityError as err:
            return await self._gave_up(step, request.idempotency_key, err)

    async def _gave_up(self, step: SendStep, key: str, err: ActivityError) -> SendResult:
        """The send's activity failed for good. One that settled its own row (a refusal
        retrying cannot mend) is `failed`; otherwise the ledger row is settled now, as
        `unknown` after a timeout (the provider may have taken it) or `failed`, unless the
        last attempt settled it after all: then its outcome."""
        cause = err.cause
        reason = str(cause or err)
        own = isinstance(cause, ApplicationError) and cause.type == INVALID_REQUEST
        if own or not self._patched(SETTLE_GIVEN_UP_SENDS):
            return SendResult(status="failed", reason=reason)
        status: Literal["unknown", "failed"] = (
            "unknown" if isinstance(cause, ActivityTimeout) else "failed"
        )
        result, error = await self._call(
            Sends.give_up,
            GiveUp(idempotency_key=key, status=status, reason=f"gave up: {reason}"[:500]),
            timeout=timedelta(seconds=10),
            retry=LOOKUP_RETRY,
            summary=f"{step.id}: settle the send",
        )
        return result if result is not None else SendResult(status="failed", reason=error)

    def _variant(self, step: SendStep) -> ContentVariant | None:
        """A content experiment's arm for this customer: a stable hash, as a split's, and
        listed as the split's arms are (`send:variant`)."""
        arms = step.arms()
        if not arms:
            return None
        point = bucket(self._spec.id, step.id, self._input.customer_id)
        arm = arms[weighted([a.weight for a in arms], point)]
        self._carry.context.setdefault("splits", {})[step.id] = arm.name
        return arm

    @staticmethod
    def _channels(step: SendStep) -> str:
        """The channel a send uses, as its activity's summary names it: `best_channel`
        names the customer's preference and the fallbacks it may use instead."""
        if step.channel != BEST_CHANNEL:
            return step.channel
        return f"preferred channel, else {', '.join(step.fallbacks)}"

    async def _decide(self, step: DecideStep) -> str:
        """Ask for offers; a failed call counts as no offer (the journey goes on)."""
        scope = self._scope(None)
        request = DecisionRequest(
            customer_id=self._input.customer_id,
            placement=step.placement,
            limit=step.limit,
            ranking=step.ranking,
            event=scope["event"],
            last_event=scope["last_event"],
            context=scope["context"],
            at=self._clock(),
            key=self._step_key(step.id),
            dry_run=self._input.options.dry_run,
        )
        result, error = await self._call(
            Decisions.decide,
            request,
            timeout=timedelta(seconds=30),
            retry=CALL_RETRY,
            summary=f"{step.id}: decide {step.placement}",
        )
        if result is None:
            result = DecisionResult(placement=step.placement, offers=[])
        kept = {**result.for_context(), **({"error": error} if error else {})}
        self._carry.context.setdefault("decisions", {})[step.id] = kept
        self._record(f"{len(kept['offers'])} offer(s)")
        return step.next if kept["offers"] or not step.on_empty else step.on_empty

    async def _update_profile(self, step: UpdateProfileStep) -> str:
        if not self._input.options.dry_run:
            await self._activity(
                Profiles.update_profile,
                ProfileUpdate(
                    customer_id=self._input.customer_id,
                    attributes=step.attributes,
                    lifecycle_stage=step.lifecycle_stage,
                ),
                timeout=timedelta(seconds=10),
                retry=LOOKUP_RETRY,
                summary=f"{step.id}: update profile",
            )
        self._record("updated" if not self._input.options.dry_run else "dry run")
        return step.next

    async def _action(self, step: ActionStep) -> str:
        scope = self._scope(None)
        del scope["profile"], scope["group"]  # (an action's input is what it was before groups)
        request = ActionRequest(
            key=self._step_key(step.id),
            journey_id=self._spec.id,
            step_id=step.id,
            customer_id=self._input.customer_id,
            activity=step.activity,
            http=step.http,
            input=step.input,
            rate_limit=step.rate_limit,
            scope=scope,
        )
        target = step.activity or (step.http.url if step.http else "")
        output, error = await self._call(
            Actions.run,
            request,
            timeout=step.timeout,
            retry=CALL_RETRY,
            summary=f"{step.id}: {target}",
        )
        self._carry.context.setdefault("actions", {})[step.id] = (
            output if error is None else {"error": error}
        )
        self._record("done" if error is None else "failed")
        return step.next if error is None else step.on_failed or step.next

    async def _call(
        self,
        method: Callable[[Any, A], Awaitable[T]],
        arg: A,
        *,
        timeout: timedelta,
        retry: RetryPolicy,
        summary: str,
    ) -> tuple[T | None, str | None]:
        """One activity: (its result, None), or (None, why it failed for good)."""
        try:
            result = await self._activity(
                method,
                arg,
                timeout=timeout,
                retry=retry,
                summary=summary,
            )
        except ActivityError as err:
            return None, str(err.cause or err)
        return result, None

    def _step_key(self, step_id: str) -> str:
        """Idempotency key of this visit to a step: stable across retries and replays."""
        visit = self._carry.visits[step_id]
        return f"{self._workflow_id()}/{self._carry.enrollment_id}/{step_id}/{visit}"

    def _clock(self) -> datetime:
        """The enrollment's clock: workflow time, sped up by `time_scale` in test mode, so
        guardrails judge a test-mode journey at the moment it has reached."""
        entered = self._carry.entered_at
        return entered + (self._now() - entered) * self._spec.time_scale

    async def _until_clock(self, moment: datetime, reason: str) -> None:
        """Wait until the enrollment's clock reads `moment` (or the enrollment ends)."""
        remaining = (moment - self._clock()) / self._spec.time_scale
        if remaining <= timedelta(0):
            return
        await self._until(Waiting(until=self._now() + remaining, reason=reason))

    async def _profile(self, wanted: list[str]) -> dict[str, Any]:
        """The profile fields `wanted` (a branch's predicates read them), nothing more."""
        profile = await self._activity(
            Profiles.get_profile,
            ProfileRequest(customer_id=self._input.customer_id, fields=wanted),
            timeout=timedelta(seconds=10),
            retry=LOOKUP_RETRY,
            summary=f"{self._carry.step}: profile",
        )
        return profile

    def _scope(self, fetched: dict[str, Any] | None) -> dict[str, Any]:
        """What predicates read; `fetched` is `_profile`'s answer (its `group`, the
        traits of the customer's group, is a root of its own)."""
        last = self._carry.last_event
        profile = dict(fetched or {})
        return {
            "profile": profile,
            "group": profile.pop("group", None) or {},
            "event": self._input.trigger.scope(),
            "last_event": last.scope() if last else None,
            "context": self._carry.context,
        }

    def _matches(self, condition: EventCondition | None, event: CustomerEvent) -> bool:
        if condition is None or condition.event != event.name:
            return False
        return evaluate(condition.where, {"event": event.scope()})


def _reaction_filter(step: WaitForReactionStep, sent: dict[str, Any]) -> Predicate:
    """Which reaction events a reaction wait takes: of that message (a simulated send has
    no ledger id, and so no reaction: the backtest's declared assumption), a human's
    unless machines count, of the one link if it names one."""
    delivery_id = sent.get("delivery_id")
    wanted: list[Predicate] = [
        Comparison(
            field="event.delivery_id", op="eq", value=-1 if delivery_id is None else delivery_id
        )
    ]
    if not step.count_machine:
        wanted.append(Comparison(field="event.machine", op="ne", value=True))
    if step.link is not None:
        wanted.append(Comparison(field="event.link", op="eq", value=step.link))
    return AllOf(all=wanted)
