"""The FastAPI application, assembled around stores, a Temporal client and the router."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from sqlalchemy import text
from starlette.middleware.trustedhost import TrustedHostMiddleware
from temporalio.client import Client

from journeys.api import access, errors, openapi
from journeys.api.browsers import CORSFor, SegmentErrors
from journeys.api.contract import Contract
from journeys.api.guard import Guard, Secrets
from journeys.api.headers import SecurityHeaders, csp, inline_scripts
from journeys.api.routes import (
    audiences,
    backtests,
    codec,
    customers,
    decisioning,
    enrollments,
    events,
    experiments,
    funnels,
    journeys,
    keys,
    migrations,
    pace,
    providers,
    segment,
    suppressions,
    templates,
    tracking,
    unsubscribe,
)
from journeys.clients.sns import SnsTrust
from journeys.runtime.health import answers, temporal_answers
from journeys.runtime.telemetry import instrument_app
from journeys.schemas.access import public
from journeys.schemas.segment import PATHS as segment_paths
from journeys.schemas.send_decision import Rules
from journeys.schemas.settings import Settings
from journeys.services.email_sandbox import SendGridSandbox, SesSandbox
from journeys.services.sandbox import Sandbox, build_router
from journeys.storage.secrets import secret, services_key, tracking_key, unsubscribe_key
from journeys.storage.stores import Stores
from journeys.usecases.backtest import Jobs
from journeys.usecases.funnels import Shared as SharedFunnels
from journeys.usecases.routing import EventRouter


def create_app(settings: Settings, stores: Stores, client: Client) -> FastAPI:
    app = FastAPI(
        title="Journeys",
        version="1",
        description="A durable customer-journey runner on Temporal. Publish journeys, send "
        "customer events, read what each customer received and where their enrollment is. "
        "Every route but a few public ones wants an API key with its scope: "
        "`Authorization: Bearer <key>`.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.stores = stores
    app.state.client = client
    app.state.funnels = SharedFunnels()
    app.state.backtests = Jobs(stores, Rules.of(settings))
    app.state.router = EventRouter(client, stores.journeys, task_queue=settings.task_queue)
    app.state.unsubscribe_key = unsubscribe_key(settings)
    app.state.tracking_key = tracking_key(settings)
    app.state.inbox_key = secret(settings, settings.inbox_secret, "inbox")
    errors.install(app)
    instrument_app(app, settings)
    codec_token = settings.codec_token
    app.add_middleware(
        Guard,
        routes=app,
        settings=settings,
        keys=stores.keys,
        audit=stores.audit,
        secrets=Secrets(
            services=services_key(settings),
            inbox=app.state.inbox_key,
            codec=codec_token.get_secret_value().encode() if codec_token else None,
        ),
        contract=Contract(lambda: app.openapi()),
    )
    app.add_middleware(SegmentErrors)
    app.add_middleware(SecurityHeaders)  # outside the guard: its refusals carry them too
    if settings.allowed_hosts is not None:  # DNS rebinding: the embedded default's open routes
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    # The Temporal UI calls the codec endpoint from the operator's browser; analytics.js
    # calls the Segment routes from customers' browsers.
    app.add_middleware(
        CORSFor,
        paths=["/codec/"],
        allow_origins=settings.ui_origins(),
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        allow_credentials=True,
    )
    app.add_middleware(
        CORSFor,
        paths=segment_paths,
        allow_origins=settings.segment_origins,
        allow_methods=["POST"],
        allow_headers=["content-type", "content-encoding", "authorization"],
    )
    # Outermost: a live message's pixel and links answered before any of the above.
    app.add_middleware(tracking.FastTracking, state=app.state)
    routes = (
        tracking,  # first: customers' mail clients call it most, and routes match in order
        backtests,  # before journeys: /v1/journeys/backtests is not a journey
        journeys,
        events,
        segment,
        audiences,
        codec,
        customers,
        templates,
        enrollments,
        migrations,
        funnels,
        experiments,
        pace,
        unsubscribe,
        suppressions,
        decisioning,
        keys,
    )
    for module in (*routes, providers):
        app.include_router(module.router)
    app.include_router(enrollments.bulk)
    app.state.sns = SnsTrust(settings)
    app.state.sendgrid_key = settings.sendgrid_webhook_public_key
    if settings.sandbox:
        app.state.sandbox = Sandbox(settings)
        app.include_router(build_router(app.state.sandbox))
        app.state.ses_sandbox = SesSandbox(settings)
        app.include_router(app.state.ses_sandbox.router())
        app.state.sendgrid_key = app.state.sendgrid_key or SendGridSandbox(settings).public_key()

    @app.get("/healthz", tags=["health"])
    @public()
    async def healthz() -> dict[str, str]:
        """Alive (the liveness probe): answers while the process serves at all."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
    @public()
    async def readyz() -> JSONResponse:
        """Ready (the readiness probe): the database and Temporal both answer within
        2 s. 503 names which does not (nothing more: no addresses, no errors)."""
        checks = await readiness(stores, client)
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", **checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    _offline_docs(app)
    openapi.install(app)
    access.table(app)  # refuses an app with a route that declares no access
    return app


DOCS = resources.files("fastapi_offline") / "static"


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from the pinned `fastapi-offline` package: no CDN."""

    @app.get("/docs", include_in_schema=False)
    @public()
    async def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Journeys API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )
        scripts = inline_scripts(bytes(page.body).decode())
        page.headers["Content-Security-Policy"] = csp(scripts=scripts)
        return page

    @app.get("/redoc", include_in_schema=False)
    @public()
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="Journeys API",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False,
        )

    files = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}

    @app.get("/static/docs/{name}", include_in_schema=False)
    @public()
    async def docs_file(name: str) -> FileResponse:
        if name not in files:
            raise errors.problem(404, "no such file", "path", "name")
        return FileResponse(str(DOCS / name))


async def readiness(stores: Stores, client: Client) -> dict[str, str]:
    """`ok` or `unreachable` for the database and for Temporal, asked concurrently."""

    async def database() -> None:
        async with stores.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return await answers({"database": database, "temporal": lambda: temporal_answers(client)})
