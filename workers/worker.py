"""The journey worker: `JourneyWorkflow` plus the activities, built once with their stores,
run as workers/sandbox.py says (outside the sandbox in production, `strict` in the tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from journeys.activities.actions import ActionActivities
from journeys.activities.actions import load as load_actions
from journeys.activities.audiences import AudienceActivities
from journeys.activities.channels import channels_for
from journeys.activities.decisioning import DecisioningActivities
from journeys.activities.delivery import DeliveryActivities
from journeys.activities.experiments import ExperimentActivities
from journeys.activities.profiles import ProfileActivities
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.workers.sandbox import runner
from journeys.workflows.audience import AudienceEntryWorkflow
from journeys.workflows.journey import JourneyWorkflow


def build_worker(
    client: Client,
    stores: Stores,
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    task_queue: str | None = None,
    workflows: Sequence[type] = (JourneyWorkflow, AudienceEntryWorkflow),
) -> Worker:
    """`http` is the worker's one shared client for services and providers (its owner
    closes it after the worker shut down). `workflows`: what it runs beside the activities
    (the bench's hand-written baseline runs its own)."""
    delivery = DeliveryActivities(
        ledger=stores.ledger,
        templates=stores.templates,
        channels=channels_for(
            settings,
            http,
            stores.profiles.forget_push_tokens,
            stores.devices,
            stores.ledger.claimed,
        ),
        settings=settings,
        journeys=stores.journeys,
        pace=stores.pace,
    )
    profiles = ProfileActivities(stores.profiles)
    decisioning = DecisioningActivities(settings, http)
    load_actions(settings.action_modules)
    actions = ActionActivities(http)
    queue = task_queue or settings.task_queue
    audiences = AudienceActivities(client, stores.audiences, stores.profiles, task_queue=queue)
    experiments = ExperimentActivities(client, stores.splits, settings.bandit_refresh_seconds)
    return Worker(
        client,
        task_queue=queue,
        workflows=list(workflows),
        activities=[
            delivery.send,
            delivery.give_up,
            profiles.get_profile,
            profiles.next_local_time,
            profiles.best_send_time,
            profiles.update_profile,
            decisioning.decide,
            actions.run,
            experiments.weights,
            audiences.count,
            audiences.page,
            audiences.enroll,
        ],
        max_concurrent_activities=200,
        max_cached_workflows=settings.workflow_cache,
        workflow_runner=runner(
            settings, packages=sorted({w.__module__.rpartition(".")[0] for w in workflows})
        ),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
    )
