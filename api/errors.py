"""One error shape for every answer that is not a success: RFC 9457 problem details
(`application/problem+json`), with per-field `errors` and their paths. It never echoes what
the caller sent (no `input`, no values in messages), and an unexpected failure is a bare
500 whose details go to the log, not to the caller."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from journeys.schemas.base import Schema
from journeys.schemas.validation import JourneyInvalid
from journeys.storage.erase import CustomerErasing

ERASE_RETRY_SECONDS = 5
"""What a producer is told to wait when its event is for a customer being erased."""

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("journeys.api")


class FieldError(Schema):
    loc: list[str | int]
    """Where: `body`, `path`, `query` or `header`, then the field's path."""
    msg: str
    """What is wrong there, without the value sent."""


class Problem(Schema):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    """A URI naming the kind of problem; `about:blank` (the status says it)."""
    title: str
    """The HTTP status's phrase."""
    status: int
    """The HTTP status code."""
    detail: str
    """What went wrong, in one sentence (the first field's error, and how many more)."""
    errors: list[FieldError] = []
    """Each field in error, with where it is and why."""


def problem(
    status: int, msg: str, *loc: str | int, headers: dict[str, str] | None = None
) -> HTTPException:
    """An error to raise from a route: `msg` about the field at `loc`."""
    return HTTPException(status, detail=[{"loc": list(loc), "msg": msg}], headers=headers)


def respond(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=[FieldError(loc=list(e.get("loc", [])), msg=str(e["msg"])) for e in errors or []],
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _summary(errors: list[dict[str, Any]], fallback: str) -> str:
    if not errors:
        return fallback
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", []))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        errors = detail if isinstance(detail, list) else []
        text = str(detail) if isinstance(detail, str) else HTTPStatus(exc.status_code).phrase
        return respond(exc.status_code, _summary(errors, text), errors, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": _msg(e)} for e in exc.errors()]
        return respond(422, _summary(errors, "the request is invalid"), errors)

    @app.exception_handler(JourneyInvalid)
    async def _journey(_: Request, exc: JourneyInvalid) -> JSONResponse:
        errors = [p.as_detail() for p in exc.problems]
        return respond(422, _summary(errors, "the journey is invalid"), errors)

    @app.exception_handler(CustomerErasing)
    async def _erasing(_: Request, exc: CustomerErasing) -> JSONResponse:
        return respond(503, str(exc), None, headers={"Retry-After": str(ERASE_RETRY_SECONDS)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(500, "an unexpected error; it has been logged")


def _msg(error: Any) -> str:
    """Pydantic's message, without the submitted value some of them quote."""
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return str(error["msg"])
