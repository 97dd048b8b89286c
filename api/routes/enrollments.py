"""One customer's enrollment in one journey: its live state, and operator controls
(exit, pause, resume, skip the current wait) as validated workflow updates."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep
from api.errors import problem
from schemas.enrollment import Control, ControlRequest, EnrollmentState, enrollment_workflow_id
from schemas.journey import SLUG

T = TypeVar("T", bound=BaseModel)
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


class Refused(Exception):
    """An enrollment's answer to a control it will not take, in its own words."""


async def _apply(
    handle: WorkflowHandle,
    action: str,
    body: BaseModel,
    result_type: type[T] = EnrollmentState,  # type: ignore[assignment]
    *,
    plan: str | None = None,
) -> T:
    """One control (a validated workflow update; or, as a dry run, the query `plan` that
    says what it would do) to one enrollment. Raises `Refused` (already ended, not paused,
    not waiting), or RPCError NOT_FOUND when there is no such workflow."""
    try:
        if plan is not None:
            return await handle.query(plan, body, result_type=result_type)
        return await handle.execute_update(action, body, result_type=result_type)
    except WorkflowQueryFailedError as err:
        raise Refused(str(err)) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        # A closed enrollment is "already ended", not "missing" (the query raises if missing).
        closed = await handle.query("state", result_type=EnrollmentState)
        raise Refused(f"enrollment already {closed.status}") from err
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        raise Refused(cause.message if isinstance(cause, ApplicationError) else str(err)) from err


async def control(
    client: ClientDep,
    journey_id: str,
    customer_id: str,
    action: str,
    body: BaseModel,
    result_type: type[T] = EnrollmentState,  # type: ignore[assignment]
    *,
    plan: str | None = None,
) -> T:
    """One control for one customer's enrollment; a refusal is a 409 that says why."""
    handle = _handle(client, journey_id, customer_id)
    try:
        return await _apply(handle, action, body, result_type, plan=plan)
    except Refused as err:
        raise problem(409, f"cannot {action}: {err}") from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _not_found(journey_id, customer_id) from err
        raise


def _one(action: Control, doc: str) -> Any:
    async def endpoint(
        journey_id: str, customer_id: str, client: ClientDep, body: ControlRequest | None = None
    ) -> EnrollmentState:
        return await control(client, journey_id, customer_id, action, body or ControlRequest())

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


class BulkResult(BaseModel):
    matched: int
    done: int
    refused: dict[str, int]
    """Why the others refused (e.g. "enrollment is not paused"), and how many."""


bulk = APIRouter(prefix="/v1/journeys/{journey_id}/controls", tags=["enrollments"])


@bulk.post("/{action}")
async def control_all(
    journey_id: str, action: Control, client: ClientDep, body: BulkControl | None = None
) -> BulkResult:
    """One control for every running enrollment of the journey (at `step`, if given), 20
    at a time; each is validated by its own enrollment."""
    body = body or BulkControl()
    request = ControlRequest(reason=body.reason)
    done, refused = await for_each(
        client, journey_id, body.step, None, action, request, EnrollmentState
    )
    return BulkResult(matched=len(done) + refused.total(), done=len(done), refused=refused)


async def for_each(
    client: ClientDep,
    journey_id: str,
    step: str | None,
    version_below: int | None,
    action: str,
    body: BaseModel,
    result_type: type[T] = EnrollmentState,  # type: ignore[assignment]
    *,
    plan: str | None = None,
) -> tuple[list[T], Counter[str]]:
    """`action` for every running enrollment of the journey (at `step`; on a version below
    `version_below`), 20 at a time, each validated by its own enrollment: the answers of
    those that took it, and how many refused, by why."""
    query = f'JourneyId = "{journey_id}" AND ExecutionStatus = "Running"'
    if step:
        query += f' AND JourneyStep = "{step}"'
    if version_below is not None:
        query += f" AND JourneyVersion < {version_below}"
    ids = [execution.id async for execution in client.list_workflows(query)]
    done: list[T] = []
    refused: Counter[str] = Counter()
    limit = asyncio.Semaphore(20)

    async def one(workflow_id: str) -> None:
        handle = client.get_workflow_handle(workflow_id)
        async with limit:
            try:
                done.append(await _apply(handle, action, body, result_type, plan=plan))
            except Refused as err:
                refused[str(err)] += 1

    await asyncio.gather(*(one(i) for i in ids))
    return done, refused
