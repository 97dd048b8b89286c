"""One customer's enrollment in one journey: its live state, and operator exit."""

from __future__ import annotations

from fastapi import APIRouter
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep
from api.errors import problem
from schemas.enrollment import EnrollmentState, ExitRequest, enrollment_workflow_id

router = APIRouter(prefix="/v1/journeys/{journey_id}/enrollments", tags=["enrollments"])


def _handle(client: ClientDep, journey_id: str, customer_id: str) -> WorkflowHandle:
    return client.get_workflow_handle(enrollment_workflow_id(journey_id, customer_id))


def _not_found(journey_id: str, customer_id: str) -> Exception:
    return problem(
        404,
        f"customer '{customer_id}' has no enrollment in journey '{journey_id}'",
        "path",
        "customer_id",
    )


@router.get("/{customer_id}")
async def get_enrollment(journey_id: str, customer_id: str, client: ClientDep) -> EnrollmentState:
    """Status, version, current step, what it waits for and until when, the path so far."""
    try:
        return await _handle(client, journey_id, customer_id).query(
            "state", result_type=EnrollmentState
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _not_found(journey_id, customer_id) from err
        raise
    except WorkflowQueryFailedError as err:
        raise problem(409, f"enrollment cannot be read: {err}") from err


@router.post("/{customer_id}/exit")
async def exit_enrollment(
    journey_id: str, customer_id: str, client: ClientDep, body: ExitRequest | None = None
) -> EnrollmentState:
    """End the enrollment now (after any send in flight)."""
    handle = _handle(client, journey_id, customer_id)
    try:
        return await handle.execute_update(
            "exit", body or ExitRequest(), result_type=EnrollmentState
        )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        try:  # a closed enrollment is "already ended", not "missing"
            closed = await handle.query("state", result_type=EnrollmentState)
        except RPCError:
            raise _not_found(journey_id, customer_id) from err
        raise problem(409, f"cannot exit: enrollment already {closed.status}") from err
    except WorkflowUpdateFailedError as err:
        raise problem(409, f"cannot exit: {err.cause or err}") from err
