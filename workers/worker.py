"""The journey worker: `JourneyWorkflow` plus the activities, built once with their stores.

Sandbox: by default `workflows/` is passed through the workflow sandbox instead of being
re-imported for every enrollment; that re-import was most of the worker's per-enrollment CPU
(bench/RESULTS.md). The tests run with `strict_sandbox`, which re-imports and polices the
workflow code on every run, so nondeterministic code in `workflows/` still fails CI.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels import channels_for
from activities.delivery import DeliveryActivities
from activities.profiles import ProfileActivities
from schemas.settings import Settings
from storage.stores import Stores
from workflows.journey import JourneyWorkflow


def build_worker(
    client: Client, stores: Stores, settings: Settings, *, task_queue: str | None = None
) -> Worker:
    delivery = DeliveryActivities(
        ledger=stores.ledger,
        templates=stores.templates,
        channels=channels_for(settings),
        settings=settings,
    )
    profiles = ProfileActivities(stores.profiles)
    restrictions = SandboxRestrictions.default
    if not settings.strict_sandbox:
        restrictions = restrictions.with_passthrough_modules("workflows")
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[JourneyWorkflow],
        activities=[
            delivery.send,
            profiles.get_profile,
            profiles.next_local_time,
            profiles.best_send_time,
        ],
        max_concurrent_activities=200,
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
    )
