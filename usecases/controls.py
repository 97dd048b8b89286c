"""Operator controls sent to enrollments: one validated workflow update (or, as a dry run,
the query that plans it) to one enrollment or to every running one a list query finds,
through the typed handle `clients.enrollments.Enrollment`.
Used by the control and migration routes and by customer erase."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from journeys.clients.enrollments import Enrollment
from journeys.schemas.enrollment import Control, ControlRequest, EnrollmentState
from journeys.workflows import search_attributes as sa

T = TypeVar("T", bound=BaseModel)
IN_FLIGHT = 20


class Refused(Exception):
    """An enrollment's answer to a control it will not take, in its own words."""


@dataclass(frozen=True)
class Command(Generic[T]):
    """One call on an enrollment's typed handle; `action` names it in a refusal."""

    action: str
    call: Callable[[Enrollment], Awaitable[T]]


def control(action: Control, body: ControlRequest) -> Command[EnrollmentState]:
    """pause, resume, skip or exit: answered with the enrollment's state."""
    return Command(action, lambda enrollment: enrollment.control(action, body))


async def apply(enrollment: Enrollment, command: Command[T]) -> T:
    """Raises `Refused` (already ended, not paused, not waiting...), or RPCError NOT_FOUND
    when there is no such workflow."""
    try:
        return await command.call(enrollment)
    except WorkflowQueryFailedError as err:
        raise Refused(str(err)) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        # A closed enrollment is "already ended", not "missing" (the query raises if missing).
        closed = await enrollment.state()
        raise Refused(f"enrollment already {closed.status}") from err
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        raise Refused(cause.message if isinstance(cause, ApplicationError) else str(err)) from err


def running(journey_id: str, step: str | None = None, version_below: int | None = None) -> str:
    """The list query for a journey's running enrollments (at `step`; on older versions)."""
    query = f"{sa.JOURNEY_ID.name} = {sa.quoted(journey_id)} AND ExecutionStatus = 'Running'"
    if step:
        query += f" AND {sa.JOURNEY_STEP.name} = {sa.quoted(step)}"
    if version_below is not None:
        query += f" AND {sa.JOURNEY_VERSION.name} < {int(version_below)}"
    return query


async def for_each(client: Client, query: str, command: Command[T]) -> tuple[list[T], Counter[str]]:
    """`command` for every workflow `query` lists, 20 at a time, each validated by its own
    enrollment: the answers of those that took it, and how many refused, by why."""
    ids = [execution.id async for execution in client.list_workflows(query)]
    done: list[T] = []
    refused: Counter[str] = Counter()
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(workflow_id: str) -> None:
        async with limit:
            try:
                done.append(await apply(Enrollment(client, workflow_id), command))
            except Refused as err:
                refused[str(err)] += 1

    await asyncio.gather(*(one(i) for i in ids))
    return done, refused
