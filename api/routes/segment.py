"""Segment-compatible ingestion: `/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`,
`/v1/group`, `/v1/alias`, `/v1/batch` and `/v1/import` with Segment's payloads and write-key
Basic auth (any key with the `events:write` scope is a write key; `api.guard` checks it, and
inflates gzip bodies), so a backend already instrumented with a Segment library points its
host here and changes nothing else.

Answers 200 `{"success": true}` once every event is durably with Temporal (Segment's
libraries retry anything else); messages are de-duplicated by `messageId`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from journeys.api.deps import RouterDep, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.schemas.access import KB, requires
from journeys.schemas.events import CustomerEvent
from journeys.schemas.segment import CALLS, Rejected, SegmentAnswer, SegmentBatch, SegmentMessage
from journeys.usecases import routing

router = APIRouter(prefix="/v1", tags=["segment"])
ROUTED = ("track", "page", "screen")
IDENTITY = ("identify", "alias", "group")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise problem(400, "the body is not JSON", "body") from err
    if not isinstance(body, dict):
        raise problem(400, "the body must be a JSON object", "body")
    return body


def _parse(raw: dict[str, Any], loc: tuple[str | int, ...]) -> SegmentMessage:
    try:
        return SegmentMessage.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise problem(400, msg, "body", *loc, *first["loc"]) from err


async def _accept(
    messages: list[SegmentMessage],
    batch: list[CustomerEvent],
    events: RouterDep,
    stores: StoresDep,
    settings: SettingsDep,
) -> SegmentAnswer:
    """Identity calls first, each once by message id (a batch's later track may need the
    merge or the address they make): merges (`alias`, an `identify` with both ids), then
    `group` and `identify` for the customer each id stands for; then the track and page
    calls' events (`batch`, in order) through the one event path, which routes an
    anonymous id merged into a customer to them. A routed call's size is checked before
    anything is stored: by `batch` for each of its messages, by `ingest` for a single call
    (which has no identity work)."""
    identity = {m.message_id: m for m in messages if m.type in IDENTITY}
    if identity:
        new, pending = await stores.events.claim(list(identity))
        todo = [m for i, m in identity.items() if i in new or i in pending]
        for merging in (m.merge() for m in todo):
            if merging is not None:
                await stores.profiles.merge(*merging)
        for m in todo:
            if m.type == "group" and m.group_id:
                await stores.profiles.join_group(m.customer_id, m.group_id, m.traits)
        identifies = [m for m in todo if m.type == "identify"]
        try:
            await stores.profiles.change([(m.customer_id, m.profile_changes()) for m in identifies])
        except ValueError as err:  # nothing was written: the producer may fix and retry
            raise problem(400, f"identify: {err}", "body") from err
        await stores.events.routed(list(identity))
    if batch:
        try:
            await routing.ingest(
                batch,
                events,
                stores,
                settings.max_event_bytes,
                source="segment",
            )
        except routing.EventTooLarge as err:  # (ingest checks before it stores anything)
            raise problem(413, str(err), "body") from err
    return SegmentAnswer(accepted=len(messages))


def _single(kind: str) -> Any:
    @requires("events:write", max_body=32 * KB, gzip=True, basic=True)
    async def endpoint(
        request: Request, events: RouterDep, stores: StoresDep, settings: SettingsDep
    ) -> SegmentAnswer:
        body = await _body(request)
        message = _parse({**body, "type": kind}, ())
        batch = [message.to_event()] if message.type in ROUTED else []
        return await _accept([message], batch, events, stores, settings)

    endpoint.__name__ = kind
    endpoint.__doc__ = f"Segment's `{kind}` call."
    return endpoint


for _kind in CALLS:
    router.add_api_route(f"/{_kind}", _single(_kind), methods=["POST"], name=_kind)


@router.post("/batch")
@router.post("/import", name="import", description="Segment's import call: the same as batch.")
@requires("events:write", max_body=500 * KB, gzip=True, basic=True)
async def batch(
    request: Request, events: RouterDep, stores: StoresDep, settings: SettingsDep
) -> SegmentAnswer:
    """Segment's batch call: up to 2500 messages of any type. Valid messages are accepted;
    each invalid one (not an object, a bad field, over the event size) is reported in
    `rejected` by its index, as Segment does, since its libraries drop a batch answered 400."""
    body = await _body(request)
    try:
        parsed = SegmentBatch.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        raise problem(400, first["msg"], "body", *first["loc"]) from err
    messages: list[SegmentMessage] = []
    routed: list[CustomerEvent] = []  # the track and page calls' events, made once
    rejected: list[Rejected] = []
    for i, m in enumerate(parsed.batch):
        try:
            message = _message(m, parsed.context)
            event = message.to_event() if message.type in ROUTED else None
            if event is not None:
                routing.check_sizes([event], settings.max_event_bytes)
        except (HTTPException, routing.EventTooLarge) as err:
            rejected.append(_rejection(i, err))
            continue
        messages.append(message)
        if event is not None:
            routed.append(event)
    events.counts.add("refused", len(rejected), "segment")
    answer = await _accept(messages, routed, events, stores, settings)
    return answer.model_copy(update={"rejected": rejected})


def _message(raw: Any, batch_context: dict[str, Any]) -> SegmentMessage:
    if not isinstance(raw, dict):
        raise problem(400, "a message is an object")
    context = raw.get("context") or {}
    if not isinstance(context, dict):
        raise problem(400, "a message's context is an object", "context")
    return _parse({**raw, "context": {**batch_context, **context}}, ())


def _rejection(index: int, err: Exception) -> Rejected:
    if isinstance(err, HTTPException):
        detail: Any = err.detail
        [found] = detail
        loc = [p for p in found["loc"] if p != "body"]
        return Rejected(index=index, loc=loc, msg=found["msg"])
    return Rejected(index=index, loc=[], msg=str(err))
