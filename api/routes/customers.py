"""Customer profiles and what the customer received."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import StoresDep
from api.errors import problem
from api.models import ProfileIn
from schemas.delivery import Delivery, InboxMessage
from schemas.profile import Profile

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.put("/{customer_id}")
async def put_profile(customer_id: str, body: ProfileIn, stores: StoresDep) -> Profile:
    """Create or replace the customer's profile."""
    profile = Profile(customer_id=customer_id, **body.model_dump())
    await stores.profiles.put(profile)
    return profile


@router.get("/{customer_id}")
async def get_profile(customer_id: str, stores: StoresDep) -> Profile:
    profile = await stores.profiles.get(customer_id)
    if profile is None:
        raise problem(404, f"customer '{customer_id}' not found", "path", "customer_id")
    return profile


@router.get("/{customer_id}/deliveries")
async def deliveries(customer_id: str, stores: StoresDep) -> list[Delivery]:
    """Every message sent, suppressed or failed for the customer, oldest first."""
    return await stores.ledger.for_customer(customer_id)


@router.get("/{customer_id}/inbox")
async def inbox(customer_id: str, stores: StoresDep) -> list[InboxMessage]:
    """In-app messages, newest first."""
    return await stores.inbox.for_customer(customer_id)
