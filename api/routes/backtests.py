"""Backtests: what a journey version would have done over the recorded past, as a job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from journeys.api.deps import StoresDep
from journeys.api.errors import problem
from journeys.schemas.access import MB, requires
from journeys.schemas.backtest import MAX_RANGE, BacktestJob, BacktestRequest
from journeys.schemas.journey import JourneySpec
from journeys.schemas.validation import JourneyInvalid, ensure_valid
from journeys.usecases.backtest import Busy, Jobs

router = APIRouter(prefix="/v1/journeys/backtests", tags=["backtests"])
JobId = Annotated[str, Path(pattern=r"^bt-[0-9a-f]{12}$", description="A backtest's id.")]


@router.post("", status_code=status.HTTP_202_ACCEPTED)
@requires("journeys:write", max_body=2 * MB)
async def start_backtest(body: BacktestRequest, request: Request, stores: StoresDep) -> BacktestJob:
    """Simulate `journey` (a draft: nothing is published, sent or started) over the events
    recorded since `since`, and, with `compare_version` or `compare`, another version over
    the same events. A job: poll `GET /v1/journeys/backtests/{id}` for its progress and
    report. `journeys:write`, as publishing: it reads every customer's events and takes
    minutes of the API's CPU. 409 while another backtest runs."""
    now = datetime.now(UTC)
    end = body.until or now
    if end <= body.since or end - body.since > MAX_RANGE:
        raise problem(
            422,
            f"the range must end after it starts and span at most {MAX_RANGE.days} days",
            "body",
            "since",
        )
    for where, spec in (("journey", body.journey), ("compare", body.compare)):
        if spec is not None:
            _valid(spec, where)
    baseline: tuple[JourneySpec, str] | None = None
    if body.compare is not None:
        baseline = (body.compare, "compare")
    elif body.compare_version is not None:
        found = await stores.journeys.get(body.journey.id, body.compare_version)
        if found is None:
            raise problem(404, "no such journey version", "body", "compare_version")
        baseline = (found[0], f"v{found[1]}")
    jobs: Jobs = request.app.state.backtests
    try:
        return jobs.start(body, baseline)
    except Busy as err:
        raise problem(409, str(err)) from err


@router.get("/{job_id}")
@requires("read")
async def get_backtest(job_id: JobId, request: Request) -> BacktestJob:
    """A backtest's progress (0 to 1), then its report (and comparison), or why it failed."""
    job = request.app.state.backtests.get(job_id)
    if job is None:
        raise problem(404, "no such backtest (they are kept for the API process's life)")
    return job  # type: ignore[no-any-return]


def _valid(spec: JourneySpec, where: str) -> None:
    try:
        ensure_valid(spec)
    except JourneyInvalid as err:
        first = err.problems[0]
        raise problem(422, first.msg, "body", where, *first.loc) from err
