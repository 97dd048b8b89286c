"""`JourneySpec`: a journey as versioned, validated data.

Engineers build it in Python with these typed classes (each step kind is a class), and it
serialises to exactly the JSON of the public contract, so the same journey can be published
over the API, diffed and linted. Graph checks live in `schemas.validation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from journeys.schemas.base import Schema
from journeys.schemas.formula import parse
from journeys.schemas.guardrails import Channel, FrequencyCap, QuietHours, Topic
from journeys.schemas.pace import Pace
from journeys.schemas.predicates import Predicate, fields
from journeys.schemas.reactions import Reaction, event_name
from journeys.schemas.wire import Duration
from journeys.schemas.zones import TimeZone

SLUG = r"^[a-z0-9][a-z0-9_\-]{0,79}$"
StepId = Annotated[str, Field(pattern=SLUG)]
BEST_CHANNEL = "best_channel"
MAX_STEPS = 1000
MAX_ARMS = 10
"""Arms a split may have (MoEngage stops at 5; more dilutes every arm's sample)."""
CONTROL = "control"
"""The arm a send step's own content is, in a content experiment."""
HOLDOUT = "holdout"
"""The experiment name of a journey's holdout (`holdout:control` in `JourneyReached`)."""
"""Steps a journey may have: the longest journey tested end to end (tests/test_long_journeys.py);
each step costs its funnel a count, and validation a walk."""
SendChannel = Literal[Channel, "best_channel"]


class _Model(Schema):
    model_config = ConfigDict(extra="forbid")


class _Step(_Model):
    """What every step has: an id, and its outgoing edges (the one place a step type says
    where it can lead; validation, funnels and diagrams read them)."""

    id: StepId
    """The step's id (unique in the journey)."""
    waits: ClassVar[bool] = False
    """Durable time passes in it (a cycle must go through such a step)."""

    def edges(self) -> list[tuple[str, str]]:
        """(field, target step id) for every outgoing edge."""
        raise NotImplementedError

    def instant(self) -> bool:
        """It runs without a timer or an activity (the interpreter lets the next step's
        search-attribute upsert carry it)."""
        return False


def _next_and(next: str, **optional: str | None) -> list[tuple[str, str]]:
    return [("next", next), *((f, t) for f, t in optional.items() if t)]


class EventCondition(_Model):
    """An event name plus an optional filter over its properties (`event.*`)."""

    event: str = Field(min_length=1)
    """The event's name."""
    where: Predicate | None = None
    """Only events matching this predicate count."""


class Audience(_Model):
    """Who an audience entry enrols: the profiles that match `where` (a predicate over
    `profile.*`), or the customers of an uploaded list (`PUT /v1/audiences/{list}`)."""

    where: Predicate | None = None
    """Customers whose profile matches (a predicate over `profile.*`)."""
    list: str | None = Field(default=None, pattern=SLUG)
    """Or an uploaded list's id."""
    rate_per_second: float = Field(default=200.0, gt=0, le=10_000)
    """How fast enrollments start: a brand's own systems and providers set the pace."""

    @model_validator(mode="after")
    def _one_source(self) -> Audience:
        if (self.where is None) == (self.list is None):
            raise ValueError("an audience is either `where` (a profile predicate) or `list`")
        return self


class Schedule(_Model):
    """When a scheduled audience entry runs: a cron expression or a fixed interval."""

    cron: str | None = Field(default=None, min_length=9, max_length=200)
    """A cron expression."""
    every: Duration | None = None
    """Or an interval."""
    timezone: TimeZone = "UTC"
    """The time zone the cron expression is in."""

    @model_validator(mode="after")
    def _one_rule(self) -> Schedule:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule is either `cron` or `every`")
        return self


class Entry(_Model):
    """How customers enter: an event (when `where` holds over its properties), or an
    audience enrolled at a set rate, once on request or on a `schedule`."""

    event: str | None = Field(default=None, min_length=1)
    """The event that enters a customer."""
    where: Predicate | None = None
    """Only events matching this predicate enter."""
    audience: Audience | None = None
    """Or an audience, enrolled by an audience run."""
    schedule: Schedule | None = None
    """When to enrol the audience again and again."""

    @model_validator(mode="after")
    def _one_way_in(self) -> Entry:
        if (self.event is None) == (self.audience is None):
            raise ValueError("an entry is either an `event` or an `audience`")
        if self.where is not None and self.event is None:
            raise ValueError("`where` filters an entry event; an audience has its own `where`")
        if self.schedule is not None and self.audience is None:
            raise ValueError("a `schedule` runs an audience entry")
        return self


UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob"})


def unsafe_link(url: str) -> str | None:
    """Why a message's link would run or read something in the app or page that shows
    it, or None. Browsers ignore control characters, spaces and case in a scheme: so do we."""
    bare = "".join(c for c in url if c > " ").lower()
    scheme = bare.split(":", 1)[0] if ":" in bare else ""
    if scheme in UNSAFE_SCHEMES:
        return f"a message's link may not be a {scheme}: URL"
    return None


class MessageContent(_Model):
    """Inline message content; each channel uses the fields it needs."""

    subject: str | None = None
    """The email subject (Jinja)."""
    title: str | None = None
    """The title of a push or in-app message (Jinja)."""
    body: str = ""
    """The text (Jinja)."""
    html: str | None = None
    """An email's HTML part (Jinja, autoescaped)."""
    url: str | None = None
    """Where a tap or click leads (a web or app link; never `javascript:`, `data:`,
    `vbscript:` or `file:`, checked here and again once rendered)."""

    @model_validator(mode="after")
    def _safe_link(self) -> MessageContent:
        if self.url is not None and (why := unsafe_link(self.url)):
            raise ValueError(why)
        return self


class WaitStep(_Step):
    """Wait a duration, or until a local time of day in the customer's time zone."""

    type: Literal["wait"] = "wait"
    """`wait`."""
    duration: Duration | None = None
    """How long (ISO 8601: `P1D`, `PT2H`)."""
    until_local_time: time | None = None
    """Then until this time of day in the customer's time zone."""
    next: StepId
    """The step after it."""
    waits: ClassVar[bool] = True

    def edges(self) -> list[tuple[str, str]]:
        """The step after the wait."""
        return [("next", self.next)]

    @model_validator(mode="after")
    def _one_kind(self) -> WaitStep:
        if (self.duration is None) == (self.until_local_time is None):
            raise ValueError("a wait needs exactly one of 'duration' or 'until_local_time'")
        if self.duration is not None and self.duration.total_seconds() < 0:
            raise ValueError("'duration' must not be negative")
        return self


class WaitForEventStep(_Step):
    """Wait for an event (with a property filter) up to a timeout; absence is the timeout."""

    type: Literal["wait_for_event"] = "wait_for_event"
    """`wait_for_event`."""
    event: str = Field(min_length=1)
    """The event to wait for."""
    where: Predicate | None = None
    """Only events matching this predicate count."""
    timeout: Duration
    on_event: StepId
    """The step when it comes."""
    on_timeout: StepId
    """The step when it does not come in time."""
    waits: ClassVar[bool] = True

    def edges(self) -> list[tuple[str, str]]:
        """`on_event` and `on_timeout`."""
        return [("on_event", self.on_event), ("on_timeout", self.on_timeout)]


class WaitForReactionStep(_Step):
    """Wait for what the customer does with a message an earlier send step sent: "not
    opened within 3 days" is the timeout. The reaction is that step's own last message
    (no predicate over ids); a message that was not sent (suppressed, failed) can have no
    reaction, so the wait takes `on_timeout` at once."""

    type: Literal["wait_for_reaction"] = "wait_for_reaction"
    """`wait_for_reaction`."""
    send: StepId
    """The send step whose message it is."""
    reaction: Reaction = "opened"
    """`opened`, `clicked`, `delivered`, `replied`, `bounced`, `complained`, `failed` or
    `unsubscribed`: what the send's channel can report."""
    link: str | None = Field(default=None, min_length=1, max_length=2000)
    """For `clicked`: only a click on this link (the URL as written) counts."""
    count_machine: bool = False
    """Whether an open or click by a machine (a mail privacy proxy, a link scanner) counts."""
    timeout: Duration
    on_reaction: StepId
    """The step when it comes."""
    on_timeout: StepId
    """The step when it does not come in time (or the message was not sent)."""
    waits: ClassVar[bool] = True

    def edges(self) -> list[tuple[str, str]]:
        """`on_reaction` and `on_timeout`."""
        return [("on_reaction", self.on_reaction), ("on_timeout", self.on_timeout)]

    @property
    def event(self) -> str:
        """The reaction's event name (`message.opened`)."""
        return event_name(self.reaction)


class BranchCase(_Model):
    """One case of a branch: where customers go when `when` holds."""

    when: Predicate
    """The predicate; `profile.*`, `group.*`, `event.*`, `last_event.*`, `context.*`."""
    next: StepId
    """The step when it holds."""


class BranchStep(_Step):
    """The first case whose predicate holds wins; otherwise `default`."""

    type: Literal["branch"] = "branch"
    """`branch`."""
    cases: list[BranchCase] = Field(min_length=1)
    """Tried in order."""
    default: StepId
    """The step when no case holds."""

    def edges(self) -> list[tuple[str, str]]:
        """Each case's target, then `default`."""
        found = [(f"cases.{i}.next", c.next) for i, c in enumerate(self.cases)]
        return [*found, ("default", self.default)]

    def profile_fields(self) -> list[str]:
        """The profile (and group) fields its cases read: fetched by one activity."""
        read = {f for c in self.cases for f in fields(c.when)}
        return sorted(f for f in read if f.startswith(("profile", "group")))

    def instant(self) -> bool:
        """A branch that reads no profile field decides without an activity."""
        return not self.profile_fields()


class SplitPath(_Model):
    """One arm of a split: its share of customers and where they go."""

    name: str = Field(pattern=SLUG)
    """The arm's name, as reports and `JourneyReached` (`split:arm`) show it."""
    weight: float = Field(gt=0)
    """Its share of customers (relative to the other arms)."""
    next: StepId
    """The arm's first step."""


class SplitStep(_Step):
    """Weighted paths (experiments, holdouts), assigned by a stable hash of
    (journey, step, customer) so assignment is reproducible.

    `mode: bandit` moves traffic to the arm that converts best (the journey's goal) by
    Thompson sampling: the weights come from one activity, recomputed from the arms'
    exposures and conversions at least every minute, and recorded in the enrollment's
    history, so a replay or a worker crash never re-rolls an arm. Every arm keeps at least
    `exploration` of the traffic, and the weights hold until each arm has `min_sample`
    exposures."""

    type: Literal["split"] = "split"
    """`split`: a random, sticky A/B split."""
    paths: list[SplitPath] = Field(min_length=1, max_length=MAX_ARMS)
    """The arms."""
    mode: Literal["fixed", "bandit"] = "fixed"
    """`fixed`: the weights as written; `bandit`: Thompson sampling on the goal."""
    exploration: float = Field(default=0.05, ge=0, le=0.5)
    """For a bandit: the least share each arm keeps."""
    min_sample: int = Field(default=100, ge=1, le=1_000_000)
    """For a bandit: exposures every arm needs before the weights move."""
    control: str | None = Field(default=None, pattern=SLUG)
    """The arm the others are compared with (default: the first)."""
    window: Duration | None = Field(default=None, gt=timedelta(0), le=timedelta(days=365))
    """The attribution window: a conversion counts for the arm only within this time of
    taking it, and an enrollment that ends sooner keeps watching for the goal until it is
    over, so every arm has the same time to convert. None: while enrolled."""

    def edges(self) -> list[tuple[str, str]]:
        """Each arm's target."""
        return [(f"paths.{i}.next", p.next) for i, p in enumerate(self.paths)]

    def instant(self) -> bool:
        """A fixed split decides from the customer id alone; a bandit asks for weights."""
        return self.mode == "fixed"


class ContentVariant(_Model):
    """One version of a send's message, in a content experiment."""

    name: str = Field(pattern=SLUG)
    """The variant's name, as reports show it."""
    weight: float = Field(default=1.0, gt=0)
    """Its share of customers, relative to the control's 1."""
    template: str | None = Field(default=None, pattern=SLUG)
    """A stored template's id (or `content`)."""
    content: MessageContent | None = None
    """The message itself (or `template`)."""

    @model_validator(mode="after")
    def _template_or_content(self) -> ContentVariant:
        if (self.template is None) == (self.content is None):
            raise ValueError("a variant needs exactly one of 'template' or 'content'")
        return self


class SendStep(_Step):
    """Send one message. `next` is taken when sent; `on_suppressed` / `on_failed` default
    to `next` so a journey continues unless it says otherwise.

    Guardrails: a marketing send (the default `topic`) needs marketing consent, counts
    against the frequency caps and waits out quiet hours; when capped it is suppressed, or
    with `when_capped: defer` waits for the cap to free. A send waits at most `max_delay`
    (quiet hours, caps) before it is suppressed as expired. `best_channel` tries the
    customer's preferred channel, then `fallbacks`, skipping channels without consent or
    address. `send_at: best_time` first waits for the customer's usual active hour, at most
    `best_time_within` away.
    """

    type: Literal["send"] = "send"
    """`send`."""
    channel: SendChannel
    """`email`, `sms`, `whatsapp`, `push`, `in_app`, `webhook`, or `best_channel`."""
    fallbacks: list[Channel] = Field(default_factory=list)
    """For `best_channel`: channels to try after the preferred one."""
    template: str | None = Field(default=None, pattern=SLUG)
    """A stored template's id (or `content`)."""
    content: MessageContent | None = None
    """The message itself (or `template`)."""
    topic: Topic = "marketing"
    """`marketing` (capped, consent, quiet hours) or `transactional`."""
    when_capped: Literal["suppress", "defer"] = "suppress"
    """`suppress` the send, or `defer` it until the cap frees."""
    max_delay: Duration = Field(default=timedelta(days=7), gt=timedelta(0))
    send_at: Literal["now", "best_time"] = "now"
    """`now`, or `best_time`: the customer's usual active hour."""
    best_time_within: Duration = Field(default=timedelta(hours=24), gt=timedelta(0))
    next: StepId
    """The step after a send."""
    on_suppressed: StepId | None = None
    """The step after a suppression; default: `next`."""
    on_failed: StepId | None = None
    """The step after a failure; default: `next`."""
    variants: list[ContentVariant] = Field(default_factory=list, max_length=MAX_ARMS - 1)
    """A content experiment: other versions of the message (a subject line, a body). The
    step's own `template` or `content` is the arm named `control` (weight 1); each customer
    gets one, by a stable hash, and keeps it."""
    pace: Pace | None = None
    """This step's own send rate, instead of the journey's `pace`."""
    metric: Literal["goal", "opened", "clicked"] = "goal"
    """What the variants are judged on: the journey's goal, or the message's opens or
    clicks (by people; machines' are apart)."""

    def edges(self) -> list[tuple[str, str]]:
        """`next`, and `on_failed` where set."""
        return _next_and(self.next, on_suppressed=self.on_suppressed, on_failed=self.on_failed)

    def arms(self) -> list[ContentVariant]:
        """The content experiment's arms, the control first (none without variants)."""
        if not self.variants:
            return []
        own = ContentVariant(name=CONTROL, template=self.template, content=self.content)
        return [own, *self.variants]

    @model_validator(mode="after")
    def _template_or_content(self) -> SendStep:
        if (self.template is None) == (self.content is None):
            raise ValueError("a send needs exactly one of 'template' or 'content'")
        names = [v.name for v in self.variants]
        if CONTROL in names or len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique and not '{CONTROL}'")
        if self.channel == BEST_CHANNEL and not self.fallbacks:
            raise ValueError("'best_channel' needs 'fallbacks' for customers without a preference")
        return self


def channel_candidates(channel: str, fallbacks: Sequence[str], preferred: str | None) -> list[str]:
    """The channels a send tries, in order: a named channel alone, or for `best_channel`
    the customer's preferred channel, then the fallbacks."""
    if channel != BEST_CHANNEL:
        return [channel]
    return list(dict.fromkeys([*([preferred] if preferred else []), *fallbacks]))


class Ranking(_Model):
    """How eligible offers are ordered: by `priority` (highest first), by a `formula` over
    `offer.*`, `profile.*` and `context.*` (arithmetic only, e.g.
    `offer.fields.margin * 2 + profile.attributes.affinity`), or by the offer's `score`."""

    by: Literal["priority", "formula", "score"] = "priority"
    """`priority`, `formula` or `score`."""
    formula: str | None = None
    """For `formula`: an arithmetic expression over offer fields and the profile."""

    @model_validator(mode="after")
    def _formula_when_needed(self) -> Ranking:
        if (self.by == "formula") != (self.formula is not None):
            raise ValueError("'formula' is required with by: formula, and only then")
        if self.formula is not None:
            parse(self.formula)
        return self


class DecideStep(_Step):
    """Ask the decisioning service for the best `limit` offers for `placement`. The result
    is in `context.decisions.<step id>` (`offers`, and `top`, the first or null) for later
    steps and templates; with no eligible offer the enrollment takes `on_empty`."""

    type: Literal["decide"] = "decide"
    """`decide`."""
    placement: str = Field(min_length=1, max_length=80)
    """Where the offers will show."""
    limit: int = Field(default=1, ge=1, le=20)
    """How many offers to pick."""
    ranking: Ranking = Field(default_factory=Ranking)
    """How to rank them; default: by priority."""
    next: StepId
    """The step after it (templates read `context.<id>.offers`)."""
    on_empty: StepId | None = None
    """The step when no offer is eligible; default: `next`."""

    def edges(self) -> list[tuple[str, str]]:
        """`next`, and `on_empty` where set."""
        return _next_and(self.next, on_empty=self.on_empty)


class UpdateProfileStep(_Step):
    """Set profile attributes (null removes one) and optionally the lifecycle stage."""

    type: Literal["update_profile"] = "update_profile"
    """`update_profile`."""
    attributes: dict[str, Any] = Field(default_factory=dict)
    """Attributes to set (null removes one)."""
    lifecycle_stage: str | None = None
    """The lifecycle stage to set."""
    next: StepId
    """The step after it."""

    def edges(self) -> list[tuple[str, str]]:
        """The step after the update."""
        return [("next", self.next)]

    @model_validator(mode="after")
    def _something(self) -> UpdateProfileStep:
        if not self.attributes and self.lifecycle_stage is None:
            raise ValueError("an update_profile step needs 'attributes' or 'lifecycle_stage'")
        return self


class HttpCall(_Model):
    """An HTTP endpoint an `action` step calls with a JSON body (default: the enrollment's
    customer, journey, step, trigger event and context); a JSON answer is the output."""

    url: str = Field(pattern=r"^https?://")
    """Where to call (egress policy applies)."""
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    """The HTTP method."""
    body: dict[str, Any] | None = None
    """The JSON body (Jinja in its strings)."""


class RateLimit(_Model):
    """At most `limit` calls per `per`, across the worker's enrollments."""

    limit: int = Field(ge=1)
    """Calls per second at most."""
    per: Duration = Field(gt=timedelta(0))


class ActionStep(_Step):
    """Call a registered Python action (`activity`) or an HTTP endpoint (`http`). Its
    output is in `context.actions.<step id>`. `rate_limit` caps calls per worker across
    every enrollment of this step; calls over it wait their turn."""

    type: Literal["action"] = "action"
    """`action`."""
    activity: str | None = Field(default=None, min_length=1, max_length=80)
    """A registered action handler's name (JOURNEYS_ACTION_MODULES)."""
    http: HttpCall | None = None
    """Or an HTTP call to make."""
    input: dict[str, Any] = Field(default_factory=dict)
    """What the action receives (besides the enrollment's event and context)."""
    rate_limit: RateLimit | None = None
    """At most this many calls per second across all enrollments."""
    timeout: Duration = Field(default=timedelta(seconds=30), gt=timedelta(0))
    next: StepId
    """The step after it."""
    on_failed: StepId | None = None
    """The step after a failure; default: `next`."""

    def edges(self) -> list[tuple[str, str]]:
        """`next`, and `on_failed` where set."""
        return _next_and(self.next, on_failed=self.on_failed)

    @model_validator(mode="after")
    def _one_target(self) -> ActionStep:
        if (self.activity is None) == (self.http is None):
            raise ValueError("an action needs exactly one of 'activity' or 'http'")
        return self


class ExitStep(_Step):
    """The end of the journey: the enrollment completes."""

    type: Literal["exit"] = "exit"
    """`exit`: the enrollment completes."""

    def edges(self) -> list[tuple[str, str]]:
        """No edges: an exit ends the enrollment."""
        return []


Step = Annotated[
    WaitStep
    | WaitForEventStep
    | WaitForReactionStep
    | BranchStep
    | SplitStep
    | SendStep
    | DecideStep
    | UpdateProfileStep
    | ActionStep
    | ExitStep,
    Field(discriminator="type"),
]
Reentry = Literal["never", "after_exit"]


class Holdout(_Model):
    """A control group: a share of entrants who enter (and are counted) but get nothing,
    kept for `window`, so the journey's lift over sending nothing can be measured."""

    share: float = Field(gt=0, le=0.5)
    """The share of entrants held out (0.1 is 10%)."""
    window: Duration = Field(gt=timedelta(0), le=timedelta(days=365))
    """The attribution window, from entry: a held-out customer stays enrolled this long,
    converting or not; a treated one who ends the journey sooner keeps watching for the
    goal until it is over. Either group's conversion counts only within it."""


class JourneySpec(_Model):
    """A whole journey. The first step listed is where an enrollment starts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "onboarding-nudge",
                    "name": "Onboarding nudge",
                    "entry": {"event": "registration.completed"},
                    "goal": {"event": "bag.club_added"},
                    "exit_when": [{"event": "unsubscribed"}],
                    "steps": [
                        {
                            "id": "wait-club",
                            "type": "wait_for_event",
                            "event": "bag.club_added",
                            "timeout": "P1D",
                            "on_event": "done",
                            "on_timeout": "push",
                        },
                        {
                            "id": "push",
                            "type": "send",
                            "channel": "best_channel",
                            "fallbacks": ["push", "in_app"],
                            "content": {"title": "Your bag is empty", "body": "Add your clubs."},
                            "next": "done",
                        },
                        {"id": "done", "type": "exit"},
                    ],
                }
            ]
        }
    )

    id: str = Field(pattern=SLUG)
    """The journey's id (a slug), stable across versions."""
    name: str = Field(min_length=1, max_length=200)
    """Its name, as operators see it."""
    description: str = ""
    """What it is for."""
    entry: Entry
    """How customers enter."""
    goal: EventCondition | None = None
    """The event that converts a customer (the enrollment ends as converted)."""
    exit_when: list[EventCondition] = Field(default_factory=list)
    """Events that end the enrollment wherever it is (an unsubscribe)."""
    holdout: Holdout | None = None
    """A control group that gets nothing (needs a `goal`)."""
    reentry: Reentry = "never"
    """`never` or `after_exit`."""
    priority: int = 0
    """When sends of several journeys contend for a customer's last free cap slots, the
    higher priority wins."""
    quiet_hours: QuietHours | None = None
    """Overrides the deployment's quiet hours (JOURNEYS_QUIET_HOURS) for this journey."""
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    """Caps on this journey's own marketing sends, on top of the global caps."""
    pace: Pace | None = None
    """The journey's own send rate (Braze's Canvas rate limit): sends over it wait their
    turn, across every worker; a send step's `pace` paces that step alone instead."""
    time_scale: float = Field(default=1.0, gt=0)
    """Test mode: every duration divided by this (1 in production)."""
    tracking: bool = True
    """Whether its emails carry an open pixel and tracked links (JOURNEYS_TRACKING off
    turns them off for every journey; a link marked `data-no-track` is never tracked)."""
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    """The steps; the first one runs first (at most `MAX_STEPS`)."""

    def step(self, step_id: str) -> Step:
        """The step with this id (StopIteration if there is none: validation forbids it)."""
        return next(s for s in self.steps if s.id == step_id)

    def listens_for(self) -> set[str]:
        """Event names an enrollment of this journey reacts to after entry."""
        return self.hears_from_anyone() | self.awaits_reactions()

    def hears_from_anyone(self) -> set[str]:
        """Event names its goal, exits and wait_for_event steps take, whatever caused them
        (a reaction to any journey's message among them)."""
        names = {c.event for c in self.exit_when}
        if self.goal:
            names.add(self.goal.event)
        names.update(s.event for s in self.steps if isinstance(s, WaitForEventStep))
        return names

    def awaits_reactions(self) -> set[str]:
        """Reaction event names its `wait_for_reaction` steps wait for: only reactions to
        this journey's own messages need reach its enrollments for those."""
        return {s.event for s in self.steps if isinstance(s, WaitForReactionStep)}

    def windowed(self) -> set[str]:
        """The experiments with an attribution window: the holdout, and splits with one."""
        found = {s.id for s in self.steps if isinstance(s, SplitStep) and s.window is not None}
        return found | ({HOLDOUT} if self.holdout is not None else set())

    def sends_marketing(self) -> bool:
        """Whether any of its sends counts against frequency caps (and so contends)."""
        return any(isinstance(s, SendStep) and s.topic == "marketing" for s in self.steps)

    def scaled(self, duration: timedelta) -> timedelta:
        """A duration as this journey runs it (test mode divides by `time_scale`)."""
        return duration / self.time_scale
