"""Every patch in the workflow code, with the day it went in, and the rule for retiring it.

A patch keeps a changed branch replaying for histories recorded before the change. The
policy (README, "Changing workflow code"): a patch is recorded here when it goes in; once no
history within the namespace's retention uses it (`journeys replay --query` counts them, and
says so) it is deprecated (`workflow.deprecate_patch`), and after one more retention period
it and its old branch are deleted. Pure data and one pure function: no clock here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Patch:
    id: str
    added: date
    """The day it went in: histories recorded before it may take the old branch."""
    why: str
    """What the old branch did."""


EVENTS_BETWEEN_WAITS = Patch(
    "events-between-waits",
    date(2026, 11, 25),
    "it cleared the event inbox when a wait_for_event began",
)
EVENTS_DURING_HOLDS = Patch(
    "events-during-holds",
    date(2026, 11, 29),
    "a send's hold (quiet hours, a cap, the best time) dropped the events that arrived "
    "during it instead of keeping them for the next wait_for_event",
)
BEST_TIME_IN_SEND = Patch(
    "best-time-in-send",
    date(2026, 11, 29),
    "a best-time send ran the best_send_time activity and a hold before the send",
)
ONE_FINAL_UPSERT = Patch(
    "one-final-upsert",
    date(2026, 11, 29),
    "the exit step upserted the status on its own (one billable action more)",
)
ONE_UPSERT_PER_TASK = Patch(
    "one-upsert-per-task",
    date(2026, 11, 29),
    "an instant step upserted its own search attributes (one billable action more each)",
)

SETTLE_GIVEN_UP_SENDS = Patch(
    "settle-given-up-sends",
    date(2026, 12, 7),
    "a send whose activity gave up (its last attempt timed out) left its ledger row "
    "`pending`, and the enrollment took `failed` without asking the ledger",
)

PATCHES: tuple[Patch, ...] = (
    EVENTS_BETWEEN_WAITS,
    EVENTS_DURING_HOLDS,
    BEST_TIME_IN_SEND,
    ONE_FINAL_UPSERT,
    ONE_UPSERT_PER_TASK,
    SETTLE_GIVEN_UP_SENDS,
)
"""Every patch still in the code, in the order it came; a new one goes on the end."""
DEPRECATED: frozenset[str] = frozenset()
"""Patches whose old branch is gone (the code calls `workflow.deprecate_patch` for them)."""


def may_deprecate(patch: Patch, recorded_by: int, *, today: date, retention: timedelta) -> bool:
    """Whether the evidence allows deprecating `patch`: none of the histories replayed
    recorded it, and it went in longer than a retention ago (so every run that started
    before it, which alone may take its old branch, has closed and aged out).

    Args:
        recorded_by: how many of the namespace's histories recorded the patch.
        today: the day the evidence was gathered.
        retention: the namespace's history retention.
    """
    return recorded_by == 0 and today - patch.added > retention
