"""Journeys: a durable customer-journey runner on Temporal.

This module is the stable authoring API: the journey spec, its steps and predicates, and the
decorator for custom actions. Test journeys with `journeys.testing`. Everything under
`journeys.<subpackage>` (api, workflows, activities, storage, ...) is internal and may change
between releases.

    from datetime import timedelta
    from journeys import Entry, ExitStep, JourneySpec, SendStep, WaitStep

The names load on first use, so importing an internal module (a workflow, in Temporal's
sandbox) does not import the whole API with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from journeys.activities.actions import ActionInput, action
    from journeys.schemas.journey import (
        ActionStep,
        Audience,
        BranchCase,
        BranchStep,
        ContentVariant,
        DecideStep,
        Entry,
        EventCondition,
        ExitStep,
        Holdout,
        HttpCall,
        JourneySpec,
        MessageContent,
        Ranking,
        RateLimit,
        Schedule,
        SendStep,
        SplitPath,
        SplitStep,
        Step,
        UpdateProfileStep,
        WaitForEventStep,
        WaitForReactionStep,
        WaitStep,
    )
    from journeys.schemas.predicates import AllOf, AnyOf, Comparison, Not, Predicate

_HOMES = {
    "journeys.activities.actions": ("ActionInput", "action"),
    "journeys.schemas.journey": (
        "ActionStep",
        "Audience",
        "BranchCase",
        "BranchStep",
        "ContentVariant",
        "DecideStep",
        "Entry",
        "EventCondition",
        "ExitStep",
        "Holdout",
        "HttpCall",
        "JourneySpec",
        "MessageContent",
        "Ranking",
        "RateLimit",
        "Schedule",
        "SendStep",
        "SplitPath",
        "SplitStep",
        "Step",
        "UpdateProfileStep",
        "WaitForEventStep",
        "WaitForReactionStep",
        "WaitStep",
    ),
    "journeys.schemas.predicates": ("AllOf", "AnyOf", "Comparison", "Not", "Predicate"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "ActionInput",
    "ActionStep",
    "AllOf",
    "AnyOf",
    "Audience",
    "BranchCase",
    "BranchStep",
    "Comparison",
    "ContentVariant",
    "DecideStep",
    "Entry",
    "EventCondition",
    "ExitStep",
    "Holdout",
    "HttpCall",
    "JourneySpec",
    "MessageContent",
    "Not",
    "Predicate",
    "Ranking",
    "RateLimit",
    "Schedule",
    "SendStep",
    "SplitPath",
    "SplitStep",
    "Step",
    "UpdateProfileStep",
    "WaitForEventStep",
    "WaitForReactionStep",
    "WaitStep",
    "action",
]


def __getattr__(name: str) -> Any:
    """Load a public name from the module it lives in."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'journeys' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
