"""The built-in decisioning service over HTTP: the offer catalogue and decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from journeys.api.deps import Slug, StoresDep
from journeys.api.errors import problem
from journeys.api.pages import Cursor, Limit, Page, paginate
from journeys.schemas.access import requires
from journeys.schemas.decision import DecisionRequest, DecisionResult, Offer, OfferIn

router = APIRouter(tags=["decisioning"])


@router.put("/v1/offers/{offer_id}")
@requires("journeys:write")
async def put_offer(offer_id: Slug, body: OfferIn, stores: StoresDep) -> Offer:
    """Create or replace an offer."""
    try:
        offer = Offer(id=offer_id, **body.model_dump())
    except ValueError as err:
        raise problem(422, "offer id must be a lowercase slug", "path", "offer_id") from err
    return await stores.offers.put(offer)


@router.get("/v1/offers")
@requires("read")
async def list_offers(
    stores: StoresDep,
    placement: Annotated[
        str | None, Query(max_length=80, description="Only this placement's.")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Offer]:
    """The offer catalogue, by id."""
    return paginate(await stores.offers.all(placement), lambda o: o.id, limit, cursor)


@router.get("/v1/offers/{offer_id}")
@requires("read")
async def get_offer(offer_id: Slug, stores: StoresDep) -> Offer:
    """One offer of the catalogue."""
    offer = await stores.offers.get(offer_id)
    if offer is None:
        raise problem(404, "no such offer", "path", "offer_id")
    return offer


@router.delete("/v1/offers/{offer_id}", status_code=204)
@requires("journeys:write")
async def delete_offer(offer_id: Slug, stores: StoresDep) -> None:
    """Take an offer out of the catalogue: decisions stop choosing it."""
    if not await stores.offers.delete(offer_id):
        raise problem(404, "no such offer", "path", "offer_id")


@router.post("/v1/decisions")
@requires("decide")
async def decide(
    body: DecisionRequest,
    stores: StoresDep,
    idempotency_key: Annotated[str | None, Header(max_length=600)] = None,
) -> DecisionResult:
    """The top offers for a placement and customer, with the reason for every offer
    chosen or dropped. An `Idempotency-Key` (or `key`) returns the first answer again
    and counts caps once."""
    if idempotency_key and not body.key:
        body = body.model_copy(update={"key": idempotency_key})
    return await stores.offers.decide(body)
