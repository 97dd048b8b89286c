"""Graph checks run when a journey is published: errors name the step and field.

Structure (types, required fields, unknown step kinds) is checked by pydantic while parsing;
this module checks what only the whole graph shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from journeys.schemas import reactions, templating
from journeys.schemas.egress import Policy
from journeys.schemas.journey import (
    BEST_CHANNEL,
    HOLDOUT,
    ActionStep,
    JourneySpec,
    MessageContent,
    SendStep,
    SplitStep,
    WaitForReactionStep,
)
from journeys.schemas.predicates import fields


@dataclass(frozen=True)
class Problem:
    """One error, located like a pydantic error: ("steps", 2, "next")."""

    loc: tuple[str | int, ...]
    msg: str

    def as_detail(self, prefix: tuple[str, ...] = ("body",)) -> dict[str, object]:
        return {"loc": [*prefix, *self.loc], "msg": self.msg, "type": "journey_invalid"}


class JourneyInvalid(ValueError):
    """Raised by `ensure_valid`; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))


def _loc(index: int, field: str) -> tuple[str | int, ...]:
    return ("steps", index, *(int(p) if p.isdigit() else p for p in field.split(".")))


def check_journey(
    spec: JourneySpec,
    *,
    channels: Iterable[str] | None = None,
    templates: Iterable[str] | None = None,
    egress: Policy | None = None,
) -> list[Problem]:
    """Every graph problem in `spec`. `channels`/`templates`, when given, are what the
    running system can deliver and render; sends naming others are errors. When
    `templates` maps ids to `Template`s, what each used template refers to is checked
    too (inline content always is). With `egress`, the URLs it will call (actions' and
    webhook sends') are judged as the worker will judge them."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.id in index:
            problems.append(Problem(("steps", i, "id"), f"step id '{step.id}' is used twice"))
        index.setdefault(step.id, i)

    for i, step in enumerate(spec.steps):
        for field, target in step.edges():
            if target not in index:
                problems.append(
                    Problem(_loc(i, field), f"step '{step.id}': unknown step id '{target}'")
                )

    audience = spec.entry.audience
    for field in sorted(fields(audience.where if audience else None)):
        if not field.startswith("profile."):
            problems.append(
                Problem(
                    ("entry", "audience", "where"),
                    f"an audience selects profiles: '{field}' must start with 'profile.'",
                )
            )
    problems += _experiments(spec)
    problems += _unreachable(spec, index)
    problems += _reactions(spec, index)
    problems += _loops_without_wait(spec, index)
    if egress is not None:
        problems += _refused_urls(spec, egress)

    known_channels = set(channels) if channels is not None else None
    known_templates = set(templates) if templates is not None else None
    for i, step in enumerate(spec.steps):
        if not isinstance(step, SendStep):
            continue
        named = [("channel", step.channel)] if step.channel != BEST_CHANNEL else []
        named += [(f"fallbacks.{k}", c) for k, c in enumerate(step.fallbacks)]
        for field, channel in named:
            if known_channels is not None and channel not in known_channels:
                problems.append(
                    Problem(
                        _loc(i, field),
                        f"step '{step.id}': channel '{channel}' is not configured "
                        f"(available: {', '.join(sorted(known_channels))})",
                    )
                )
        used: list[tuple[tuple[str | int, ...], str | None]]
        used = [(("steps", i, "template"), step.template)]
        used += [
            (("steps", i, "variants", k, "template"), v.template)
            for k, v in enumerate(step.variants)
        ]
        for at, template in used:
            if template and known_templates is not None and template not in known_templates:
                problems.append(
                    Problem(at, f"step '{step.id}': template '{template}' does not exist")
                )
        problems += _references(spec, i, step, templates)
    return problems


def _experiments(spec: JourneySpec) -> list[Problem]:
    """A holdout and a bandit measure the goal, so they need one; arm names are unique."""
    problems = []
    if spec.holdout is not None:
        if spec.goal is None:
            problems.append(Problem(("holdout",), "a holdout measures the goal: add a 'goal'"))
        if any(s.id == HOLDOUT for s in spec.steps):
            problems.append(
                Problem(("holdout",), f"with a holdout, no step may be named '{HOLDOUT}'")
            )
    for i, step in enumerate(spec.steps):
        if isinstance(step, SendStep) and step.variants and step.metric == "goal" and not spec.goal:
            problems.append(
                Problem(
                    _loc(i, "metric"),
                    f"step '{step.id}': its variants are judged on the goal: add a 'goal'",
                )
            )
        if not isinstance(step, SplitStep):
            continue
        names = [p.name for p in step.paths]
        if len(set(names)) != len(names):
            problems.append(
                Problem(_loc(i, "paths"), f"step '{step.id}': an arm name is used twice")
            )
        if step.control is not None and step.control not in names:
            problems.append(
                Problem(_loc(i, "control"), f"step '{step.id}': 'control' names no arm")
            )
        if step.mode == "bandit" and spec.goal is None:
            problems.append(
                Problem(
                    _loc(i, "mode"),
                    f"step '{step.id}': a bandit learns from the goal: add a 'goal'",
                )
            )
        if step.mode == "bandit" and len(step.paths) * step.exploration > 1:
            problems.append(
                Problem(
                    _loc(i, "exploration"),
                    f"step '{step.id}': the arms' exploration shares add up to more than 1",
                )
            )
    return problems


def _references(
    spec: JourneySpec, index: int, step: SendStep, templates: Iterable[str] | None
) -> list[Problem]:
    """Variables a send's content (and its variants') refers to that would not exist at
    send time."""
    kinds = {s.id: s.type for s in spec.steps}
    own: list[tuple[tuple[str | int, ...], str | None, MessageContent | None]]
    own = [(("steps", index), step.template, step.content)]
    own += [
        (("steps", index, "variants", k), v.template, v.content)
        for k, v in enumerate(step.variants)
    ]
    problems = []
    for at, template, content in own:
        if content is not None:
            sources = content.model_dump(exclude_none=True)
            located = {f: (*at, "content", f) for f in sources}
            named = {f: f"content {f}" for f in sources}
        elif isinstance(templates, Mapping) and template in templates:
            sources = templates[template].sources()
            located = {f: (*at, "template") for f in sources}
            named = {f: f"template '{template}' {f}" for f in sources}
        else:
            continue
        problems += [
            Problem(located[field], f"step '{step.id}': {named[field]}: {problem}")
            for field, source in sources.items()
            for problem in templating.problems(source, kinds)
        ]
    return problems


def _reactions(spec: JourneySpec, index: dict[str, int]) -> list[Problem]:
    """A reaction wait names a send step whose channels can report that reaction; a
    click is of a message with a link (an email's HTML or a URL to tap)."""
    problems: list[Problem] = []
    for i, step in enumerate(spec.steps):
        if not isinstance(step, WaitForReactionStep):
            continue
        send = spec.steps[index[step.send]] if step.send in index else None
        if not isinstance(send, SendStep):
            why = "is not a send step" if send is not None else "is no step of this journey"
            problems.append(Problem(_loc(i, "send"), f"step '{step.id}': '{step.send}' {why}"))
            continue
        channels: list[str] = [send.channel, *send.fallbacks]
        if send.channel == BEST_CHANNEL:  # the customer's preferred channel: any of them
            channels = list(reactions.CAN_REACT)
        able = [c for c in channels if step.reaction in reactions.CAN_REACT.get(c, ())]
        if not able:
            problems.append(
                Problem(
                    _loc(i, "reaction"),
                    f"step '{step.id}': a message of '{step.send}' "
                    f"({', '.join(channels)}) cannot be {step.reaction}",
                )
            )
        elif step.reaction == "clicked" and not _has_link(send):
            problems.append(
                Problem(
                    _loc(i, "reaction"),
                    f"step '{step.id}': the message of '{step.send}' has no link to click",
                )
            )
        if step.link is not None and step.reaction != "clicked":
            problems.append(Problem(_loc(i, "link"), f"step '{step.id}': 'link' is for clicks"))
    return problems


def _has_link(send: SendStep) -> bool:
    """Whether a send may carry a link: a template's is known only at send time; inline
    content needs an HTML part with an anchor, or a URL to tap."""
    if send.content is None:
        return True
    return bool(send.content.url) or "<a " in (send.content.html or "").lower()


def _unreachable(spec: JourneySpec, index: dict[str, int]) -> list[Problem]:
    seen: set[str] = set()
    stack = [spec.steps[0].id]
    while stack:
        current = stack.pop()
        if current in seen or current not in index:
            continue
        seen.add(current)
        stack.extend(target for _, target in spec.steps[index[current]].edges())
    return [
        Problem(("steps", i, "id"), f"step '{s.id}' is unreachable from the first step")
        for i, s in enumerate(spec.steps)
        if s.id not in seen and index.get(s.id) == i
    ]


def _loops_without_wait(spec: JourneySpec, index: dict[str, int]) -> list[Problem]:
    """A cycle through non-waiting steps would spin forever without durable time passing."""
    instant = {s.id: s for s in spec.steps if not s.waits}
    graph = {sid: [t for _, t in s.edges() if t in instant] for sid, s in instant.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    problems: list[Problem] = []
    # Depth first without recursion: a chain of a thousand instant steps is fine.
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        on_path = [root]
        pending = [iter(graph[root])]
        while pending:
            node = on_path[-1]
            target = next(pending[-1], None)
            if target is None:
                state[node] = 2
                on_path.pop()
                pending.pop()
            elif state.get(target) == 1:
                path = on_path[:-1]
                cycle = (
                    [*path[path.index(target) :], node, target]
                    if target in path
                    else [
                        node,
                        target,
                    ]
                )
                problems.append(
                    Problem(
                        ("steps", index[target], "id"),
                        "loop without a wait: "
                        + " -> ".join(dict.fromkeys(cycle))
                        + f" -> {target}",
                    )
                )
            elif target not in state:
                state[target] = 1
                on_path.append(target)
                pending.append(iter(graph[target]))
    return problems


def _refused_urls(spec: JourneySpec, egress: Policy) -> list[Problem]:
    """The URLs the egress policy will refuse: an action's `http.url`, and the `url` of a
    send that names the webhook channel (where that field is where the webhook goes; a
    best-channel send's `url` is the deep link of the channel it picks)."""
    found: list[tuple[tuple[str | int, ...], str, str]] = []
    for i, step in enumerate(spec.steps):
        if isinstance(step, ActionStep) and step.http is not None:
            found.append((("steps", i, "http", "url"), step.id, step.http.url))
        elif (
            isinstance(step, SendStep)
            and step.content
            and step.content.url
            and "webhook" in (step.channel, *step.fallbacks)
        ):
            found.append((("steps", i, "content", "url"), step.id, step.content.url))
    return [
        Problem(loc, f"step '{step_id}': {why}")
        for loc, step_id, url in found
        if (why := egress.refusal(url)) is not None
    ]


def ensure_valid(
    spec: JourneySpec,
    *,
    channels: Iterable[str] | None = None,
    templates: Iterable[str] | None = None,
    egress: Policy | None = None,
) -> JourneySpec:
    """Return `spec` unchanged, or raise `JourneyInvalid` listing every problem."""
    problems = check_journey(spec, channels=channels, templates=templates, egress=egress)
    if problems:
        raise JourneyInvalid(problems)
    return spec
