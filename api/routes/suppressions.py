"""The suppression list: addresses no message goes to (hard bounces, repeated soft
bounces, an operator's word). Reading it needs `read`; changing it `operate` (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from journeys.api.deps import StoresDep
from journeys.api.errors import problem
from journeys.api.pages import Cursor, Limit, Page, decode, encode
from journeys.schemas.access import requires
from journeys.schemas.suppression import SuppressedChannel, Suppression, SuppressionIn

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])
Address = Annotated[str, Path(min_length=3, max_length=320, description="The address.")]


@router.get("")
@requires("read")
async def list_suppressions(
    stores: StoresDep,
    channel: Annotated[SuppressedChannel | None, Query(description="One channel only.")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Suppression]:
    """Suppressed addresses, oldest first, with why and who said so."""
    after = int(decode(cursor, int)) if cursor is not None else None
    items, last = await stores.suppressions.page(channel, after, limit)
    return Page[Suppression](items=items, next_cursor=encode(last) if last is not None else None)


@router.post("", status_code=201, responses={200: {"description": "Already suppressed"}})
@requires("operate")
async def suppress(body: SuppressionIn, stores: StoresDep, response: Response) -> Suppression:
    """Suppress an address (`manual`): no message goes to it on that channel until it is
    taken off. 200 with the suppression as it was when the address already was on the
    list."""
    added = await stores.suppressions.add(
        body.channel, body.address, "manual", "operator", detail=body.detail
    )
    if not added:
        response.status_code = 200
    found = await stores.suppressions.get(body.channel, body.address)
    assert found is not None
    return found


@router.delete("/{channel}/{address}", status_code=204)
@requires("operate")
async def unsuppress(channel: SuppressedChannel, address: Address, stores: StoresDep) -> None:
    """Take an address off the list (its soft-bounce count too); 404 when it was not on
    it."""
    if not await stores.suppressions.remove(channel, address):
        raise problem(404, "this address is not suppressed", "path", "address")
