"""How workers and replayers run the journeys: in Temporal's workflow sandbox, or not.

Production runs `workflows/` outside the sandbox (`JOURNEYS_WORKFLOW_SANDBOX=off`). The
sandbox guards against nondeterministic workflow code, and here there is no user code to
guard against: a journey is data (`JourneySpec`) that the product's own interpreter runs,
and custom actions are activities. The guard stays where that code changes: the tests and
`journeys replay` run it `strict` (re-imported and policed on every run), so
nondeterministic code in `workflows/` fails CI. The sandbox cost a third of a replayed
enrollment's CPU (its exec and import guards around every activation and, in temporalio
1.35, around every payload of every command: bench/RESULTS.md). `passthrough` keeps the
sandbox with `workflows/` imported once (the default before).

`zoneinfo.ZoneInfo` is let through: the default restrictions hand workflows a proxy of it
(to police `clear_cache`, `from_file` and `reset_tzpath`), which `datetime.astimezone`
refuses, and the enrollment states its waits in the customer's own time zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from journeys.schemas.settings import Settings

WORKFLOWS = ("journeys.workflows",)
"""Where the product's workflow code lives."""


def runner(settings: Settings, packages: Sequence[str] = WORKFLOWS) -> WorkflowRunner:
    """The runner `settings.workflow_sandbox` names; `packages`: where the worker's
    workflows live (passed through the sandbox unless `strict`)."""
    if settings.workflow_sandbox == "off":
        return UnsandboxedWorkflowRunner()
    return sandbox(strict=settings.workflow_sandbox == "strict", packages=packages)


def sandbox(
    *, strict: bool, packages: Sequence[str] = ("journeys.workflows",)
) -> SandboxedWorkflowRunner:
    """`packages`: where the worker's workflows live (passed through unless `strict`)."""
    default = SandboxRestrictions.default
    members = default.invalid_module_members.with_child_unrestricted("zoneinfo", "ZoneInfo")
    restrictions = dataclasses.replace(default, invalid_module_members=members)
    if not strict:
        restrictions = restrictions.with_passthrough_modules(*packages)
    return SandboxedWorkflowRunner(restrictions=restrictions)
