"""The decisioning contract: offers in a catalogue, a decision request, and its answer.

An offer is eligible when it is live (`starts_at`/`ends_at`, e.g. a festival window),
under its caps (per customer and in total) and its `eligibility` predicate holds over
`profile`, and `event`, `last_event`, `context` as the journey passed them. Eligible offers
are ranked, and the top `limit` returned with the reason each was chosen or dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictBool

from journeys.schemas.base import Schema
from journeys.schemas.journey import SLUG, Ranking
from journeys.schemas.predicates import Predicate
from journeys.schemas.wire import Timestamp


class OfferIn(Schema):
    """An offer as written over the API; the path names it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    """The offer's name."""
    placements: list[str] = Field(min_length=1)
    """Where it may be shown (`cart-email`, `store-push`)."""
    priority: int = 0
    """Higher wins when ranking by priority."""
    score: float = 0.0
    """A model's propensity score, for `ranking.by: score`."""
    fields: dict[str, Any] = Field(default_factory=dict)
    """What templates show and formulas use: title, image, discount, margin..."""
    eligibility: Predicate | None = None
    """Who may get it (a predicate over the profile and event)."""
    starts_at: Timestamp | None = None
    """Not offered before this time."""
    ends_at: Timestamp | None = None
    """Not offered after this time."""
    cap_per_customer: int | None = Field(default=None, ge=1)
    """How many times one customer may get it."""
    cap_total: int | None = Field(default=None, ge=1)
    """How many times it may be given in all."""


class Offer(OfferIn):
    id: str = Field(pattern=SLUG)
    """The offer's id."""


class DecisionRequest(Schema):
    """`key` makes a retried request return the first answer (and count caps once)."""

    customer_id: str
    """Whom to decide for."""
    placement: str
    """Where the offers will show (`cart-reminder`)."""
    limit: int = Field(default=1, ge=1, le=50)
    """How many offers to return."""
    ranking: Ranking = Field(default_factory=Ranking)
    """How to rank them; default: by priority."""
    event: dict[str, Any] | None = None
    """The event that entered the customer (eligibility and ranking read it)."""
    last_event: dict[str, Any] | None = None
    """The latest event the enrollment received."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Eligibility and formulas see `profile`, `event`, `last_event` and `context`."""
    at: Timestamp | None = None
    """The moment to decide at (the enrollment's clock); default now."""
    key: str | None = None
    """Makes the decision repeatable: the same key answers the same offers."""
    dry_run: StrictBool = False
    """Rank without counting against caps."""


class Chosen(Schema):
    id: str
    """The offer's id."""
    name: str
    """Its name."""
    fields: dict[str, Any]
    """The offer's content for templates (`decision.offers[0].fields.*`)."""
    rank: int
    """Its place, 1 first."""
    value: float
    """The score it was ranked by."""
    reason: str
    """Why it ranks there."""


class Dropped(Schema):
    id: str
    """The offer's id."""
    reason: str
    """Why it was left out (not eligible, capped, outside its dates)."""


class DecisionResult(Schema):
    placement: str
    """The placement decided for."""
    offers: list[Chosen]
    """The offers chosen, best first."""
    dropped: list[Dropped] = Field(default_factory=list)
    """Offers left out, and why."""

    def for_context(self) -> dict[str, Any]:
        """What a `decide` step keeps in the enrollment's context (not the dropped list)."""
        offers = [o.model_dump(mode="json", exclude={"reason", "value"}) for o in self.offers]
        return {"placement": self.placement, "offers": offers, "top": offers[0] if offers else None}
