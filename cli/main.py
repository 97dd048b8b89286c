"""`journeys`: run the embedded default, a worker or the API, and check journeys."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
import yaml
from pydantic import SecretStr, ValidationError
from rich.panel import Panel
from rich.table import Table

from journeys.cli import db, experiments, keys, pace, suppressions
from journeys.cli.http import (
    ApiUrl,
    CliError,
    Json,
    api_client,
    console,
    find_api_url,
    ok,
    print_json,
)
from journeys.schemas.funnel import Funnel
from journeys.schemas.journey import JourneySpec
from journeys.schemas.settings import Settings
from journeys.schemas.validation import check_journey

if TYPE_CHECKING:
    from journeys.workers.replay import Replayed

app = typer.Typer(
    help="A durable customer-journey runner on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(db.app, name="db")
app.add_typer(suppressions.app, name="suppressions")
app.add_typer(pace.app, name="pace")
app.command()(experiments.experiments)
app.command()(experiments.bandit)


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option(help="Where Temporal, the database and the mailbox keep their files.")
    ] = Path(".journeys"),
    api_port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8000,
    temporal_port: Annotated[
        int, typer.Option(help="Port of the Temporal frontend (gRPC).")
    ] = 7233,
    ui_port: Annotated[int, typer.Option(help="Port of the Temporal UI.")] = 8233,
    smtp_port: Annotated[int, typer.Option(help="Port of the built-in SMTP mailbox.")] = 1025,
    metrics_port: Annotated[
        int, typer.Option(help="Port of the Prometheus metrics endpoint (/metrics).")
    ] = 9464,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL; default: SQLite in the data folder.")
    ] = None,
) -> None:
    """Start everything: Temporal dev server with UI, mailbox, worker, API and the example
    journeys. Ctrl-C stops it; starting it again resumes every enrollment in flight."""
    from journeys.services.email_sandbox import SendGridSandbox, SesSandbox, hook
    from journeys.services.mailbox import start_smtp
    from journeys.stack.embedded import (
        dev_server,
        dev_server_command,
        embedded_admin_key,
        free_port_or_fail,
        kept_payload_key,
        mailbox_for,
        run_until_stopped,
    )

    # Every port first: nothing is made or started when one is taken.
    for port, what in (
        (api_port, "API"),
        (temporal_port, "Temporal"),
        (ui_port, "Temporal UI"),
        (smtp_port, "SMTP"),
        (metrics_port, "metrics"),
    ):
        free_port_or_fail("127.0.0.1", port, what)
    configured = Settings()  # what the environment sets; the rest is the embedded default's
    given = configured.model_fields_set
    configured_host = [httpx.URL(configured.public_url).host] if "public_url" in given else []
    settings = Settings(
        data_dir=data_dir,
        generate_secrets=True,  # one machine, one data folder: keys made once, kept there
        sandbox=True,  # the provider sandboxes stand in for Twilio, FCM and a webhook receiver
        allowed_hosts=["127.0.0.1", "localhost", *configured_host],  # (DNS rebinding)
        api_port=api_port,
        # Twilio's status callbacks and unsubscribe links reach this API unless configured.
        public_url=configured.public_url
        if "public_url" in given
        else f"http://127.0.0.1:{api_port}",
        temporal_address=f"127.0.0.1:{temporal_port}",
        temporal_ui_port=ui_port,
        smtp_port=smtp_port,
        metrics_address=f"127.0.0.1:{metrics_port}",
        database_url=database_url,
        # History is encrypted unless a key is configured: with a key kept in the data
        # folder, and the embedded UI (which has no login) decrypts through the API.
        payload_key=configured.payload_key or SecretStr(kept_payload_key(data_dir)),
        codec_open=True,
        egress_allow=[f"http://127.0.0.1:{api_port}/sandbox/"],
        # Emails go "through SES": the mailbox answers each as SES's mailbox simulator,
        # with bounces, complaints and deliveries signed through SNS to this API.
        email_provider=configured.email_provider if "email_provider" in given else "ses",
        ses_configuration_set=configured.ses_configuration_set or "journeys-local",
    )
    # With payload encryption on, the UI decrypts through this API's codec endpoint.
    codec = ["--ui-codec-endpoint", f"{settings.public_url}/codec"] if settings.payload_key else []
    command = dev_server_command(
        port=temporal_port, ui_port=ui_port, db_file=data_dir / "temporal.db", extra=codec
    )

    key_path = settings.api_key_file

    def ready(published: list[tuple[str, int, bool]]) -> None:
        journeys = "\n".join(
            f"  {jid} v{version}{' (new)' if created else ''}"
            for jid, version, created in published
        )
        console.print(
            Panel.fit(
                f"[bold]API[/]          http://127.0.0.1:{api_port}"
                f"  (docs: http://127.0.0.1:{api_port}/docs)\n"
                f"[bold]API key[/]      {api_key}\n"
                f"               (admin; in {key_path}, where the CLI finds it;\n"
                f"               for curl: export JOURNEYS_API_KEY=$(cat {key_path}))\n"
                f"[bold]Temporal UI[/]  http://127.0.0.1:{ui_port}/namespaces/default/workflows\n"
                f"[bold]Temporal[/]     127.0.0.1:{temporal_port}\n"
                f"[bold]Mailbox[/]      SMTP 127.0.0.1:{smtp_port}, "
                f"messages in {data_dir / 'mailbox'}\n"
                f"[bold]Sandboxes[/]    Twilio, FCM, webhooks: what they received at "
                f"http://127.0.0.1:{api_port}/sandbox/{{twilio,fcm,webhooks}}/received;\n"
                "               SES: mail to ann+bounce@..., +softbounce, +complaint bounces "
                "or complains\n"
                f"[bold]Segment[/]      host http://127.0.0.1:{api_port}, write key: a key "
                "with events:write (journeys keys create --scope events:write)\n"
                f"[bold]Data[/]         {data_dir.resolve()}\n"
                f"[bold]Telemetry[/]    {_telemetry(settings, data_dir)}\n"
                f"[bold]Journeys[/]\n{journeys}\n\nCtrl-C stops everything.",
                title="journeys is running",
            )
        )

    api_key = asyncio.run(embedded_admin_key(settings))
    settings.api_url_file.write_text(f"http://127.0.0.1:{api_port}\n")  # where the CLI calls
    mailbox = mailbox_for(settings)
    mailbox.listeners += [hook(SesSandbox(settings)), hook(SendGridSandbox(settings))]
    smtp = start_smtp(mailbox, port=smtp_port)
    try:
        with (
            dev_server(command, log=data_dir / "temporal.log"),
            open(data_dir / "traces.log", "a") as traces,
        ):
            console.print("starting Temporal, worker and API...")
            asyncio.run(run_until_stopped(settings, traces=traces, ready=ready))
    except KeyboardInterrupt:
        pass
    finally:
        smtp.stop()
    again = configured.launcher  # ./dev sets "./dev"
    console.print(f"stopped; run `{again} up` again to resume.")


def _telemetry(settings: Settings, data_dir: Path) -> str:
    from journeys.runtime.telemetry import exporters, tracing_enabled

    traces = "traces off"
    if tracing_enabled(settings):
        names = ", ".join(exporters(settings))
        traces = f"traces ({names}) in {data_dir / 'traces.log'}"
        if names != "console":
            traces = f"traces to {names} (OTEL_EXPORTER_OTLP_ENDPOINT)"
    metrics = "metrics off"
    if settings.metrics_address:
        metrics = f"Prometheus http://{settings.metrics_address}/metrics"
    return f"{traces}; {metrics}"


@app.command()
def worker() -> None:
    """Run a journey worker against TEMPORAL_ADDRESS and JOURNEYS_DATABASE_URL (migrated:
    `journeys db upgrade`); secrets from JOURNEYS_* (deploy/README.md)."""
    _serve(api=False)


@app.command()
def api() -> None:
    """Run the HTTP API against TEMPORAL_ADDRESS and JOURNEYS_DATABASE_URL (migrated:
    `journeys db upgrade`); secrets from JOURNEYS_* (deploy/README.md)."""
    _serve(worker=False)


def _serve(**parts: bool) -> None:
    """Run a worker or the API until SIGTERM; what it cannot reach at start (Temporal, the
    database) is one line on stderr and exit status 1, not a traceback."""
    from journeys.stack.embedded import Unreachable, run_until_stopped

    settings = Settings()
    missing = settings.missing_secrets(api=parts.get("api", True), worker=parts.get("worker", True))
    if missing:
        print(
            f"journeys: missing secrets: {', '.join(missing)} (each a random key: openssl rand "
            "-hex 32; the worker and the API need the same ones; deploy/README.md)",
            file=sys.stderr,
        )
        raise SystemExit(1)
    try:
        asyncio.run(run_until_stopped(settings, examples=False, migrate=False, **parts))  # type: ignore[arg-type]
    except Unreachable as err:
        print(f"journeys: {err}", file=sys.stderr, flush=True)
        # Not SystemExit: after a failed connection, the Temporal core's threads can abort
        # the interpreter's normal exit (SIGABRT) instead of letting it return 1.
        os._exit(1)


def load_spec(source: str) -> JourneySpec:
    """A journey from a .json/.yaml file or a Python `module:ATTRIBUTE`; CliError naming
    what is missing or invalid (the first problem; `journeys validate` lists them all)."""
    path = Path(source)
    try:
        if path.suffix in (".json", ".yaml", ".yml") or path.exists():
            return JourneySpec.model_validate(yaml.safe_load(path.read_text()))
        module, _, attribute = source.partition(":")
        found = getattr(importlib.import_module(module), attribute or "JOURNEY", None)
    except FileNotFoundError as err:
        raise CliError(f"no such file: {source}") from err
    except ModuleNotFoundError as err:
        raise CliError(
            f"no module {err.name!r}: a journey is file.json, file.yaml or module:ATTRIBUTE"
        ) from err
    except yaml.YAMLError as err:
        raise CliError(f"{source} is neither JSON nor YAML: {str(err).splitlines()[0]}") from err
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise CliError(f"{source} is not a valid journey: {where}: {first['msg']}{more}") from err
    if not isinstance(found, JourneySpec):
        raise CliError(f"{source}: no JourneySpec named {attribute or 'JOURNEY'} there")
    return found


@app.command()
def validate(
    source: Annotated[str, typer.Argument(help="file.json / file.yaml / module:ATTR")],
    as_json: Json = False,
) -> None:
    """Check a journey's structure and graph; exit 1 listing every problem."""
    try:
        spec = load_spec(source)
        found = [(".".join(map(str, p.loc)), p.msg) for p in check_journey(spec)]
    except CliError as err:
        if not isinstance(err.__cause__, ValidationError):
            raise
        errors = err.__cause__.errors()
        found = [(".".join(map(str, e["loc"])), str(e["msg"])) for e in errors]
    if as_json:
        print_json({"valid": not found, "problems": [{"loc": w, "msg": m} for w, m in found]})
    else:
        for where, msg in found:
            console.print(f"[red]{where}[/]: {msg}")
        if not found:
            console.print(f"[green]ok[/]: {spec.id} ({len(spec.steps)} steps)")
    if found:
        raise typer.Exit(1)


@app.command()
def export(
    source: Annotated[
        str, typer.Argument(help="module:ATTR, e.g. journeys.examples.onboarding_nudge:JOURNEY")
    ],
) -> None:
    """Print a Python-authored journey as the JSON the API accepts."""
    console.print_json(load_spec(source).model_dump_json(exclude_none=True))


@app.command()
def publish(
    source: Annotated[str, typer.Argument(help="file.json / file.yaml / module:ATTR")],
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Publish a journey as a new version through the API."""
    spec = load_spec(source)
    with api_client(api_url) as http:
        response = http.post(
            "/v1/journeys",
            content=spec.model_dump_json(),
            headers={"content-type": "application/json"},
        )
    published = ok(response, 201)
    if as_json:
        print_json(published)
    else:
        console.print(f"published {spec.id} v{published['version']}")


@app.command()
def audience(
    journey_id: Annotated[str, typer.Argument(help="A journey whose entry is an audience.")],
    run: Annotated[
        str | None, typer.Option(help="Run name; default v{version}: running it again resumes it.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Enrollments per second; default: the journey's.")
    ] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="Stop the run instead.")] = False,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Enrol a journey's audience and follow it with a progress bar (done/total, rate, ETA).
    Ctrl-C stops following; the run goes on in Temporal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    base = f"/v1/journeys/{journey_id}/audience-runs"
    with api_client(api_url, timeout=30) as http:
        if cancel:
            if run is None:
                console.print("[red]--cancel needs --run[/]")
                raise typer.Exit(2)
            out = ok(http.post(f"{base}/{run}/cancel"), 200)
            print_json(out["progress"])
            return
        body = {k: v for k, v in {"run": run, "rate_per_second": rate}.items() if v is not None}
        started = ok(http.post(base, json=body), 202)
        name = str(started["run"])
        columns = (
            TextColumn(f"{journey_id} run {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.0f}/s, {task.fields[entered]} entered"),
            TimeRemainingColumn(),
        )
        # --json: no bar (a script reads the final progress)
        with Progress(*columns, console=console, disable=as_json) as bar:
            task = bar.add_task("enrolling", total=None, rate=0.0, entered=0)
            while True:
                progress = ok(http.get(f"{base}/{name}"), 200)["progress"]
                assert isinstance(progress, dict)
                bar.update(
                    task,
                    total=progress["total"],
                    completed=progress["done"],
                    rate=progress["rate_per_second"],
                    entered=progress["entered"],
                )
                if progress["status"] in ("completed", "cancelled"):
                    break
                time.sleep(0.5)
    if as_json:
        print_json(progress)
        return
    console.print(
        f"{progress['status']}: {progress['done']} handled, {progress['entered']} entered, "
        f"{progress['already']} already enrolled"
    )


HEADERS = ("customer_id", "id", "user_id", "userid")


def read_ids(source: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """Customer ids from a file of one per line or a CSV (first column, quoting as CSV
    does, a UTF-8 BOM and a header row allowed): the ids, and (line, why) for each line
    skipped."""
    import csv
    import re

    from journeys.schemas.events import CUSTOMER_ID

    valid = re.compile(CUSTOMER_ID)
    ids: list[str] = []
    rejected: list[tuple[int, str]] = []
    with source.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            value = row[0].strip() if row else ""
            if not value or (number == 1 and value.lower() in HEADERS):
                continue
            if len(value) > 200 or not valid.match(value):
                rejected.append((number, "not a customer id (1 to 200 printable characters)"))
                continue
            ids.append(value)
    return ids, rejected


@app.command("audience-upload")
def audience_upload(
    list_id: Annotated[str, typer.Argument(help="The list's id (an audience's `list`).")],
    source: Annotated[
        Path, typer.Argument(help="Customer ids: one per line, or a CSV's first column.")
    ],
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Upload customer ids to an audience list, 10,000 per request, with progress."""
    from rich.progress import track

    ids, rejected = read_ids(source)
    for line, why in [] if as_json else rejected[:20]:
        console.print(f"[yellow]line {line} skipped[/]: {why}")
    if len(rejected) > 20 and not as_json:
        console.print(f"[yellow]... {len(rejected) - 20} more lines skipped[/]")
    chunks = [ids[i : i + 10_000] for i in range(0, len(ids), 10_000)]
    size = 0
    with api_client(api_url, timeout=60) as http:
        shown = track(chunks, description=f"uploading {len(ids):,} ids", console=console)
        for chunk in chunks if as_json else shown:
            out = ok(
                http.post(f"/v1/audiences/{list_id}/members", json={"customer_ids": chunk}),
                200,
            )
            size = int(str(out["size"]))
    if as_json:
        skipped = [{"line": line, "why": why} for line, why in rejected]
        print_json({"list": list_id, "size": size, "uploaded": len(ids), "skipped": skipped})
        return
    console.print(f"list {list_id}: {size:,} customers")


@app.command()
def control(
    action: Annotated[str, typer.Argument(help="pause, resume, skip (the current wait) or exit")],
    journey_id: Annotated[str, typer.Argument(help="The journey.")],
    customer_id: Annotated[
        str | None, typer.Argument(help="One customer; without it, every running enrollment.")
    ] = None,
    step: Annotated[
        str | None, typer.Option(help="In bulk: only enrollments at this step.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the enrollment's path).")] = "operator",
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Steer enrollments: one customer's, or in bulk by journey (and step). Each enrollment
    validates the control itself; refusals say why."""
    if action not in ("pause", "resume", "skip", "exit"):
        console.print(f"[red]unknown control {action!r}[/]: pause, resume, skip or exit")
        raise typer.Exit(2)
    _one_or_bulk(customer_id, step)
    base = f"/v1/journeys/{journey_id}"
    with api_client(api_url, timeout=120) as http:
        if customer_id is not None:
            url = f"{base}/enrollments/{customer_id}/{action}"
            state = ok(http.post(url, json={"reason": reason}), 200)
            if as_json:
                print_json(state)
                return
            waiting = " (paused)" if state["paused"] else ""
            console.print(f"{customer_id}: {state['status']} at {state['step']}{waiting}")
            return
        body = {"reason": reason, **({"step": step} if step else {})}
        result = ok(http.post(f"{base}/controls/{action}", json=body), 200)
    if as_json:
        print_json(result)
        return
    console.print(f"{action}: {result['done']} of {result['matched']} enrollments")
    _print_refused(result["refused"])


def _one_or_bulk(customer_id: str | None, step: str | None) -> None:
    """A customer id addresses one enrollment; `--step` selects in bulk: not both."""
    if customer_id is not None and step is not None:
        console.print("[red]--step selects enrollments in bulk; drop the customer id[/]")
        raise typer.Exit(2)


def _print_refused(refused: object) -> None:
    assert isinstance(refused, dict)
    for why, count in refused.items():
        console.print(f"  refused by {count}: {why}")


@app.command()
def migrate(
    journey_id: Annotated[str, typer.Argument(help="The journey.")],
    customer_id: Annotated[
        str | None, typer.Argument(help="One customer; without it, every older enrollment.")
    ] = None,
    to_version: Annotated[int | None, typer.Option(help="Target version; default latest.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="OLD=NEW for a step renamed or removed (repeatable)."),
    ] = None,
    step: Annotated[str | None, typer.Option(help="In bulk: only enrollments here.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would happen; change nothing.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the enrollment's path).")] = "operator",
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Move running enrollments to a newer version of their journey, step by step id
    (`--map` renames). Try it with --dry-run first: each enrollment says what it would do."""
    mapping: dict[str, str] = {}
    for pair in map_ or []:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            console.print(f"[red]--map {pair!r}: write OLD=NEW[/]")
            raise typer.Exit(2)
        mapping[old] = new
    body: dict[str, object] = {"mapping": mapping, "dry_run": dry_run, "reason": reason}
    if to_version is not None:
        body["to_version"] = to_version
    base = f"/v1/journeys/{journey_id}"
    would = "would move" if dry_run else "moved"
    _one_or_bulk(customer_id, step)
    with api_client(api_url, timeout=300) as http:
        if customer_id is not None:
            url = f"{base}/enrollments/{customer_id}/migrate"
            plan = ok(http.post(url, json=body), 200)
            if as_json:
                print_json(plan)
                return
            console.print(
                f"{customer_id} {would}: v{plan['from_version']} {plan['from_step']} -> "
                f"v{plan['to_version']} {plan['to_step']}: {plan['effect']}"
            )
            return
        if step is not None:
            body["step"] = step
        result = ok(http.post(f"{base}/migrate", json=body), 200)
    if as_json:
        print_json(result)
        return
    moved = result["moved"]
    assert isinstance(moved, dict)
    console.print(
        f"{sum(moved.values())} of {result['matched']} enrollments {would} to "
        f"v{result['to_version']}"
    )
    for way, count in moved.items():
        console.print(f"  {count}: {way}")
    _print_refused(result["refused"])


@app.command()
def erase(
    customer_id: Annotated[str, typer.Argument(help="The customer to erase.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Erase a customer (a privacy request): end their enrollments, delete their data and
    every workflow run that names them. It cannot be undone."""
    if not yes:
        typer.confirm(f"Erase customer {customer_id} and all their data?", abort=True)
    with api_client(api_url, timeout=300) as http:
        erased = ok(http.delete(f"/v1/customers/{customer_id}"), 200)
    if as_json:
        print_json(erased)
        return
    rows = erased["rows_deleted"]
    assert isinstance(rows, dict)
    console.print(
        f"{customer_id}: {erased['enrollments_ended']} enrollments ended, "
        f"{erased['runs_deleted']} runs deleted (Temporal removes them within a minute), "
        f"{sum(rows.values())} rows deleted"
        + "".join(f", {n} {table}" for table, n in rows.items() if n)
    )


@app.command()
def funnel(
    journey_id: Annotated[str, typer.Argument(help="The journey.")],
    version: Annotated[int | None, typer.Option(help="A version; the latest by default.")] = None,
    mermaid: Annotated[bool, typer.Option(help="Print the Mermaid diagram instead.")] = False,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """How a journey version performs: entered, reached, sent, suppressed by reason,
    converted and exited per step, and conversion per split arm. The same counts, drawn on
    the journey, are on the API's page /journeys/JOURNEY_ID/funnel."""
    params = {"version": version} if version else {}
    with api_client(api_url, timeout=60) as http:
        url = f"/v1/journeys/{journey_id}/funnel"
        found = Funnel.model_validate(ok(http.get(url, params=params), 200))
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    if mermaid:
        print(found.mermaid)
        return
    rate = "-" if found.conversion is None else f"{found.conversion:.1%}"
    totals = ("entered", "active", "paused", "completed", "converted", "exited", "stopped")
    console.print(
        f"[bold]{found.name}[/] ({found.journey_id}) v{found.version}: "
        + ", ".join(f"{k} {getattr(found, k)}" for k in totals)
        + f", conversion {rate}"
    )
    table = Table("step", "type", "reached", "here", "sent", "suppressed", "failed", "deferred")
    for s in found.steps:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(s.suppressed.items()))
        table.add_row(
            s.id, s.type, str(s.reached), str(s.here), str(s.sent), why or "0",
            str(s.failed), str(s.deferred),
        )  # fmt: skip
    console.print(table)
    reacted = [s for s in found.steps if s.reactions is not None]
    if reacted:
        kinds = ("delivered", "opened", "clicked", "bounced", "complained", "replied")
        reactions = Table("step", *kinds, "machine opens", "machine clicks")
        for s in reacted:
            r = s.reactions
            assert r is not None
            rates = {"opened": r.open_rate, "clicked": r.click_rate, "bounced": r.bounce_rate,
                     "complained": r.complaint_rate}  # fmt: skip
            cells = [
                f"{getattr(r, k)}" + (f" ({rates[k]:.1%})" if rates.get(k) is not None else "")
                for k in kinds
            ]
            reactions.add_row(s.id, *cells, str(r.opened_machine), str(r.clicked_machine))
        console.print(reactions)
    if found.arms:
        arms = Table("split", "arm", "entered", "converted", "conversion")
        for a in found.arms:
            pct = "-" if a.conversion is None else f"{a.conversion:.1%}"
            arms.add_row(a.split, a.arm, str(a.entered), str(a.converted), pct)
        console.print(arms)
    console.print(f"diagram: {find_api_url(api_url)}/journeys/{journey_id}/funnel")


@app.command()
def replay(
    files: Annotated[
        list[Path] | None, typer.Argument(help="History JSON files (as the UI or CLI export).")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Replay what this list query finds, e.g. 'JourneyId = \"cart\"'."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many from the server.")] = 1000,
    retention_days: Annotated[
        int,
        typer.Option(
            help="The namespace's history retention, for the patch policy (a patch older "
            "than it that no history records may be deprecated)."
        ),
    ] = 30,
    as_json: Json = False,
) -> None:
    """Replay workflow histories (from files, or from the server by a list query) against
    this code: exit 1 if any would break, naming it and why. Run it before a deploy."""
    from journeys.runtime.codec import data_converter
    from journeys.runtime.temporal import connect
    from journeys.workers.replay import from_files, from_server
    from journeys.workers.replay import replay as replay_all

    if not files and not query:
        console.print("[red]give history files or --query[/]")
        raise typer.Exit(2)

    async def run() -> list[Replayed]:
        # A one-off command: no metrics endpoint (a running stack may hold its port).
        settings = Settings(metrics_address=None)
        kept = settings.data_dir / "payload.key"  # what `journeys up` encrypts with
        if settings.payload_key is None and kept.exists():
            settings = settings.model_copy(
                update={"payload_key": SecretStr(kept.read_text().strip())}
            )
        if files:
            return [r async for r in replay_all(from_files(files), data_converter(settings))]
        assert query is not None
        client = await connect(settings)
        done: list[Replayed] = []
        async for result in replay_all(from_server(client, query), client.data_converter):
            done.append(result)
            if len(done) >= limit:
                break
        return done

    results = asyncio.run(run())
    failed = [r for r in results if r.failure]
    if as_json:
        print_json(
            {
                "histories": [
                    {"workflow_id": r.workflow_id, "failure": r.failure, "patches": r.patches}
                    for r in results
                ],
                "patches": patch_states(results, retention=timedelta(days=retention_days)),
            }
        )
        if failed or not results:
            raise typer.Exit(1)
        return
    for r in results:
        console.print(
            f"[red]breaks[/] {r.workflow_id}: {r.failure}"
            if r.failure
            else f"[green]ok[/] {r.workflow_id}"
        )
    console.print(f"{len(results) - len(failed)} of {len(results)} replay")
    console.print(patch_report(results, retention=timedelta(days=retention_days)))
    if failed or not results:
        raise typer.Exit(1)


def patch_states(results: list[Replayed], *, retention: timedelta) -> list[dict[str, Any]]:
    """Per patch still in the code: when it went in, how many of these histories recorded
    it, and whether the policy lets it be deprecated now (README, "Changing workflow
    code")."""
    from journeys.workflows.patches import PATCHES, may_deprecate

    today = datetime.now(UTC).date()
    states = []
    for patch in PATCHES:
        recorded = sum(patch.id in r.patches for r in results)
        states.append(
            {
                "patch": patch.id,
                "added": patch.added.isoformat(),
                "recorded_by": recorded,
                "of": len(results),
                "may_deprecate": may_deprecate(patch, recorded, today=today, retention=retention),
            }
        )
    return states


def patch_report(results: list[Replayed], *, retention: timedelta) -> str:
    """`patch_states` as lines for a person."""
    lines = []
    for state in patch_states(results, retention=retention):
        verdict = "may be deprecated now" if state["may_deprecate"] else "kept"
        lines.append(
            f"patch {state['patch']} (added {state['added']}): recorded by "
            f"{state['recorded_by']} of {state['of']}; {verdict}"
        )
    return "\n".join(lines)


@app.command()
def audit(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Older entries: the next_cursor of a --json answer.")
    ] = None,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Who changed what: every change made through the API, by key (admin)."""
    params: dict[str, int | str] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    with api_client(api_url) as http:
        page = ok(http.get("/v1/audit", params=params))
    if as_json:
        print_json(page)
        return
    entries = page["items"]
    table = Table("id", "at", "key", "action", "target", "status", "from")
    for e in entries:
        target = ", ".join(f"{k}={v}" for k, v in e["target"].items())
        table.add_row(
            str(e["id"]), e["at"][:19], f"{e['key_name']} ({e['key_id']})", e["action"],
            target, str(e["status"]), e["client"] or "-",
        )  # fmt: skip
    console.print(table)


@app.command("payload-key")
def payload_key() -> None:
    """Print a new key for JOURNEYS_PAYLOAD_KEY, which turns on payload encryption. Keep it
    with your other secrets; set the old one in JOURNEYS_PAYLOAD_OLD_KEYS when rotating."""
    from journeys.runtime.codec import new_key

    print(new_key())


def main() -> None:
    """`journeys`: what goes wrong is one line on stderr and exit status 1 (a traceback
    with --debug, anywhere on the line)."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except Exception as err:
        if debug:
            raise
        print(f"journeys: {_one_line(err)}", file=sys.stderr)
        raise SystemExit(1) from None


def _one_line(err: Exception) -> str:
    from journeys.stack.embedded import Unreachable

    if isinstance(err, CliError | Unreachable):
        return str(err)
    if isinstance(err, httpx.TransportError):
        where = f"{err.request.url.scheme}://{err.request.url.netloc.decode()}"
        return f"cannot reach the API at {where} ({type(err).__name__}); is it running?"
    first = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {first} (--debug shows the traceback)"


@app.command()
def backtest(
    source: Annotated[str, typer.Argument(help="The draft: file.json / file.yaml / module:ATTR")],
    since: Annotated[
        str, typer.Option(help="Replay events from then: 30d, 12h, 2w ago, or a date.")
    ] = "30d",
    until: Annotated[str | None, typer.Option(help="Up to then; default: now.")] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Compare with a published version (v3) or another draft (a file)."),
    ] = None,
    sample: Annotated[int | None, typer.Option(help="At most this many customers.")] = None,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """What a journey would have done over the recorded events (nothing is sent, stored or
    started): per step, messages per customer per week, and, with --compare, the
    difference from another version. Needs a journeys:write key."""
    from journeys.cli import backtest as backtests

    spec = load_spec(source)
    baseline: JourneySpec | int | None = None
    if compare is not None:
        version = compare.removeprefix("v")
        baseline = int(version) if version.isdigit() else load_spec(compare)
    backtests.run(
        spec, since=since, until=until, compare=baseline, sample=sample, api_url=api_url,
        as_json=as_json,
    )  # fmt: skip


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback when something fails.")
    ] = False,
) -> None:
    """A durable customer-journey runner on Temporal."""


if __name__ == "__main__":
    main()
