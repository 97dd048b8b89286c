"""The journey worker: `JourneyWorkflow` plus the activities, built once with their stores."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

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
        profiles=stores.profiles,
        templates=stores.templates,
        channels=channels_for(settings),
    )
    profiles = ProfileActivities(stores.profiles)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[JourneyWorkflow],
        activities=[delivery.send, profiles.get_profile, profiles.next_local_time],
        max_concurrent_activities=200,
    )
