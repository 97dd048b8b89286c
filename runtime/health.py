"""Probes. The worker serves `/healthz` (its poll loop is running: liveness) and `/readyz`
(Temporal answers and lists this worker among the task queue's pollers: readiness) on
`worker_health_address`; the API's `/readyz` uses `answers` too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client

POLLED_WITHIN = timedelta(minutes=2)
"""A poll lasts up to ~70 s; a worker not seen polling for longer is stuck."""


async def answers(checks: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, str]:
    """Run the checks at once, 2 s each: `ok`, else `unreachable` (nothing more is said:
    no addresses, no errors)."""

    async def state(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), timeout=2)
        except Exception:
            return "unreachable"
        return "ok"

    found = await asyncio.gather(*(state(check) for check in checks.values()))
    return dict(zip(checks, found, strict=True))


async def temporal_answers(client: Client) -> None:
    await client.workflow_service.get_system_info(GetSystemInfoRequest())


async def polling(client: Client, task_queue: str) -> bool:
    """This process is among the pollers of the task queue's workflow tasks, lately."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    since = datetime.now(UTC) - POLLED_WITHIN
    return any(
        p.identity == client.identity and p.last_access_time.ToDatetime(UTC) > since
        for p in described.pollers
    )


def worker_health_app(running: Callable[[], bool], client: Client, task_queue: str) -> FastAPI:
    app = FastAPI(title="journeys worker health", openapi_url=None, docs_url=None)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Live while the worker runs (it stops on a fatal error: restart the pod)."""
        alive = running()
        return JSONResponse({"status": "running" if alive else "stopped"}, 200 if alive else 503)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        async def polls() -> None:
            if not await polling(client, task_queue):
                raise LookupError("not among the pollers")

        checks = await answers({"temporal": lambda: temporal_answers(client), "polling": polls})
        ready = running() and all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", **checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
