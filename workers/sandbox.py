"""The workflow sandbox every worker and replayer runs the journeys in.

By default `workflows/` is passed through instead of being re-imported for every
enrollment; that re-import was most of the worker's per-enrollment CPU (bench/RESULTS.md).
`strict` (the tests, and replay) re-imports and polices the workflow code on every run, so
nondeterministic code in `workflows/` still fails CI.

`zoneinfo.ZoneInfo` is let through: the default restrictions hand workflows a proxy of it
(to police `clear_cache`, `from_file` and `reset_tzpath`), which `datetime.astimezone`
refuses, and the enrollment states its waits in the customer's own time zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions


def sandbox(*, strict: bool, packages: Sequence[str] = ("workflows",)) -> SandboxedWorkflowRunner:
    """`packages`: where the worker's workflows live (passed through unless `strict`)."""
    default = SandboxRestrictions.default
    members = default.invalid_module_members.with_child_unrestricted("zoneinfo", "ZoneInfo")
    restrictions = dataclasses.replace(default, invalid_module_members=members)
    if not strict:
        restrictions = restrictions.with_passthrough_modules(*packages)
    return SandboxedWorkflowRunner(restrictions=restrictions)
