"""The FastAPI application, assembled around stores, a Temporal client and the router."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from temporalio.client import Client

from activities.keys import secret
from activities.unsubscribe import signing_key
from api import errors
from api.routes import (
    audiences,
    codec,
    customers,
    decisioning,
    enrollments,
    events,
    funnels,
    journeys,
    migrations,
    providers,
    segment,
    templates,
    unsubscribe,
)
from api.routing import EventRouter
from schemas.settings import Settings
from services.sandbox import Sandbox, build_router
from storage.stores import Stores
from workers.telemetry import instrument_app


def create_app(settings: Settings, stores: Stores, client: Client) -> FastAPI:
    app = FastAPI(
        title="Journeys",
        version="1",
        description="A durable customer-journey runner on Temporal. Publish journeys, send "
        "customer events, read what each customer received and where their enrollment is.",
    )
    app.state.settings = settings
    app.state.stores = stores
    app.state.client = client
    app.state.router = EventRouter(client, stores.journeys, task_queue=settings.task_queue)
    app.state.unsubscribe_key = signing_key(settings)
    errors.install(app)
    instrument_app(app, settings)
    # The Temporal UI calls the codec endpoint from the operator's browser.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.ui_origins(),
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        allow_credentials=True,
    )
    routes = (
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
        unsubscribe,
        decisioning,
    )
    for module in (*routes, providers):
        app.include_router(module.router)
    app.include_router(enrollments.bulk)
    if settings.sandbox:
        webhook_secret = secret(settings, settings.webhook_secret, "webhook")
        app.state.sandbox = Sandbox(settings, webhook_secret)
        app.include_router(build_router(app.state.sandbox))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
