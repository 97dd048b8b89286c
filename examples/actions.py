"""Actions the example journeys call (`action` steps name them), registered with the worker
through `JOURNEYS_ACTION_MODULES` (this module is the default)."""

from __future__ import annotations

import hashlib
from typing import Any

from journeys.activities.actions import ActionInput, action


@action("coupons.issue")
async def issue_coupon(call: ActionInput) -> dict[str, Any]:
    """A single-use coupon code for this customer and enrollment step. Derived from the
    idempotency key, so a retried call issues the same code, never a second one."""
    percent = int(call.input.get("percent", 10))
    if not 1 <= percent <= 90:
        raise ValueError(f"percent must be 1..90, got {percent}")
    digest = hashlib.sha256(call.key.encode()).hexdigest()[:8].upper()
    return {"code": f"SAVE{percent}-{digest}", "percent": percent}
