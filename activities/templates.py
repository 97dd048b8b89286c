"""Sandboxed Jinja2 rendering of message content over profile, event and context."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from schemas.journey import MessageContent


class _Undefined(StrictUndefined):
    """Printing or iterating a missing variable fails the send (a message must never go out
    with a hole in it), but `{% if event.coupon %}` is simply false."""

    def __bool__(self) -> bool:  # type: ignore[override]
        return False


_env = SandboxedEnvironment(undefined=_Undefined, autoescape=False)
_html_env = SandboxedEnvironment(undefined=_Undefined, autoescape=True)


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
