"""Pydantic contracts shared by every layer: events, journey specs, profiles, deliveries, API
payloads. Pure data and pure functions only; nothing here performs I/O."""
