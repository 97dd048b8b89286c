"""The decisioning contract: offers in a catalogue, a decision request, and its answer.

An offer is eligible when it is live (`starts_at`/`ends_at`, e.g. a festival window),
under its caps (per customer and in total) and its `eligibility` predicate holds over
`profile`, and `event`, `last_event`, `context` as the journey passed them. Eligible offers
are ranked, and the top `limit` returned with the reason each was chosen or dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictBool

from schemas.base import Schema
from schemas.journey import SLUG, Ranking
from schemas.predicates import Predicate
from schemas.wire import Timestamp


class OfferIn(Schema):
    """An offer as written over the API; the path names it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    placements: list[str] = Field(min_length=1)
    """Where it may be shown (`cart-email`, `store-push`)."""
    priority: int = 0
    score: float = 0.0
    """A model's propensity score, for `ranking.by: score`."""
    fields: dict[str, Any] = Field(default_factory=dict)
    """What templates show and formulas use: title, image, discount, margin..."""
    eligibility: Predicate | None = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    cap_per_customer: int | None = Field(default=None, ge=1)
    cap_total: int | None = Field(default=None, ge=1)


class Offer(OfferIn):
    id: str = Field(pattern=SLUG)


class DecisionRequest(Schema):
    """`key` makes a retried request return the first answer (and count caps once)."""

    customer_id: str
    placement: str
    limit: int = Field(default=1, ge=1, le=50)
    ranking: Ranking = Field(default_factory=Ranking)
    event: dict[str, Any] | None = None
    last_event: dict[str, Any] | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    """Eligibility and formulas see `profile`, `event`, `last_event` and `context`."""
    at: Timestamp | None = None
    """The moment to decide at (the enrollment's clock); default now."""
    key: str | None = None
    dry_run: StrictBool = False
    """Rank without counting against caps."""


class Chosen(Schema):
    id: str
    name: str
    fields: dict[str, Any]
    rank: int
    value: float
    reason: str


class Dropped(Schema):
    id: str
    reason: str


class DecisionResult(Schema):
    placement: str
    offers: list[Chosen]
    dropped: list[Dropped] = Field(default_factory=list)

    def for_context(self) -> dict[str, Any]:
        """What a `decide` step keeps in the enrollment's context (not the dropped list)."""
        offers = [o.model_dump(mode="json", exclude={"reason", "value"}) for o in self.offers]
        return {"placement": self.placement, "offers": offers, "top": offers[0] if offers else None}
