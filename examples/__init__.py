"""Journeys from the field (../shared/SCENARIOS.md), authored in Python, loaded by the
embedded default. Each module exposes `JOURNEY` and `TEMPLATES`;
the decisioning catalogue's example offers are in `OFFERS`."""

from __future__ import annotations

from journeys.examples import (
    cart_abandonment,
    direct_debit,
    onboarding_nudge,
    subscription_renewal,
    unopened_email,
    welcome_series,
)
from journeys.schemas.decision import Offer
from journeys.schemas.delivery import Template
from journeys.schemas.journey import JourneySpec

MODULES = (
    onboarding_nudge,
    cart_abandonment,
    subscription_renewal,
    welcome_series,
    direct_debit,
    unopened_email,
)
JOURNEYS: list[JourneySpec] = [m.JOURNEY for m in MODULES]
TEMPLATES: list[Template] = [t for m in MODULES for t in m.TEMPLATES]
OFFERS: list[Offer] = list(cart_abandonment.OFFERS)
