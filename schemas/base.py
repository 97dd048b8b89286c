"""The base of every API and workflow model: a field's docstring is its description in the
OpenAPI document (and the JSON Schema a journey is checked against)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)
