"""Sandboxed Jinja2 rendering of message content over profile, event and context, within
limits: one template can neither block a worker nor make a message of any size.

Jinja's sandbox already refuses unsafe attributes and caps `range` at 100,000 items; on top,
every `for` loop checks a deadline as it iterates (the loop's iterable is wrapped when the
template is compiled), `*` and `**` refuse results past the size limit, and the output is
counted as it is generated. Rendering runs in a thread, off the worker's event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from journeys.schemas.journey import MessageContent

CHECK_EVERY = 256
"""Loop iterations between deadline checks."""


class _Undefined(StrictUndefined):
    """Printing or iterating a missing variable fails the send (a message must never go out
    with a hole in it), but `{% if event.coupon %}` is simply false."""

    def __bool__(self) -> bool:  # type: ignore[override]
        return False


class RenderError(ValueError):
    """A template that cannot render with this data; retrying cannot help."""


@dataclass(frozen=True)
class Limits:
    seconds: float = 1.0
    max_chars: int = 256 * 1024


_budget = threading.local()


def _check() -> None:
    if time.monotonic() > _budget.deadline:
        raise SecurityError(f"the template ran past its {_budget.seconds:g} s limit")


def _guarded(iterable: Iterable[Any]) -> Iterator[Any]:
    for count, item in enumerate(iterable):
        if count % CHECK_EVERY == 0:
            _check()
        yield item


class _Bounded(SandboxedEnvironment):
    """The sandbox, with every loop on the clock and sizes checked on `*` and `**`."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any):
        super().__init__(undefined=_Undefined, **options)
        self.globals["_guarded_iter"] = _guarded

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name("_guarded_iter", "load"), [loop.iter], [], None, None)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limit = _budget.max_chars
        if operator == "**" and isinstance(right, int | float):
            base = abs(left).bit_length() if isinstance(left, int) else 64
            if abs(right) > 64 or base * abs(right) > 65536:
                raise SecurityError("a power over 65536 bits")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                repeated = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if repeated and len(seq) * times > limit:
                    raise SecurityError(f"a repeated value over {limit} characters")
        return super().call_binop(context, operator, left, right)


_env = _Bounded(autoescape=False)
_html_env = _Bounded(autoescape=True)


def render(
    content: MessageContent, scope: dict[str, Any], limits: Limits = Limits()
) -> dict[str, str]:
    """Each non-empty field rendered; HTML is autoescaped, text fields are not. Past the
    time or size limit it raises `RenderError`, as for a template that cannot render."""
    _budget.seconds = limits.seconds
    _budget.max_chars = limits.max_chars
    _budget.deadline = time.monotonic() + limits.seconds
    rendered: dict[str, str] = {}
    for name, source in content.model_dump(exclude_none=True).items():
        env = _html_env if name == "html" else _env
        try:
            parts: list[str] = []
            size = 0
            for part in env.from_string(source).generate(scope):
                size += len(part)
                if size > limits.max_chars:
                    raise SecurityError(f"renders to over {limits.max_chars} characters")
                parts.append(part)
                _check()
            rendered[name] = "".join(parts)
        except (TemplateError, RecursionError, OverflowError, MemoryError) as err:
            raise RenderError(f"{name}: {err}") from err
    return rendered


async def render_off_loop(
    content: MessageContent, scope: dict[str, Any], limits: Limits
) -> dict[str, str]:
    """`render` in a thread, so the worker's event loop runs on meanwhile."""
    return await asyncio.to_thread(render, content, scope, limits)
