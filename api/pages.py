"""Cursor pagination, the same on every list: `?limit=` (1 to 1,000, 100 by default) and
`?cursor=` (the `next_cursor` of the page before). A cursor names the last item seen, not
a position, so items added or removed between pages neither repeat nor go missing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query

from journeys.api.errors import problem
from journeys.schemas.base import Schema

T = TypeVar("T")
Key = str | int

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=400,
        pattern=r"^[A-Za-z0-9_-]+=*$",
        description="The `next_cursor` of the page before; none for the first page.",
    ),
]


class Page(Schema, Generic[T]):
    """One page of a list."""

    items: list[T]
    """This page's items, in the list's order."""
    next_cursor: str | None = None
    """Pass it as `cursor` for the next page; null on the last page."""


def encode(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def decode(cursor: str, kind: type) -> Key:
    """The key a cursor names; 422 for anything this API did not hand out."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        key = None
    out_of_range = isinstance(key, int) and not -(2**63) <= key < 2**63  # (a row id is 64-bit)
    if not isinstance(key, kind) or isinstance(key, bool) or out_of_range:
        raise problem(422, "not a cursor this list gave out", "query", "cursor")
    return key  # type: ignore[return-value]


def paginate(
    items: Sequence[T],
    key: Callable[[T], Key],
    limit: int,
    cursor: str | None,
    *,
    newest_first: bool = False,
) -> Page[T]:
    """`items` (in the list's order, by `key`) after the cursor's, `limit` of them."""
    if cursor is not None and items:
        after = decode(cursor, type(key(items[0])))
        items = [i for i in items if (key(i) < after if newest_first else key(i) > after)]  # type: ignore[operator]
    shown = list(items[:limit])
    more = len(items) > limit
    return Page[T](items=shown, next_cursor=encode(key(shown[-1])) if more else None)
