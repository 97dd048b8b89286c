"""What a message template refers to, checked when a journey is published.

Templates see `profile`, `event`, `last_event`, `context` and `unsubscribe_url`. A name
outside those, a profile field that does not exist, or `context.decisions.X` /
`context.actions.X` / `context.steps.X` / `context.splits.X` without a step X of that kind
in the journey would fail at send time; publishing reports it with the step and field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from journeys.schemas.profile import Profile

ROOTS = ("profile", "event", "last_event", "context", "unsubscribe_url")
CONTEXT_KINDS = {"decisions": "decide", "actions": "action", "steps": "send", "splits": "split"}
_env = SandboxedEnvironment()


def syntax_error(source: str) -> str | None:
    """Why `source` is not a template, or None."""
    try:
        _env.parse(source)
    except TemplateSyntaxError as err:
        return f"template syntax: {err.message} (line {err.lineno})"
    return None


def problems(source: str, steps: Mapping[str, str]) -> list[str]:
    """What in `source` cannot render in a journey whose steps are `steps` (id -> type)."""
    if (error := syntax_error(source)) is not None:
        return [error]
    tree = _env.parse(source)
    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    found: list[str] = []
    for path in _paths(tree):
        if path[0] in local:
            continue
        problem = _check(path, steps)
        if problem and problem not in found:
            found.append(problem)
    return found


def reads_sends(sources: Mapping[str, str]) -> bool:
    """Whether any of a message's fields refers to `context.steps` (earlier sends'
    outcomes), which a send's request leaves out (it would grow with every send)."""
    for source in sources.values():
        if syntax_error(source) is None and "steps" in source:
            paths = _paths(_env.parse(source))
            if any(p[:2] == ["context", "steps"] for p in paths):
                return True
    return False


def _check(path: list[str], steps: Mapping[str, str]) -> str | None:
    root, rest = path[0], path[1:]
    if root not in ROOTS:
        return f"unknown variable '{root}' (templates see {', '.join(ROOTS)})"
    if root == "profile" and rest and rest[0] not in Profile.model_fields:
        return f"'profile.{rest[0]}' is not a profile field (custom data: profile.attributes.*)"
    if root == "context" and rest:
        kind = CONTEXT_KINDS.get(rest[0])
        if kind is None:
            return f"'context.{rest[0]}' does not exist (context has {', '.join(CONTEXT_KINDS)})"
        if len(rest) > 1 and steps.get(rest[1]) != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            return (
                f"'context.{rest[0]}.{rest[1]}' needs {article} {kind} step '{rest[1]}' "
                "in this journey"
            )
    return None


def _paths(tree: nodes.Node) -> Iterator[list[str]]:
    """Every variable reference as a dotted path: `a.b['c']` -> [a, b, c]. A chain is
    reported once, from its outermost node."""
    inner: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        inner.add(id(node.node))  # type: ignore[attr-defined]
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if id(node) in inner or (isinstance(node, nodes.Name) and node.ctx != "load"):
            continue
        path: list[str] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                path.append(current.attr)
            elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str):
                path.append(current.arg.value)
            else:
                path.clear()  # a computed key: only the part before it is known
            current = current.node
        if isinstance(current, nodes.Name):
            yield [current.name, *reversed(path)]
