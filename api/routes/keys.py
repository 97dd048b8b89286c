"""API keys (admin): create one (its token is shown once), list them, revoke one; and the
audit log of every change made with a key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from journeys.api.deps import StoresDep
from journeys.api.errors import problem
from journeys.api.pages import Cursor, Limit, Page, decode, paginate
from journeys.schemas.access import AuditEntry, KeyCreated, KeyIn, KeyOut, requires

router = APIRouter(tags=["keys"])


@router.post("/v1/keys", status_code=status.HTTP_201_CREATED)
@requires("admin")
async def create_key(body: KeyIn, request: Request, stores: StoresDep) -> KeyCreated:
    """A new key with these scopes. The answer carries the token; only its hash is kept,
    so it cannot be shown again."""
    created = await stores.keys.create(body.name, body.scopes)
    request.state.audit = {"key_id": created.id, "name": created.name, "scopes": created.scopes}
    return created


@router.get("/v1/keys")
@requires("admin")
async def list_keys(stores: StoresDep, limit: Limit = 100, cursor: Cursor = None) -> Page[KeyOut]:
    """Every key, revoked ones included, with when it was last used (to the minute),
    oldest first."""
    found = await stores.keys.all()
    return paginate(found, lambda k: f"{k.created_at.isoformat()}|{k.id}", limit, cursor)


@router.delete("/v1/keys/{key_id}")
@requires("admin")
async def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="A key's id.")],
    request: Request,
    stores: StoresDep,
) -> KeyOut:
    """Revoke a key: it stops working within seconds on every API process. A key cannot
    revoke itself (so no one locks themselves out by mistake)."""
    caller = request.state.caller
    if caller.key_id == key_id:
        raise problem(409, "a key cannot revoke itself: use another admin key", "path", "key_id")
    revoked = await stores.keys.revoke(key_id)
    if revoked is None:
        raise problem(404, "no such key", "path", "key_id")
    return revoked


@router.get("/v1/audit")
@requires("admin")
async def audit(stores: StoresDep, limit: Limit = 100, cursor: Cursor = None) -> Page[AuditEntry]:
    """Changes made through the API, newest first: which key, when, what, from where."""
    before = int(decode(cursor, int)) if cursor else None
    found = await stores.audit.page(before=before, limit=limit + 1)
    return paginate(found, lambda e: e.id, limit, None, newest_first=True)
