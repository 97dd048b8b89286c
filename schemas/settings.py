"""Runtime settings, read from `JOURNEYS_*` environment variables (or a `.env` file).

Secrets (SMTP password, database credentials in the URL) come from here, never from code.
"""

from __future__ import annotations

import json
import os
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from journeys.schemas.guardrails import FrequencyCap, QuietHours


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOURNEYS_",
        env_file=".env",
        extra="ignore",
        env_parse_none_str="null",
        populate_by_name=True,
    )

    data_dir: Path = Path(".journeys")
    """The only folder a process writes to: the SQLite database when no `database_url` is
    set, and the secrets `generate_secrets` makes."""
    api_key: SecretStr | None = None
    """The key the CLI calls the API with; default: the one `journeys up` keeps in
    `data_dir` (`api_key_file`)."""
    launcher: str = "journeys"
    """The command that runs this CLI, as messages name it (`./dev` sets `./dev`)."""
    test_temporal: str | None = None
    """The authors' kit uses this running Temporal (host:port) instead of starting its own
    time-skipping dev server."""
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    """OpenTelemetry's own switch (OTEL_SDK_DISABLED=true): no tracing at all."""
    otel_traces_exporter: str = Field(default="console", validation_alias="OTEL_TRACES_EXPORTER")
    """OpenTelemetry's exporter list (OTEL_TRACES_EXPORTER): console, otlp or none."""
    generate_secrets: bool = False
    """Make each missing secret (unsubscribe, webhook, services, inbox) as a random key kept
    in `data_dir`, shared by the processes that read that folder: the embedded default and
    the tests do. Off, a process refuses to start without them (`missing_secrets`)."""
    database_url: str | None = None
    """SQLAlchemy async URL; default is a SQLite file in `data_dir`. PostgreSQL:
    `postgresql+psycopg://user@host:5432/db`."""

    database_schema: str | None = None
    """PostgreSQL schema to use (search_path); default is the server's."""

    temporal_address: str | None = None
    """Temporal's frontend (host:port); default: TEMPORAL_ADDRESS or the envconfig profile
    (runtime/temporal.py), else 127.0.0.1:7233. TLS, mTLS and API keys are set the same
    way as for every Temporal tool: TEMPORAL_TLS_*, TEMPORAL_API_KEY."""
    temporal_namespace: str | None = None
    """Default: TEMPORAL_NAMESPACE or the envconfig profile, else `default`."""
    register_search_attributes: bool = True
    """Register the journey search attributes at start if the namespace lacks them; turn
    off where the operator API is not open to workers (Temporal Cloud: `tcld`)."""
    task_queue: str = "journeys"
    temporal_ui_port: int = 8233
    workflow_sandbox: Literal["off", "passthrough", "strict"] = "off"
    """How the worker runs `workflows/` (workers/sandbox.py): `off`, outside Temporal's
    sandbox (the code is this product's own interpreter, and CI runs every workflow test
    and recorded history in `strict`); `passthrough`, in the sandbox with `workflows/`
    imported once; `strict`, re-imported and policed on every run (the tests)."""
    temporal_connect_seconds: float = Field(default=60.0, gt=0)
    """How long a process keeps trying to reach Temporal at start before it gives up."""
    worker_shutdown_seconds: float = Field(default=60.0, ge=0)
    """On SIGTERM, how long the worker lets activities in flight (a send mid-call) finish
    before it cancels them: match the pod's `terminationGracePeriodSeconds` (minus a few)."""

    workflow_cache: int = Field(default=500, ge=0)
    """Enrollments a worker keeps in memory between their workflow tasks. A parked one (a
    day-long wait) gains nothing from it; a busy one is replayed from history when evicted.
    The default keeps a worker under 300 MB with 100,000 enrollments parked."""

    worker_health_address: str | None = None
    """Where a worker serves its probes, `/healthz` (running) and `/readyz` (Temporal
    answers, the worker polls), e.g. `0.0.0.0:8081`; None: not served."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    email_from: str = "journeys@example.com"

    services_url: str | None = None
    """Base URL of the built-in services (decisioning, provider sandboxes); default: this
    deployment's own API."""
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    """Timeout of every call to a service or provider; a timeout is retried by Temporal."""

    sandbox: bool = False
    """Serve the provider sandboxes (Twilio, FCM, webhook receiver) at /sandbox: off unless
    the embedded default (`journeys up`) or the tests turn it on. What they received is
    read with a `read` key, faults are injected with an `operate` key, and their Twilio
    and FCM endpoints want the credentials the channels send (`twilio_token`)."""

    decisioning_url: str | None = None
    """The decisioning service (`POST /v1/decisions`); default: the built-in one."""

    twilio_api_url: str | None = None
    """Twilio's REST API (https://api.twilio.com in production); default: the built-in
    sandbox, which speaks the same format and records what it received."""
    twilio_account_sid: str = "ACsandbox"
    twilio_auth_token: SecretStr | None = None
    """Basic-auth password for Twilio and the key its status callbacks are signed with."""
    sms_from: str = "+15005550006"
    sms_numbers: list[str] = Field(default_factory=list, max_length=1000)
    """More SMS `From` numbers (a pool): a send goes from the one whose next free slot
    comes first, each number paced at `pace_sms_per_second`."""
    whatsapp_from: str = "whatsapp:+14155238886"

    pace_email_per_second: float | None = Field(default=14.0, gt=0)
    """The email provider's send ceiling across every worker: SES starts production
    accounts at 14 a second. None: unpaced (an SMTP relay of your own)."""
    pace_sms_per_second: float | None = Field(default=1.0, gt=0)
    """Per SMS number: a Twilio long code sends 1 segment a second (toll-free 3, short
    code 100)."""
    pace_whatsapp_per_second: float | None = Field(default=80.0, gt=0)
    """Per WhatsApp number: Cloud API's 80 messages a second."""
    pace_push_per_second: float | None = Field(default=10_000.0, gt=0)
    """The FCM project's ceiling: 600,000 a minute."""
    pace_webhook_per_second: float | None = Field(default=None, gt=0)
    """The brand's webhook receiver; None: unpaced."""
    pace_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    """A slot at most this far ahead is waited for inside the send; a later one queues the
    send on a timer (no worker held) until its slot."""

    fcm_api_url: str | None = None
    """FCM HTTP v1 (https://fcm.googleapis.com in production); default: the sandbox."""
    fcm_project_id: str = "journeys-sandbox"
    fcm_access_token: SecretStr | None = None
    """OAuth 2 bearer token for FCM (minted from a service account by your platform)."""

    email_provider: Literal["smtp", "ses", "sendgrid"] = "smtp"
    """Who takes the SMTP hand-off, so its word on each message comes back: `ses` tags
    every email for SES's bounce, complaint and delivery notifications (through SNS to
    `/v1/providers/ses`), `sendgrid` for its Event Webhook (`/v1/providers/sendgrid`);
    `smtp` tags nothing."""
    ses_configuration_set: str | None = None
    """The SES configuration set emails name (`X-SES-CONFIGURATION-SET`), whose event
    destination is the SNS topic."""
    ses_topic_arns: list[str] = Field(default_factory=list)
    """SNS topics whose notifications are taken; any other topic's is refused (any AWS
    account can have SNS sign a message). With the sandbox on, its topic is taken too."""
    sendgrid_webhook_public_key: str | None = None
    """The Event Webhook's verification key (base64, from SendGrid's Mail Settings); with
    the sandbox on and none set, the sandbox's. Without one, no SendGrid event is taken."""
    soft_bounce_limit: int = Field(default=3, ge=1, le=100)
    """Soft bounces in a row (no delivery between) that put an address on the suppression
    list; a hard bounce does at once."""
    bandit_refresh_seconds: float = Field(default=60, ge=0, le=86_400)
    """How old a bandit split's arm counts may be before its weights are computed again
    (per worker; Braze re-weights twice a day)."""

    webhook_url: str | None = None
    """Where `webhook` sends are POSTed unless the message names a `url`; default: the
    sandbox's receiver."""
    webhook_secret: SecretStr | None = None
    """Signs webhook bodies (HMAC-SHA256); default: a random key kept in `data_dir`."""

    action_modules: list[str] = Field(default_factory=lambda: ["journeys.examples.actions"])
    """Modules imported by the worker to register `action` step handlers."""

    services_key: SecretStr | None = None
    """The key workers present to the built-in services on the API (decisioning); default:
    a random key kept in `data_dir`. Set it when the worker and API run apart."""
    inbox_secret: SecretStr | None = None
    """Signs the inbox tokens a customer's app reads its inbox with; default: a random key
    kept in `data_dir`."""
    inbox_token_ttl: timedelta = timedelta(days=1)
    """How long an inbox token is valid (ISO 8601 in the environment: P1D)."""
    rate_limit_per_second: float = Field(default=100.0, ge=0)
    """Write requests per second allowed to each API key (0: no limit); over it, 429."""
    rate_limit_burst: int = Field(default=200, ge=1)
    """Write requests a key may make at once before the per-second rate applies."""
    read_rate_limit_per_second: float = Field(default=500.0, ge=0)
    """Read requests per second allowed to each API key (0: no limit); over it, 429."""
    read_rate_limit_burst: int = Field(default=1000, ge=1)
    """Read requests a key may make at once before its read rate applies."""
    anonymous_rate_limit_per_second: float = Field(default=100.0, ge=0)
    """Requests per second to the routes that take no key (unsubscribe pages, provider
    callbacks, docs), per client address (0: no limit)."""
    anonymous_rate_limit_burst: int = Field(default=1000, ge=1)
    """Requests a client address may make at once to those routes."""
    auth_failures_per_minute: float = Field(default=30.0, ge=0)
    """Failed authentications (a wrong or revoked key) allowed per client address, once
    `auth_failure_burst` are spent (0: no limit); then every keyed request from that
    address is 429 until the budget refills, whatever key it carries."""
    auth_failure_burst: int = Field(default=20, ge=1)
    """Failed authentications a client address may make before the per-minute rate applies."""
    max_json_depth: int = Field(default=32, ge=2, le=200)
    """How deeply a request's JSON may nest (objects and arrays)."""
    max_event_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    """The largest event (as JSON) accepted; Segment's own limit is 32 KB."""
    egress_allow: list[str] = Field(default_factory=list)
    """Where webhook and action steps may call although the address is private, loopback
    or link-local: URL prefixes (`http://10.0.0.5:9000/hooks/`) or networks (`10.0.0.0/8`).
    Public addresses are always allowed."""
    template_render_seconds: float = Field(default=1.0, gt=0)
    """How long one template may render before the send fails (the render runs off the
    worker's event loop)."""
    template_max_chars: int = Field(default=256 * 1024, ge=1024)
    """The largest rendered message (each field)."""

    tracing: bool = True
    """OpenTelemetry traces, exported as the `OTEL_` variables say (console by default;
    `OTEL_TRACES_EXPORTER=otlp`, or `none` / `OTEL_SDK_DISABLED=true` to turn them off)."""
    metrics_address: str | None = "127.0.0.1:9464"
    """Where Prometheus scrapes `/metrics` (the SDK's and the journeys'); None: no metrics."""

    payload_key: SecretStr | None = None
    """Encrypts every workflow payload (AES-256-GCM) when set: 32 bytes, base64
    (`journeys payload-key` makes one). Off by default."""
    payload_key_id: str = "default"
    """Names the current key in each payload's metadata, so keys can be rotated."""
    payload_old_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Earlier keys by id, still used to decrypt histories written under them."""
    codec_token: SecretStr | None = None
    """When set, the codec endpoint (`/codec/decode`) answers only requests bearing it
    (the Temporal UI passes the operator's access token)."""
    codec_open: bool = False
    """The codec endpoint answers without a key or token: only for the embedded default,
    whose Temporal UI has no login of its own (`journeys up` turns it on)."""
    codec_origins: list[str] | None = None
    """Browser origins (the Temporal UI's) allowed to call the codec endpoint; default: the
    embedded UI on `temporal_ui_port` of this host."""

    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses of the load balancers whose `X-Forwarded-For` names the client (the audit
    log's `client`); none by default: the address that connected."""
    allowed_hosts: list[str] | None = None
    """Host headers the API answers (others get 400): a page on another site that
    rebinds its own name to 127.0.0.1 reaches nothing. `journeys up` sets
    `["127.0.0.1", "localhost"]`; default: any (a load balancer checks in a cluster)."""

    segment_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the Segment routes (analytics.js on your site:
    `["https://www.example.com"]`, or `["*"]`); none by default."""

    temporal_ui_url: str | None = None
    """Where operators open the Temporal UI (the funnel links each step to its list of
    enrollments there): `https://cloud.temporal.io` on Temporal Cloud; default: the
    embedded UI on `temporal_ui_port` of this host."""

    def temporal_ui(self) -> str:
        return self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}"

    def ui_origins(self) -> list[str]:
        port = self.temporal_ui_port
        return self.codec_origins or [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]

    events_kept: timedelta = timedelta(days=90)
    """How long the event log keeps each accepted event (name, properties, time) for
    backtests (ISO 8601 in the environment: P90D); older ones are dropped hourly, and a
    customer's with their erasure."""
    event_ids_kept: timedelta = timedelta(days=7)
    """How long an event's message id is remembered after routing, so a producer's retry
    changes nothing (ISO 8601 in the environment: P7D). The API forgets older ids hourly."""

    public_url: str = "http://127.0.0.1:8000"
    """Where customers reach the API (List-Unsubscribe links in emails)."""
    unsubscribe_secret: SecretStr | None = None
    """Signs unsubscribe links. Default: a random key kept in `data_dir` (shared by the
    embedded default's processes); set it when the worker and API run apart."""
    tracking: bool = True
    """Whether emails carry an open pixel and tracked links (a journey's `tracking` and a
    link's `data-no-track` turn them off for less)."""
    tracking_secret: SecretStr | None = None
    """Signs tracking tokens. Default: a random key kept in `data_dir`; set it when the
    worker and API run apart."""
    tracking_ttl: timedelta = timedelta(days=90)
    """How long a message's pixel and links are tracked (ISO 8601: P90D); later, a
    tracked link answers 404."""
    tracking_scanner_seconds: float = Field(default=5.0, ge=0)
    """A click this soon after its send is a link scanner's (a machine click; 0: never by
    time)."""
    unsubscribe_event: str = "unsubscribed"
    """The event that withdraws marketing consent (properties.channel: one channel, else
    all); the API's unsubscribe endpoints send it too, so `exit_when` ends journeys."""

    # Guardrails across all journeys (JSON in the environment, e.g.
    # JOURNEYS_FREQUENCY_CAPS='[{"limit": 3, "window": "P7D"}]', JOURNEYS_QUIET_HOURS=null).
    frequency_caps: list[FrequencyCap] = Field(
        default_factory=lambda: [FrequencyCap(limit=3, window=timedelta(days=7))]
    )
    """Marketing messages per customer per rolling window, across every journey (a cap
    with `channel` counts that channel only)."""
    quiet_hours: QuietHours | None = QuietHours(start=time(21), end=time(8))
    """Marketing sends due in this daily window of the customer's time zone wait for its end."""
    arbitration_seconds: float = Field(default=0.25, ge=0)
    """How long a capped marketing send waits for rivals for the same customer's cap
    slots before the highest journey priority wins; 0 is first come, first served."""

    @property
    def api_key_file(self) -> Path:
        """Where `journeys up` keeps its admin key, for the CLI to find."""
        return self.data_dir / "api-key"

    @property
    def api_url_file(self) -> Path:
        """Where `journeys up` writes its API's address, for the CLI to find."""
        return self.data_dir / "api-url"

    def child_environment(self) -> dict[str, str]:
        """This process's environment with these settings in it: what a process started
        from this one (a worker beside an API) runs with."""
        return {**os.environ, **self.as_environment()}

    def pace_limit(self, channel: str) -> float | None:
        """A provider's send ceiling a second (per number for SMS and WhatsApp)."""
        limits = {
            "email": self.pace_email_per_second,
            "sms": self.pace_sms_per_second,
            "whatsapp": self.pace_whatsapp_per_second,
            "push": self.pace_push_per_second,
            "webhook": self.pace_webhook_per_second,
        }
        return limits.get(channel)

    def bucket_limit(self, bucket: str) -> float | None:
        """The settings' ceiling of a provider's bucket (`email`, `sms:+1...`); a journey's
        bucket has none here (its spec's pace is its ceiling)."""
        channel = bucket.split(":")[0]
        return None if channel == "journey" else self.pace_limit(channel)

    def senders(self, channel: str) -> list[str]:
        """The provider buckets a channel's sends are paced in: one per sending number
        where the provider limits per number, else the channel's one account."""
        if channel == "sms":
            return [f"sms:{n}" for n in dict.fromkeys([self.sms_from, *self.sms_numbers])]
        if channel == "whatsapp":
            return [f"whatsapp:{self.whatsapp_from.removeprefix('whatsapp:')}"]
        return [channel]

    def service_url(self, configured: str | None, path: str) -> str:
        """`configured`, else the built-in service at `path` on this deployment's API."""
        base = self.services_url or f"http://{self.api_host}:{self.api_port}"
        return (configured or f"{base.rstrip('/')}{path}").rstrip("/")

    def as_environment(self) -> dict[str, str]:
        """These settings as `JOURNEYS_*` variables, for a process started from this one
        (a worker beside an API) to share every setting, secrets included."""
        dumped = self.model_dump(mode="json")
        env: dict[str, str] = {}
        for name, value in dumped.items():
            raw = getattr(self, name)
            if isinstance(raw, SecretStr):
                value = raw.get_secret_value()
            elif isinstance(raw, dict):
                value = {
                    k: v.get_secret_value() if isinstance(v, SecretStr) else value[k]
                    for k, v in raw.items()
                }
            if value is None:
                text = "null"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str | int | float):
                text = str(value)
            else:
                text = json.dumps(value)
            env[f"JOURNEYS_{name.upper()}"] = text
        return env

    def missing_secrets(self, *, api: bool, worker: bool) -> list[str]:
        """The secrets a worker or an API needs but neither has nor may generate, by their
        variable names."""
        if self.generate_secrets:
            return []
        needed = {"unsubscribe_secret", "services_key", "tracking_secret"}
        if worker:
            needed.add("webhook_secret")
        if api:
            needed.add("inbox_secret")
            if self.sandbox:
                needed.add("webhook_secret")  # the sandbox's receiver checks signatures
        if self.sandbox:  # the sandboxes' Twilio and FCM want the channels' credentials
            needed |= {"twilio_auth_token", "fcm_access_token"}
        return sorted(f"JOURNEYS_{n.upper()}" for n in needed if getattr(self, n) is None)

    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'journeys.db').resolve()}"
