"""Migrating enrollments to a newer version of their journey by step-id mapping: one
customer's or in bulk, each with a dry run that says what would happen."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from pydantic import Field, StrictBool

from journeys.api.commands import send
from journeys.api.deps import ClientDep, CustomerId, JourneyId, StoresDep
from journeys.api.errors import problem
from journeys.schemas.access import requires
from journeys.schemas.base import Schema
from journeys.schemas.enrollment import MigrateRequest, MigrationPlan
from journeys.schemas.journey import SLUG
from journeys.usecases.controls import Command, for_each, running

router = APIRouter(prefix="/v1/journeys/{journey_id}", tags=["enrollments"])


class Migration(Schema):
    to_version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    """The version to move to; the latest by default."""
    mapping: dict[str, str] = Field(default_factory=dict)
    """Old step id -> new step id, for steps renamed or removed; others keep their id."""
    dry_run: StrictBool = False
    """Say what would happen, change nothing (a query: nothing is written to histories)."""
    reason: str = Field(default="operator", max_length=200)
    """Why: kept in the enrollment's path and the audit log."""


class BulkMigration(Migration):
    step: str | None = Field(default=None, pattern=SLUG)
    """Only enrollments at this step."""


class BulkMigrated(Schema):
    to_version: int
    """The version they move (or would move) to."""
    dry_run: bool
    """True when nothing was changed."""
    matched: int
    """Enrollments on older versions that the selection found."""
    moved: dict[str, int]
    """"v1 wait -> v2 wait-longer": how many moved (or, dry, would move) that way."""
    refused: dict[str, int]
    """Enrollments that refused, by why."""


async def _request(
    http: Request, stores: StoresDep, journey_id: JourneyId, body: Migration
) -> MigrateRequest:
    """The update's request; the audit entry says the version and whether it was dry."""
    found = await stores.journeys.get(journey_id, body.to_version)
    if found is None:
        where = ("body", "to_version") if body.to_version else ("path", "journey_id")
        raise problem(404, "no such journey" + (" version" if body.to_version else ""), *where)
    spec, version = found
    http.state.audit = {"to_version": version, "dry_run": body.dry_run}
    return MigrateRequest(journey=spec, version=version, mapping=body.mapping, reason=body.reason)


def _command(request: MigrateRequest, body: Migration) -> Command[MigrationPlan]:
    """A dry run asks the enrollment's `plan_migration` query instead of the update."""
    if body.dry_run:
        return Command("migrate", lambda enrollment: enrollment.plan_migration(request))
    return Command("migrate", lambda enrollment: enrollment.migrate(request))


@router.post("/enrollments/{customer_id}/migrate")
@requires("journeys:write")
async def migrate_enrollment(
    journey_id: JourneyId,
    customer_id: CustomerId,
    body: Migration,
    http: Request,
    client: ClientDep,
    stores: StoresDep,
) -> MigrationPlan:
    """Move one enrollment to a newer version at the mapped step (a wait under way ends and
    its counterpart starts anew). With `dry_run`, only what would happen."""
    request = await _request(http, stores, journey_id, body)
    return await send(client, journey_id, customer_id, _command(request, body))


@router.post("/migrate")
@requires("journeys:write")
async def migrate_all(
    journey_id: JourneyId,
    body: BulkMigration,
    http: Request,
    client: ClientDep,
    stores: StoresDep,
) -> BulkMigrated:
    """Every running enrollment on an older version (at `step`, if given), each validated
    by its own enrollment: how many moved which way, and who refused why."""
    request = await _request(http, stores, journey_id, body)
    query = running(journey_id, body.step, version_below=request.version)
    done, refused = await for_each(client, query, _command(request, body))
    moved = Counter(f"v{p.from_version} {p.from_step} -> v{p.to_version} {p.to_step}" for p in done)
    return BulkMigrated(
        to_version=request.version,
        dry_run=body.dry_run,
        matched=len(done) + refused.total(),
        moved=dict(moved),
        refused=dict(refused),
    )
