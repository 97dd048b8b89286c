"""Commands to one customer's enrollment as the API sends them: a refusal is a 409 that
says why, an enrollment that does not exist a 404. The enrollment and migration routes
share these."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from journeys.api.deps import ClientDep, CustomerId, JourneyId
from journeys.api.errors import problem
from journeys.clients.enrollments import Enrollment
from journeys.usecases.controls import Command, Refused, apply

T = TypeVar("T", bound=BaseModel)


def enrollment_of(client: ClientDep, journey_id: JourneyId, customer_id: CustomerId) -> Enrollment:
    return Enrollment.of(client, journey_id, customer_id)


def not_found(journey_id: JourneyId, customer_id: CustomerId) -> Exception:
    return problem(
        404,
        "this customer has no enrollment in this journey",
        "path",
        "customer_id",
    )


async def send(
    client: ClientDep, journey_id: JourneyId, customer_id: CustomerId, command: Command[T]
) -> T:
    """One command to one customer's enrollment; a refusal is a 409 that says why."""
    try:
        return await apply(enrollment_of(client, journey_id, customer_id), command)
    except Refused as err:
        raise problem(409, f"cannot {command.action}: {err}") from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found(journey_id, customer_id) from err
        raise
