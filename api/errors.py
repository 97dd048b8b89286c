"""Errors in one shape, `{"detail": [{"loc": [...], "msg": "..."}]}`, and never a 500 for
bad input."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from schemas.validation import JourneyInvalid


def problem(status: int, msg: str, *loc: str | int) -> HTTPException:
    return HTTPException(status, detail=[{"loc": list(loc), "msg": msg}])


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if not isinstance(detail, list):
            detail = [{"loc": [], "msg": str(detail)}]
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(JourneyInvalid)
    async def _journey(_: Request, exc: JourneyInvalid) -> JSONResponse:
        return JSONResponse({"detail": [p.as_detail() for p in exc.problems]}, status_code=422)
