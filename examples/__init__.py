"""Journeys from the field (../shared/SCENARIOS.md), authored in Python, loaded by the
embedded default. Each module exposes `JOURNEY` and `TEMPLATES`."""

from __future__ import annotations

from examples import onboarding_nudge, welcome_series
from schemas.delivery import Template
from schemas.journey import JourneySpec

MODULES = (onboarding_nudge, welcome_series)
JOURNEYS: list[JourneySpec] = [m.JOURNEY for m in MODULES]
TEMPLATES: list[Template] = [t for m in MODULES for t in m.TEMPLATES]
