"""Connecting to Temporal with the converter every part of the system must share."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig

from journeys.runtime.codec import data_converter
from journeys.runtime.telemetry import interceptors, runtime
from journeys.schemas.settings import Settings
from journeys.workflows import search_attributes as sa


def connect_config(settings: Settings) -> ClientConnectConfig:
    """Where and how to reach Temporal, as every Temporal tool reads it
    (`temporalio.envconfig`): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, the
    TEMPORAL_TLS_* files for TLS and mTLS, or a profile of a config file (TEMPORAL_PROFILE,
    TEMPORAL_CONFIG_FILE); JOURNEYS_TEMPORAL_ADDRESS and _NAMESPACE, where set, win. A TLS
    file that cannot be read is a ConnectionError naming it."""
    try:
        config = ClientConfigProfile.load().to_client_connect_config()
    except OSError as err:
        raise ConnectionError(f"cannot read {err.filename}: {err.strerror}") from err
    config["target_host"] = (
        settings.temporal_address or config.get("target_host") or "127.0.0.1:7233"
    )
    config["namespace"] = settings.temporal_namespace or config.get("namespace") or "default"
    return config


async def connect(settings: Settings, config: ClientConnectConfig | None = None) -> Client:
    """A client with the shared converter; `config` as `connect_config` gives it."""
    return await Client.connect(
        **(config or connect_config(settings)),
        data_converter=data_converter(settings),
        interceptors=interceptors(settings),
        runtime=runtime(settings),
    )


def search_attribute_flags() -> list[str]:
    """`--search-attribute` arguments for `temporal server start-dev`."""
    kinds = {
        SearchAttributeIndexedValueType.INT: "Int",
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    }
    flags: list[str] = []
    for key in sa.ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type]}"]
    return flags


async def ensure_search_attributes(client: Client) -> None:
    """Register the journey search attributes on a cluster that lacks them."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in sa.ALL
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
