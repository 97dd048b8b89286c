"""Sandboxed Jinja2 rendering of message content over profile, event and context, within
limits: one template can neither block a worker nor make a message of any size.

Jinja's sandbox already refuses unsafe attributes and caps `range` at 100,000 items; on top,
every `for` loop checks a deadline as it iterates (the loop's iterable is wrapped when the
template is compiled), and whatever can build a large string in one step refuses a result
past the size limit before building it: `*`, `**` and `%`, the string methods that pad,
repeat or join (`ljust`, `rjust`, `center`, `zfill`, `expandtabs`, `format`,
`format_map`, `replace`, `join`) and the filters that do (`center`, `indent`, `format`,
`replace`, `join`). The output is counted as it is generated. Rendering runs in a thread,
off the worker's event loop.
"""

from __future__ import annotations

import asyncio
import re
import string
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from journeys.schemas.journey import MessageContent, unsafe_link

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


_PERCENT_WIDTHS = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SPEC_WIDTHS = re.compile(r"(\d+)")


def _too_big(size: int) -> None:
    if size > _budget.max_chars:
        raise SecurityError(f"a value over {_budget.max_chars} characters")


def _check_percent(template: str) -> None:
    """`template % args` with no field wider (or more precise) than the limit."""
    for width, precision in _PERCENT_WIDTHS.findall(template):
        for number in (width, precision):
            if number == "*":
                raise SecurityError("a `*` width in a % format")
            if number:
                _too_big(int(number))


def _check_format(template: str) -> None:
    """`template.format(...)` with no field wider than the limit (nested specs too)."""
    for _, _, spec, _ in string.Formatter().parse(template):
        if spec:
            if "{" in spec:
                raise SecurityError("a computed width in a format spec")
            for number in _SPEC_WIDTHS.findall(spec):
                _too_big(int(number))


def _check_str_call(method: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a string method call whose result would pass the size limit."""
    given = [*args, *kwargs.values()]
    if method in ("ljust", "rjust", "center", "zfill") and given:
        width = given[0]
        if isinstance(width, int):
            _too_big(width)
    elif method == "expandtabs":
        size = given[0] if given and isinstance(given[0], int) else 8
        _too_big(len(text) + text.count("\t") * max(size, 0))
    elif method in ("format", "format_map"):
        _check_format(text)
    elif method == "replace" and len(given) >= 2:
        old, new = given[0], given[1]
        if isinstance(old, str) and isinstance(new, str):
            times = text.count(old) if old else len(text) + 1
            _too_big(len(text) + times * max(len(new) - len(old), 0))
    elif method == "join" and given:
        _check_join(text, given[0])


def _check_join(separator: str, items: Any) -> None:
    if isinstance(items, list | tuple):
        total = sum(len(i) for i in items if isinstance(i, str))
        _too_big(total + len(separator) * max(len(items) - 1, 0))


class _Bounded(SandboxedEnvironment):
    """The sandbox, with every loop on the clock and sizes checked before a large string
    is built."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any):
        super().__init__(undefined=_Undefined, **options)
        self.globals["_guarded_iter"] = _guarded
        self._bound_filters()

    def _bound_filters(self) -> None:
        """Wrap the filters that pad, repeat or join with the same size checks."""
        center, indent, fmt = self.filters["center"], self.filters["indent"], self.filters["format"]
        replace, join = self.filters["replace"], self.filters["join"]

        def bounded_center(value: Any, width: int = 80) -> str:
            _too_big(int(width))
            return str(center(value, width))

        def bounded_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> str:
            text = str(value)
            pad = len(width) if isinstance(width, str) else int(width)
            _too_big(len(text) + pad * (text.count("\n") + 1))
            return str(indent(value, width, *args, **kwargs))

        def bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
            _check_percent(str(value))
            return str(fmt(value, *args, **kwargs))

        def bounded_replace(
            eval_ctx: Any, value: Any, old: str, new: str, count: int | None = None
        ) -> str:
            _check_str_call("replace", str(value), (str(old), str(new)), {})
            return str(replace(eval_ctx, value, old, new, count))

        def bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
            items = list(value)
            _check_join(str(d), [str(i) for i in items] if attribute is None else items)
            return str(join(eval_ctx, items, d, attribute))

        bounded_replace.jinja_pass_arg = replace.jinja_pass_arg  # type: ignore[attr-defined]
        bounded_join.jinja_pass_arg = join.jinja_pass_arg  # type: ignore[attr-defined]
        self.filters |= {
            "center": bounded_center,
            "indent": bounded_indent,
            "format": bounded_format,
            "replace": bounded_replace,
            "join": bounded_join,
        }

    def wrap_str_format(self, value: Any) -> Any:
        """`str.format`/`format_map` as Jinja's sandbox hands them to a template (a wrapper,
        not the bound method), with the format string's widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = str(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> Any:
            _check_format(template)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Every call a template makes: string methods are size-checked first."""
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_call(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name("_guarded_iter", "load"), [loop.iter], [], None, None)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limit = _budget.max_chars
        if operator == "%" and isinstance(left, str):
            _check_percent(left)
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
        if name == "url" and (why := unsafe_link(rendered[name])):
            raise RenderError(f"url: {why}")  # filled in from event data, say
    return rendered


async def render_off_loop(
    content: MessageContent, scope: dict[str, Any], limits: Limits
) -> dict[str, str]:
    """`render` in a thread, so the worker's event loop runs on meanwhile."""
    return await asyncio.to_thread(render, content, scope, limits)
