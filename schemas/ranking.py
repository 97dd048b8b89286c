"""The built-in decisioning service: rank a placement's offers for one customer.

`rank` is the pure decision (eligibility, caps, ranking, reasons); `storage.offers` keeps
the catalogue and counts grants in the same transaction as the decision; `router` serves
it as `POST /v1/decisions` plus the catalogue API. Production may point
`JOURNEYS_DECISIONING_URL` at another service with the same contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from journeys.schemas.decision import Chosen, DecisionRequest, DecisionResult, Dropped, Offer
from journeys.schemas.formula import evaluate as formula
from journeys.schemas.predicates import why_not


def rank(
    offers: Sequence[Offer],
    request: DecisionRequest,
    profile: dict[str, Any],
    *,
    at: datetime,
    mine: Mapping[str, int],
    totals: Mapping[str, int],
) -> DecisionResult:
    """The top `request.limit` eligible offers, best first; every other offer of the
    placement with why it was dropped. `mine`/`totals` are grants so far per offer."""
    scope = {
        "profile": profile,
        "event": request.event,
        "last_event": request.last_event,
        "context": request.context,
    }
    dropped: list[Dropped] = []
    scored: list[tuple[float, Offer]] = []
    for offer in offers:
        if request.placement not in offer.placements:
            continue
        reason = _ineligible(offer, scope, at, mine.get(offer.id, 0), totals.get(offer.id, 0))
        if reason:
            dropped.append(Dropped(id=offer.id, reason=reason))
            continue
        scored.append((_value(offer, request, scope), offer))
    scored.sort(key=lambda pair: (-pair[0], -pair[1].priority, pair[1].id))
    by = request.ranking.by
    chosen = [
        Chosen(
            id=o.id,
            name=o.name,
            fields=o.fields,
            rank=i + 1,
            value=value,
            reason=f"rank {i + 1} by {by} ({value:g})",
        )
        for i, (value, o) in enumerate(scored[: request.limit])
    ]
    dropped += [
        Dropped(id=o.id, reason=f"below the top {request.limit} by {by} ({value:g})")
        for value, o in scored[request.limit :]
    ]
    return DecisionResult(placement=request.placement, offers=chosen, dropped=dropped)


def _ineligible(
    offer: Offer, scope: dict[str, Any], at: datetime, mine: int, total: int
) -> str | None:
    if offer.starts_at and at < offer.starts_at:
        return f"not live until {offer.starts_at.isoformat()}"
    if offer.ends_at and at >= offer.ends_at:
        return f"ended at {offer.ends_at.isoformat()}"
    if offer.cap_per_customer is not None and mine >= offer.cap_per_customer:
        return f"capped for this customer ({mine}/{offer.cap_per_customer})"
    if offer.cap_total is not None and total >= offer.cap_total:
        return f"capped in total ({total}/{offer.cap_total})"
    failed = why_not(offer.eligibility, scope)
    return f"not eligible: {failed}" if failed else None


def _value(offer: Offer, request: DecisionRequest, scope: dict[str, Any]) -> float:
    ranking = request.ranking
    if ranking.by == "priority":
        return float(offer.priority)
    if ranking.by == "score":
        return offer.score
    assert ranking.formula is not None
    fields = {"id": offer.id, "priority": offer.priority, "score": offer.score}
    return formula(ranking.formula, {**scope, "offer": {**fields, "fields": offer.fields}})
