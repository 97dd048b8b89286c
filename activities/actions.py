"""The `action` step: call a registered Python action or an HTTP endpoint, under the step's
own rate limit, so engineers extend journeys without touching the interpreter.

Register an action in any module named in `JOURNEYS_ACTION_MODULES`:

    from journeys.activities.actions import ActionInput, action

    @action("coupons.issue")
    async def issue(call: ActionInput) -> dict[str, object]:
        return {"code": ...}

An action gets the customer, the step's `input`, the enrollment's scope and an idempotency
`key` (stable across retries), and returns JSON, which later steps and templates read as
`context.actions.<step id>`. A `ValueError` fails the step for good; anything else is
retried by Temporal.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys.activities.http import Permanent, call
from journeys.schemas import activities as names
from journeys.schemas.activities import RATE_LIMITED, ActionRequest, Actions, invalid_request

RATE_WAIT_SECONDS = 10.0
"""How long a call waits for its rate limit before it is retried later by Temporal."""


@dataclass(frozen=True)
class ActionInput:
    """What a registered action is called with."""

    key: str
    customer_id: str
    journey_id: str
    step_id: str
    input: dict[str, Any]
    scope: dict[str, Any]


Action = Callable[[ActionInput], Awaitable[dict[str, Any]]]
REGISTRY: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    """Register `fn` as the action `name`."""

    def register(fn: Action) -> Action:
        REGISTRY[name] = fn
        return fn

    return register


def load(modules: Iterable[str]) -> list[str]:
    """Import the modules that register actions; the names now registered."""
    for module in modules:
        importlib.import_module(module)
    return sorted(REGISTRY)


class ActionActivities(Actions):
    """The `action` step's activity: a registered action or an HTTP call, rate limited."""

    def __init__(self, http: httpx.AsyncClient):
        self._http = http
        self._limiters: dict[tuple[str, str, int, float], AsyncLimiter] = {}

    @activity.defn(name=names.ACTION)
    async def run(self, request: ActionRequest) -> dict[str, Any]:
        """Run the step's action once (per idempotency key) and return its JSON output."""
        await self._admit(request)
        if request.activity is not None:
            return await self._registered(request)
        return await self._http_call(request)

    async def _admit(self, request: ActionRequest) -> None:
        limit = request.rate_limit
        if limit is None:
            return
        per = limit.per.total_seconds()
        key = (request.journey_id, request.step_id, limit.limit, per)
        limiter = self._limiters.setdefault(key, AsyncLimiter(limit.limit, per))
        try:
            await asyncio.wait_for(limiter.acquire(), RATE_WAIT_SECONDS)
        except TimeoutError as err:
            raise ApplicationError(
                f"rate limit {limit.limit} per {per:g}s reached", type=RATE_LIMITED
            ) from err

    async def _registered(self, request: ActionRequest) -> dict[str, Any]:
        assert request.activity is not None
        fn = REGISTRY.get(request.activity)
        if fn is None:
            known = ", ".join(sorted(REGISTRY)) or "none"
            raise invalid_request(f"no action named {request.activity!r} (registered: {known})")
        data = ActionInput(**request.model_dump(include=set(ActionInput.__dataclass_fields__)))
        try:
            return await fn(data)
        except ValueError as err:
            raise invalid_request(str(err)) from err

    async def _http_call(self, request: ActionRequest) -> dict[str, Any]:
        assert request.http is not None
        body = request.http.body or {
            "customer_id": request.customer_id,
            "journey_id": request.journey_id,
            "step_id": request.step_id,
            "input": request.input,
            **request.scope,
        }
        try:
            response = await call(
                self._http,
                request.http.method,
                request.http.url,
                what=f"action {request.step_id}",
                idempotency_key=request.key,
                json=body,
            )
        except Permanent as err:
            raise invalid_request(str(err)) from err
        try:
            output = response.json()
        except ValueError:
            output = None
        return output if isinstance(output, dict) else {"status": response.status_code}
