"""One customer's enrollment in one journey: its live state, and operator controls
(exit, pause, resume, skip the current wait) as validated workflow updates."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from journeys.api.commands import enrollment_of, not_found, send
from journeys.api.deps import ClientDep, CustomerId, JourneyId
from journeys.api.errors import problem
from journeys.schemas.access import requires
from journeys.schemas.base import Schema
from journeys.schemas.enrollment import Control, ControlRequest, EnrollmentState
from journeys.schemas.journey import SLUG
from journeys.usecases.controls import control, for_each, running
from journeys.workflows.search_attributes import JOURNEY_VERSION

T = TypeVar("T", bound=BaseModel)
ENDED_OUTSIDE = frozenset(
    {
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.CANCELED,
    }
)
"""How a run ends when something outside the journey ended it (the UI, a timeout)."""
router = APIRouter(prefix="/v1/journeys/{journey_id}/enrollments", tags=["enrollments"])


@router.get("/{customer_id}")
@requires("read")
async def get_enrollment(
    journey_id: JourneyId, customer_id: CustomerId, client: ClientDep
) -> EnrollmentState:
    """Status, version, current step, what it waits for and until when, the path so far."""
    enrollment = enrollment_of(client, journey_id, customer_id)
    try:
        try:
            state = await enrollment.state()
        except RPCError as err:  # ended before its first workflow task: nothing to query
            if err.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            return await _never_ran(enrollment.handle, journey_id, customer_id)
        if state.status == "active":  # unless the run was ended in Temporal itself
            described = await enrollment.handle.describe()
            if described.status in ENDED_OUTSIDE:
                how = described.status.name.lower().replace("_", " ")
                ended = {"status": "stopped", "waiting": None, "ended_reason": f"{how} in Temporal"}
                state = state.model_copy(update=ended)
            elif described.status != WorkflowExecutionStatus.RUNNING:  # it ended meanwhile
                state = await enrollment.state()
        return state
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found(journey_id, customer_id) from err
        raise
    except WorkflowQueryFailedError as err:
        raise problem(409, f"enrollment cannot be read: {err}") from err


async def _never_ran(
    handle: WorkflowHandle[Any, Any], journey_id: str, customer_id: str
) -> EnrollmentState:
    """The state of a run ended in Temporal before it took a step, from its description."""
    described = await handle.describe()
    how = described.status.name.lower().replace("_", " ") if described.status else "ended"
    attributes = described.typed_search_attributes
    return EnrollmentState(
        journey_id=journey_id,
        version=attributes.get(JOURNEY_VERSION) or 0,
        customer_id=customer_id,
        status="stopped",
        step=None,
        waiting=None,
        entered_at=described.start_time,
        ended_reason=f"{how} in Temporal",
        path=[],
        context={},
    )


def _one(action: Control, doc: str) -> Any:
    @requires("operate")
    async def endpoint(
        journey_id: JourneyId,
        customer_id: CustomerId,
        client: ClientDep,
        body: ControlRequest | None = None,
    ) -> EnrollmentState:
        return await send(
            client, journey_id, customer_id, control(action, body or ControlRequest())
        )

    endpoint.__name__ = f"{action}_enrollment"
    endpoint.__doc__ = doc
    return endpoint


CONTROLS: dict[Control, str] = {
    "exit": "End the enrollment now (after any send in flight).",
    "pause": "Hold the enrollment before its next step until it is resumed; goal and exit "
    "events still end it.",
    "resume": "Let a paused enrollment go on.",
    "skip": "End the current wait now, as if it had timed out.",
}
for _action, _doc in CONTROLS.items():
    router.add_api_route(
        f"/{{customer_id}}/{_action}", _one(_action, _doc), methods=["POST"], name=_action
    )


class BulkControl(ControlRequest):
    step: str | None = Field(default=None, pattern=SLUG)
    """Only enrollments at this step (as `JourneyStep` shows it)."""


class BulkResult(Schema):
    matched: int
    """Enrollments the selection found."""
    done: int
    """Enrollments that took the control."""
    refused: dict[str, int]
    """Why the others refused (e.g. "enrollment is not paused"), and how many."""


bulk = APIRouter(prefix="/v1/journeys/{journey_id}/controls", tags=["enrollments"])


@bulk.post("/{action}")
@requires("operate")
async def control_all(
    journey_id: JourneyId, action: Control, client: ClientDep, body: BulkControl | None = None
) -> BulkResult:
    """One control for every running enrollment of the journey (at `step`, if given), 20
    at a time; each is validated by its own enrollment."""
    body = body or BulkControl()
    command = control(action, ControlRequest(reason=body.reason))
    done, refused = await for_each(client, running(journey_id, body.step), command)
    return BulkResult(matched=len(done) + refused.total(), done=len(done), refused=refused)
