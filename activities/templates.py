"""Sandboxed Jinja2 rendering of message content over profile, event and context."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from schemas.journey import MessageContent

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_html_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


class RenderError(ValueError):
    """A template that cannot render with this data; retrying cannot help."""


def render(content: MessageContent, scope: dict[str, Any]) -> dict[str, str]:
    """Each non-empty field rendered; HTML is autoescaped, text fields are not."""
    rendered: dict[str, str] = {}
    for name, source in content.model_dump(exclude_none=True).items():
        env = _html_env if name == "html" else _env
        try:
            rendered[name] = env.from_string(source).render(scope)
        except TemplateError as err:
            raise RenderError(f"{name}: {err}") from err
    return rendered
