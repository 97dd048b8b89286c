"""`JourneyWorkflow`: one generic interpreter of `JourneySpec`, one run per enrollment: the
step engine (workflows/engine.py) on Temporal, with the operator's controls.

The enrollment runs the spec version it was started with (it is in its own input), so
publishing a new version never changes a running enrollment's history. Goal and exit events
end it from any step; continue-as-new carries its position when the server suggests it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from journeys.schemas.delivery import SendResult
    from journeys.schemas.enrollment import (
        ENDED,
        ControlRequest,
        EnrollmentInput,
        EnrollmentState,
        MigrateRequest,
        MigrationPlan,
        PathEntry,
    )
    from journeys.schemas.events import CustomerEvent
    from journeys.schemas.journey import HOLDOUT, ExitStep, Step
    from journeys.workflows import metrics, patches
    from journeys.workflows import search_attributes as sa
    from journeys.workflows.engine import (
        BEST_TIME_IN_SEND,
        EVENTS_BETWEEN_WAITS,
        EVENTS_DURING_HOLDS,
        Interpreter,
    )

T = TypeVar("T")
A = TypeVar("A")
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


@workflow.defn(name="Journey")
class JourneyWorkflow(Interpreter):
    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        info = workflow.info()
        super().__init__(input, now=workflow.now(), run_id=info.first_execution_run_id)
        self._patch_set = False
        self._passed: list[str] = []  # instant steps entered since the last step upsert

    # -- handlers -------------------------------------------------------------------------

    @workflow.signal(
        name="event",
        description="A customer event (entry, wait, goal, exit); a repeated message_id is ignored.",
    )
    def event(self, event: CustomerEvent) -> None:
        """A customer event. Duplicates (same message_id) are ignored."""
        self._on_event(event)

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
            await self._take_step()
        await self._watch_goal()
        self._status, self._ended_reason = self._ending
        self._waiting = None
        self._controls.ended(self._status)
        metrics.ended(self._spec.id, self._input.version, self._status)
        shown = workflow.info().typed_search_attributes.get(sa.JOURNEY_STATUS)
        updates = self._step_updates(None, also=[sa.attributed(e) for e in self._attributed()])
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

    # -- effects (engine.Interpreter): Temporal's ---------------------------------------------

    def _now(self) -> datetime:
        return workflow.now()

    def _workflow_id(self) -> str:
        return workflow.info().workflow_id

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
        if local:
            return await workflow.execute_local_activity_method(
                method, arg, start_to_close_timeout=timeout, retry_policy=retry, summary=summary
            )
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=timeout, retry_policy=retry, summary=summary
        )

    async def _wait_condition(
        self, over: Callable[[], bool], timeout: timedelta, summary: str
    ) -> None:
        await workflow.wait_condition(over, timeout=timeout, timeout_summary=summary)

    def _details(self, text: str) -> None:
        workflow.set_current_details(text)

    def _count_sent(self, step_id: str, channel: str, result: SendResult) -> None:
        metrics.sent(self._spec.id, step_id, channel, result.status, result.reason)

    def _patched(self, patch: str) -> bool:
        """`workflow.patched`, save for a run that took `PATCH_SET` at its start."""
        return (self._patch_set and patch in PATCH_SET_MEMBERS) or workflow.patched(patch)

    def _shown(self, step: Step) -> None:
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

    def _held_out(self) -> None:
        """A held-out enrollment is at no step: it shows `holdout` as its step, and the
        funnel counts it by `holdout:control`, not at the first step."""
        self._passed = []
        workflow.upsert_search_attributes(
            [
                sa.JOURNEY_STEP.value_set(HOLDOUT),
                sa.JOURNEY_REACHED.value_set([sa.arm(HOLDOUT, "control")]),
            ]
        )
        workflow.set_current_details("held out: no messages until the window ends")

    def _step_updates(
        self, step_id: str | None, also: list[str] | None = None
    ) -> list[SearchAttributeUpdate[Any]]:
        """The upserts that show `step_id` (None: the last instant step passed) as the
        current step, with the steps passed since the last upsert on the reached list.
        The start (and a continue-as-new) already carries the step; re-writing an unchanged
        value would cost a history event and a visibility write. A start leaves the list
        out (a list costs the dev server ~15% of its start rate): the first step change
        writes the step it leaves too."""
        passed, self._passed = self._passed, []
        current = workflow.info().typed_search_attributes
        at = current.get(sa.JOURNEY_STEP)
        step_id = step_id or (passed[-1] if passed else None) or (at if also else None)
        reached = list(current.get(sa.JOURNEY_REACHED) or [])
        arms = [sa.arm(s, p) for s, p in self._carry.context.get("splits", {}).items()]
        arms += also or []  # (conversions within an experiment's window, at the end)
        # (A holdout's treated group is listed at its first step, so it is counted from
        # the start; with no new arm, an unchanged step writes nothing.)
        if step_id is None or (at == step_id and not passed and set(arms) <= set(reached)):
            return []
        left = [at] if at and not reached else []
        listing = dict.fromkeys([*left, *passed, step_id, *arms])
        new = [r for r in listing if r not in reached and r != HOLDOUT]  # (no step's name)
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
