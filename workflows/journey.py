"""`JourneyWorkflow`: one generic interpreter of `JourneySpec`, one run per enrollment.

The enrollment runs the spec version it was started with (it is in its own input), so
publishing a new version never changes a running enrollment's history. Goal and exit events
end it from any step; continue-as-new carries its position when the server suggests it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, assert_never

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from journeys.schemas.activities import (
        INVALID_REQUEST,
        ActionRequest,
        Actions,
        Decisions,
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
        ENDED,
        Carry,
        ControlRequest,
        EnrollmentInput,
        EnrollmentState,
        MigrateRequest,
        MigrationPlan,
        PathEntry,
        Status,
        Waiting,
    )
    from journeys.schemas.events import CustomerEvent
    from journeys.schemas.journey import (
        BEST_CHANNEL,
        ActionStep,
        BranchStep,
        DecideStep,
        EventCondition,
        ExitStep,
        SendStep,
        SplitStep,
        Step,
        UpdateProfileStep,
        WaitForEventStep,
        WaitStep,
    )
    from journeys.schemas.predicates import evaluate
    from journeys.workflows import metrics, patches
    from journeys.workflows import search_attributes as sa
    from journeys.workflows.clock import local_time
    from journeys.workflows.controls import Controls
    from journeys.workflows.split import bucket, choose

T = TypeVar("T")
A = TypeVar("A")
DEDUP_WINDOW = 1000
EVENTS_BETWEEN_WAITS = patches.EVENTS_BETWEEN_WAITS.id
EVENTS_DURING_HOLDS = patches.EVENTS_DURING_HOLDS.id
BEST_TIME_IN_SEND = patches.BEST_TIME_IN_SEND.id
ONE_FINAL_UPSERT = patches.ONE_FINAL_UPSERT.id
ONE_UPSERT_PER_TASK = patches.ONE_UPSERT_PER_TASK.id
# A run whose input names this set (`EnrollmentInput.patch_set`: its starter's code takes
# it) takes every patch of it without any marker; a run whose starter predates the field
# records this one marker at its start instead, and takes them too. Each marker costs an
# enrollment a history event and an upsert of `TemporalChangeVersion` (Temporal's core adds
# one to every patch marker). A run started before the set records each patch's marker
# where it first applies, as before. The members are spelled out and never change: a run
# that took the set before a later patch existed took that patch's old branch, so a patch
# added later is not in the set (it is asked for on its own), and a later set is a new id.
PATCH_SET = "patch-set-1"
PATCH_SET_MEMBERS = (
    EVENTS_BETWEEN_WAITS,
    EVENTS_DURING_HOLDS,
    BEST_TIME_IN_SEND,
    ONE_FINAL_UPSERT,
    ONE_UPSERT_PER_TASK,
)
PATCHES = tuple(p.id for p in patches.PATCHES)
"""Every patch still in the code (`workflows.patches`: when each went in, the policy)."""
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


@workflow.defn(name="Journey")
class JourneyWorkflow:
    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        self._input = input
        self._spec = input.journey
        self._patch_set = False
        self._steps: dict[str, Step] = {s.id: s for s in input.journey.steps}
        carry = input.carry or Carry(
            enrollment_id=workflow.info().first_execution_run_id,
            entered_at=workflow.now(),
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
        self._passed: list[str] = []  # instant steps entered since the last step upsert

    # -- handlers -------------------------------------------------------------------------

    @workflow.signal(
        name="event",
        description="A customer event (entry, wait, goal, exit); a repeated message_id is ignored.",
    )
    def event(self, event: CustomerEvent) -> None:
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

    @workflow.query(
        name="state",
        description="Where it is: status, step, what it waits for and until when, its path.",
    )
    def state(self) -> EnrollmentState:
        c = self._carry
        return EnrollmentState(
            journey_id=self._spec.id,
            version=self._input.version,
            customer_id=self._input.customer_id,
            status=self._status,
            step=None if self._status in ENDED else c.step,
            waiting=self._waiting,
            entered_at=c.entered_at,
            ended_reason=self._ended_reason,
            paused=c.paused,
            path=c.path,
            context=c.context,
            steps_taken=c.steps_taken,
        )

    @workflow.update(
        name="exit",
        description="End the enrollment now (after a send in flight); reason required.",
    )
    async def exit(self, request: ControlRequest) -> EnrollmentState:
        """Operator exit: ends the enrollment after any send in flight completes."""
        why = "operator" if request.reason == "operator" else f"operator: {request.reason}"
        self._ending = ("exited", why)
        await workflow.wait_condition(lambda: self._status != "active")
        return self.state()

    @exit.validator
    def _validate_exit(self, request: ControlRequest) -> None:
        self._require_active()

    @workflow.update(
        name="pause",
        description="Hold the enrollment before its next step until resume; reason required.",
    )
    def pause(self, request: ControlRequest) -> EnrollmentState:
        """Hold the enrollment before its next step (a wait under way still runs out, and
        goal and exit events still end it) until `resume`."""
        return self._set_paused(True, request)

    @pause.validator
    def _validate_pause(self, request: ControlRequest) -> None:
        self._require_active()
        if self._carry.paused:
            raise ValueError("enrollment already paused")

    @workflow.update(
        name="resume",
        description="Go on after a pause.",
    )
    def resume(self, request: ControlRequest) -> EnrollmentState:
        return self._set_paused(False, request)

    @resume.validator
    def _validate_resume(self, request: ControlRequest) -> None:
        self._require_active()
        if not self._carry.paused:
            raise ValueError("enrollment is not paused")

    @workflow.update(
        name="skip",
        description="End the current wait now, as if it timed out.",
    )
    async def skip(self, request: ControlRequest) -> EnrollmentState:
        """End the current wait now, as if it had timed out (a `wait_for_event` takes its
        `on_timeout` edge); answers once the enrollment has moved on."""
        controls = self._controls
        controls.skip(f"skipped by an operator: {request.reason}")
        await workflow.wait_condition(lambda: controls.skip_settled)
        return self.state()

    @skip.validator
    def _validate_skip(self, request: ControlRequest) -> None:
        self._require_active()
        if self._waiting is None or self._waiting.reason is not None:
            raise ValueError("enrollment is not at a wait step (a send's hold cannot be skipped)")

    @workflow.query(
        name="plan_migration",
        description="Dry run of migrate: what moving to a newer version would do.",
    )
    def plan_migration(self, request: MigrateRequest) -> MigrationPlan:
        """The dry run of `migrate`: what it would do now, or why it would be refused."""
        self._validate_migrate(request)
        return self._plan(request, self._carry.step)

    @workflow.update(
        name="migrate",
        description="Move to a newer journey version at the mapped step (continues as new).",
    )
    async def migrate(self, request: MigrateRequest) -> MigrationPlan:
        """Move to a newer version at the mapped step: a wait under way ends now and its
        counterpart starts anew; a step in flight finishes first and the step it leads to
        is mapped. Continues as new on the new version; answers once it is done."""
        controls = self._controls
        plan = self._plan(request, self._carry.step)
        controls.migrate(request, plan, waiting=self._waiting is not None)
        await workflow.wait_condition(lambda: controls.outcome is not None)
        if isinstance(controls.outcome, str):
            raise ApplicationError(controls.outcome, type="MigrationRefused")
        assert controls.outcome is not None
        return controls.outcome

    @migrate.validator
    def _validate_migrate(self, request: MigrateRequest) -> None:
        self._require_active()
        if self._controls.migration is not None:
            raise ValueError("enrollment is already migrating")
        if request.journey.id != self._spec.id:
            raise ValueError(
                f"enrollment runs journey '{self._spec.id}', not '{request.journey.id}'"
            )
        if request.version <= self._input.version:
            raise ValueError(f"enrollment runs v{self._input.version}: migrate to a newer version")
        if self._waiting is not None and self._waiting.reason is not None:
            raise ValueError(
                f"enrollment is holding a send ({self._waiting.reason}); migrate after it"
            )
        self._plan(request, self._carry.step)

    def _plan(self, request: MigrateRequest, step: str) -> MigrationPlan:
        """Where `step` lands in the new version; ValueError when it has no counterpart."""
        target = request.mapping.get(step, step)
        ids = [s.id for s in request.journey.steps]
        if target not in ids:
            raise ValueError(
                f"step '{step}' has no counterpart in v{request.version}: map it to one of "
                + ", ".join(ids)
            )
        to = f"'{target}' of v{request.version}"
        if self._waiting is not None:
            effect = f"the wait at '{step}' ends now; the enrollment enters {to} anew"
        elif self._carry.paused:
            effect = f"paused before '{step}'; it stays paused, before {to}"
        else:
            effect = (
                f"step '{step}' is running: once it is done, the step it leads to maps into "
                f"v{request.version} the same way"
            )
        return MigrationPlan(
            customer_id=self._input.customer_id,
            from_version=self._input.version,
            to_version=request.version,
            from_step=step,
            to_step=target,
            effect=effect,
        )

    def _require_active(self) -> None:
        if self._status != "active" or self._ending:
            raise ValueError(
                f"enrollment already {self._ending[0] if self._ending else self._status}"
            )

    def _set_paused(self, paused: bool, request: ControlRequest) -> EnrollmentState:
        self._carry.paused = paused
        status, done = ("paused", "paused") if paused else ("active", "resumed")
        workflow.upsert_search_attributes([sa.JOURNEY_STATUS.value_set(status)])
        workflow.set_current_details(
            f"step {self._carry.step}: {done} by an operator: {request.reason}"
        )
        return self.state()

    # -- the interpreter ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentState:
        self._patch_set = _takes_patch_set(input)  # before any step: see PATCH_SET
        if input.carry is None:
            metrics.enrolled(self._spec.id, input.version)
        while self._ending is None:
            if workflow.info().is_continue_as_new_suggested():
                self._show_passed()
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._input.model_copy(update={"carry": self._carry}))
            if self._controls.migration is not None:
                await self._carry_out_migration(self._controls.migration)
                continue
            if self._carry.paused:
                self._show_passed()
                await workflow.wait_condition(
                    lambda: (
                        not self._carry.paused
                        or self._ending is not None
                        or self._controls.migration is not None
                    )
                )
                continue
            step = self._steps[self._carry.step]
            self._enter(step)
            following = await self._execute(step)
            if self._controls.migration is not None and self._controls.cut_wait:
                following = step.id  # the wait was cut short to migrate: map the wait itself
            if self._ending is None and following is None:
                self._ending = ("completed", f"exit step {step.id}")
            elif following is not None:
                self._carry.step = following
        self._status, self._ended_reason = self._ending
        self._waiting = None
        self._controls.ended(self._status)
        metrics.ended(self._spec.id, self._input.version, self._status)
        shown = workflow.info().typed_search_attributes.get(sa.JOURNEY_STATUS)
        updates = self._step_updates(None)
        if shown != self._status:  # (the exit step's upsert may have said it already)
            updates.append(sa.JOURNEY_STATUS.value_set(self._status))
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(f"{self._status}: {self._ended_reason}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _carry_out_migration(self, request: MigrateRequest) -> None:
        """Continue as new on the new version at the mapped step, keeping the enrollment's
        id, path, context and visits; or refuse, when the step has no counterpart."""
        try:
            plan = self._plan(request, self._carry.step)
        except ValueError as err:
            self._controls.refused(str(err))
            return
        plan = self._controls.carried_out(plan)
        self._carry.step = plan.to_step
        self._carry.path.append(
            PathEntry(
                step=plan.from_step,
                at=workflow.now(),
                outcome=f"migrated to v{plan.to_version} at {plan.to_step}: {request.reason}",
            )
        )
        workflow.upsert_search_attributes(
            [
                sa.JOURNEY_VERSION.value_set(plan.to_version),
                sa.JOURNEY_STEP.value_set(plan.to_step),
                sa.JOURNEY_REACHED.value_set([plan.to_step]),
            ]
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            self._input.model_copy(
                update={
                    "journey": request.journey,
                    "version": plan.to_version,
                    "carry": self._carry,
                }
            )
        )

    def _enter(self, step: Step) -> None:
        c = self._carry
        c.visits[step.id] = c.visits.get(step.id, 0) + 1
        c.steps_taken += 1
        c.path.append(PathEntry(step=step.id, at=workflow.now()))
        del c.path[:-PATH_KEPT]
        workflow.set_current_details(f"step {step.id} ({step.type})")
        metrics.stepped(self._spec.id, step.id, step.type)
        # An instant step (no timer, no activity) leaves its upsert to the next step's, in
        # the same workflow task: one upsert per task. Its name rides on the reached list.
        if step.instant() and self._patched(ONE_UPSERT_PER_TASK):
            self._passed.append(step.id)
            return
        updates = self._step_updates(step.id)
        # An exit step is the last step: its upsert says the status too, so the final
        # workflow task writes visibility once.
        if isinstance(step, ExitStep) and self._patched(ONE_FINAL_UPSERT):
            updates.append(sa.JOURNEY_STATUS.value_set("completed"))
        if updates:
            workflow.upsert_search_attributes(updates)

    def _step_updates(self, step_id: str | None) -> list[SearchAttributeUpdate[Any]]:
        """The upserts that show `step_id` (None: the last instant step passed) as the
        current step, with the steps passed since the last upsert on the reached list.
        The start (and a continue-as-new) already carries the step; re-writing an unchanged
        value would cost a history event and a visibility write. A start leaves the list
        out (a list costs the dev server ~15% of its start rate): the first step change
        writes the step it leaves too."""
        passed, self._passed = self._passed, []
        step_id = step_id or (passed[-1] if passed else None)
        current = workflow.info().typed_search_attributes
        at = current.get(sa.JOURNEY_STEP)
        if step_id is None or (at == step_id and not passed):
            return []
        reached = list(current.get(sa.JOURNEY_REACHED) or [])
        arms = [sa.arm(s, p) for s, p in self._carry.context.get("splits", {}).items()]
        left = [at] if at and not reached else []
        new = [r for r in dict.fromkeys([*left, *passed, step_id, *arms]) if r not in reached]
        updates: list[SearchAttributeUpdate[Any]] = []
        if at != step_id:  # (a loop back through instant steps only adds to the list)
            updates.append(sa.JOURNEY_STEP.value_set(step_id))
        listed = sa.reached(reached, new)
        if listed is not None:
            updates.append(sa.JOURNEY_REACHED.value_set(listed))
        return updates

    def _show_passed(self) -> None:
        """Upsert the instant steps passed before the workflow waits on something other
        than a step (a pause) or continues as new."""
        if updates := self._step_updates(None):
            workflow.upsert_search_attributes(updates)

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
            case BranchStep():
                return await self._branch(step)
            case SplitStep():
                return self._split(step)
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
        now = workflow.now()
        if step.duration is not None:
            until = now + self._spec.scaled(step.duration)
        else:
            assert step.until_local_time is not None
            target = await workflow.execute_activity_method(
                Profiles.next_local_time,
                LocalTimeRequest(
                    customer_id=self._input.customer_id, at=step.until_local_time, after=now
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
                summary=f"{step.id}: customer's local {step.until_local_time.isoformat('minutes')}",
            )
            until = now + self._spec.scaled(target - now)
        await self._until(Waiting(event=None, until=until))
        self._record(self._controls.skipped or self._interrupted() or "waited")
        return step.next

    async def _wait_for_event(self, step: WaitForEventStep) -> str | None:
        until = workflow.now() + self._spec.scaled(step.timeout)
        self._keep_inbox(starting=True)
        condition = EventCondition(event=step.event, where=step.where)
        event = await self._until(
            Waiting(event=step.event, until=until), lambda: self._take(condition)
        )
        if event is not None:
            self._carry.last_event = event
            self._record(f"event {step.event}")
            return step.on_event
        self._record(self._controls.skipped or self._interrupted() or "timeout")
        return None if self._ending else step.on_timeout

    async def _until(
        self, waiting: Waiting, arrived: Callable[[], CustomerEvent | None] = lambda: None
    ) -> CustomerEvent | None:
        """Wait durably until `arrived()` finds an event, the enrollment ends, an operator
        cuts the wait short, or `waiting.until`. The event found, if that ended it."""
        self._waiting = waiting
        what = f"waiting for {waiting.event}" if waiting.event else (waiting.reason or "waiting")
        until = local_time(waiting.until, self._input.timezone)
        workflow.set_current_details(f"step {self._carry.step}, {what} until {until}")
        remaining = max(waiting.until - workflow.now(), timedelta(0))
        controls = self._controls

        def over() -> bool:
            return self._ending is not None or not controls.skip_settled or bool(arrived())

        try:
            await workflow.wait_condition(
                over, timeout=remaining, timeout_summary=f"{self._carry.step}: {what}"
            )
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

    def _split(self, step: SplitStep) -> str:
        path = choose(step.paths, bucket(self._spec.id, step.id, self._input.customer_id))
        self._carry.context.setdefault("splits", {})[step.id] = path.name
        self._record(f"path {path.name}")
        return path.next

    async def _send(self, step: SendStep) -> str | None:
        """One send, through the guardrails. A deferred send (quiet hours, a cap) waits
        durably on a timer, still ending on goal and exit events, then tries again under
        the same idempotency key."""
        best_within: timedelta | None = None
        if step.send_at == "best_time" and self._patched(BEST_TIME_IN_SEND):
            best_within = step.best_time_within  # the send defers to the hour, if not now
        elif step.send_at == "best_time":
            best = await workflow.execute_activity_method(
                Profiles.best_send_time,
                SendTimeRequest(
                    customer_id=self._input.customer_id,
                    at=self._clock(),
                    within=step.best_time_within,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
                summary=f"{step.id}: best send time",
            )
            await self._until_clock(best, "the customer's usual active hour")
        deadline = self._clock() + step.max_delay + (best_within or timedelta(0))
        while True:
            result = await self._send_once(
                step, deadline, abandon=self._ending is not None, best_within=best_within
            )
            best_within = None  # the best hour is asked once; then only the guardrails hold
            if result.status != "deferred" or self._ending is not None:
                break
            assert result.until is not None
            await self._until_clock(result.until, f"send deferred: {result.reason}")
        self._carry.context.setdefault("steps", {})[step.id] = result.model_dump(
            mode="json", exclude_none=True
        )
        self._record(result.status if not self._ending else f"{result.status}, then ended")
        channel = result.channel or step.channel
        metrics.sent(self._spec.id, step.id, channel, result.status, result.reason)
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
    ) -> SendResult:
        request = SendRequest(
            idempotency_key=self._step_key(step.id),
            journey_id=self._spec.id,
            version=self._input.version,
            step_id=step.id,
            customer_id=self._input.customer_id,
            channel=step.channel,
            fallbacks=step.fallbacks,
            template=step.template,
            content=step.content,
            event=self._input.trigger,
            last_event=self._carry.last_event,
            context=self._carry.context,
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
        )
        result, error = await self._call(
            Sends.send,
            request,
            timeout=timedelta(seconds=self._input.options.send_timeout),
            retry=SEND_RETRY,
            summary=f"{step.id}: {self._channels(step)}",
        )
        return result if result is not None else SendResult(status="failed", reason=error)

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
            await workflow.execute_activity_method(
                Profiles.update_profile,
                ProfileUpdate(
                    customer_id=self._input.customer_id,
                    attributes=step.attributes,
                    lifecycle_stage=step.lifecycle_stage,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
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
            result = await workflow.execute_activity_method(
                method,
                arg,
                start_to_close_timeout=timeout,
                retry_policy=retry,
                summary=summary,
            )
        except ActivityError as err:
            return None, str(err.cause or err)
        return result, None

    def _step_key(self, step_id: str) -> str:
        """Idempotency key of this visit to a step: stable across retries and replays."""
        info = workflow.info()
        visit = self._carry.visits[step_id]
        return f"{info.workflow_id}/{self._carry.enrollment_id}/{step_id}/{visit}"

    def _clock(self) -> datetime:
        """The enrollment's clock: workflow time, sped up by `time_scale` in test mode, so
        guardrails judge a test-mode journey at the moment it has reached."""
        entered = self._carry.entered_at
        return entered + (workflow.now() - entered) * self._spec.time_scale

    async def _until_clock(self, moment: datetime, reason: str) -> None:
        """Wait until the enrollment's clock reads `moment` (or the enrollment ends)."""
        remaining = (moment - self._clock()) / self._spec.time_scale
        if remaining <= timedelta(0):
            return
        await self._until(Waiting(until=workflow.now() + remaining, reason=reason))

    # -- helpers --------------------------------------------------------------------------

    def _patched(self, patch: str) -> bool:
        """`workflow.patched`, save for a run that took `PATCH_SET` at its start."""
        return (self._patch_set and patch in PATCH_SET_MEMBERS) or workflow.patched(patch)

    async def _profile(self, wanted: list[str]) -> dict[str, Any]:
        """The profile fields `wanted` (a branch's predicates read them), nothing more."""
        profile = await workflow.execute_activity_method(
            Profiles.get_profile,
            ProfileRequest(customer_id=self._input.customer_id, fields=wanted),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LOOKUP_RETRY,
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


class UnknownPatchSet(RuntimeError):
    """The run's starter takes a patch set this worker's code does not have (a rolling
    deploy: a newer API than worker). Not an ApplicationError, so it fails the workflow
    task, not the enrollment: the task is retried until a worker that has the set takes it,
    as a newer worker's patch marker is on an older one."""


def _takes_patch_set(input: EnrollmentInput) -> bool:
    """Whether the run takes `PATCH_SET`: its input says so (no marker), or else it asks
    `workflow.patched`, which records the set's marker on a new run and is False when
    replaying a run started before the set."""
    if input.patch_set is None:
        return workflow.patched(PATCH_SET)
    if input.patch_set != PATCH_SET:
        raise UnknownPatchSet(f"patch set {input.patch_set!r} is not in this worker's code")
    if workflow.unsafe.is_replaying():
        # A worker from before `patch_set` ran this run's first task (it ignores the field)
        # and recorded the set's marker: a replay must meet it, or it is nondeterministic.
        # Without the marker, replaying, `patched` is False and records nothing.
        workflow.patched(PATCH_SET)
    return True
