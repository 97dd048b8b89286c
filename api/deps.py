"""FastAPI dependencies as `Annotated` aliases; the app keeps one of each on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from api.routing import EventRouter
from schemas.settings import Settings
from storage.stores import Stores


def _stores(request: Request) -> Stores:
    return request.app.state.stores


def _client(request: Request) -> Client:
    return request.app.state.client


def _router(request: Request) -> EventRouter:
    return request.app.state.router


def _settings(request: Request) -> Settings:
    return request.app.state.settings


StoresDep = Annotated[Stores, Depends(_stores)]
ClientDep = Annotated[Client, Depends(_client)]
RouterDep = Annotated[EventRouter, Depends(_router)]
SettingsDep = Annotated[Settings, Depends(_settings)]
