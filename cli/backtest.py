"""`journeys backtest`: start a backtest job on the API, show its progress with an ETA,
then its report as a table (or JSON), and the difference with the version compared."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from journeys.cli.http import CliError, api_client, console, ok, print_json
from journeys.schemas.backtest import BacktestComparison, BacktestJob, BacktestReport
from journeys.schemas.journey import JourneySpec

AGO = re.compile(r"^(\d{1,4})([hdw])$")
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def moment(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w` ago, or an ISO 8601 date or time (UTC unless it says)."""
    if found := AGO.match(text.strip()):
        return now - int(found.group(1)) * UNITS[found.group(2)]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise CliError(f"not a time: {text!r} (say 30d, 12h, 2w or 2026-11-01)") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run(
    spec: JourneySpec,
    *,
    since: str,
    until: str | None,
    compare: JourneySpec | int | None,
    sample: int | None,
    api_url: str | None,
    as_json: bool,
) -> BacktestJob:
    """Start the job, follow it to the end, and print what it found."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "journey": spec.model_dump(mode="json"),
        "since": moment(since, now).isoformat(),
        "until": moment(until, now).isoformat() if until else None,
        "sample": sample,
    }
    if isinstance(compare, int):
        body["compare_version"] = compare
    elif compare is not None:
        body["compare"] = compare.model_dump(mode="json")
    with api_client(api_url) as http:
        job = BacktestJob.model_validate(ok(http.post("/v1/journeys/backtests", json=body), 202))
        columns = (
            TextColumn("backtest"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
        )  # fmt: skip
        with Progress(*columns, console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("backtest", total=1.0)
            while job.status == "running":
                time.sleep(0.5)
                found = ok(http.get(f"/v1/journeys/backtests/{job.id}"), 200)
                job = BacktestJob.model_validate(found)
                bar.update(task, completed=job.progress)
    if job.status == "failed":
        raise CliError(f"the backtest failed: {job.error}")
    if as_json:
        print_json(job.model_dump(mode="json", exclude_none=True))
    elif job.comparison is not None:
        show(job.comparison.baseline)
        show(job.comparison.candidate)
        difference(job.comparison)
    elif job.report is not None:
        show(job.report)
    return job


def show(report: BacktestReport) -> None:
    """The report as a rich table: per step, then per week, the top customers, and the
    assumptions it made."""
    sent = ", ".join(f"{n} {c}" for c, n in sorted(report.messages.items())) or "none"
    rate = "-" if report.conversion is None else f"{report.conversion:.1%}"
    console.print(
        f"[bold]{report.journey_id}[/] {report.label}: {report.customers} customers, "
        f"{report.events} events, {report.enrolled} enrolled, sent {sent}, "
        f"suppressed {report.suppressed}, conversion {rate} ({report.seconds:.1f} s)"
    )
    table = Table("step", "type", "reached", "waiting", "sent", "suppressed", "held", "converted")
    for s in report.steps:
        table.add_row(
            s.id, s.type, str(s.reached), str(s.waiting),
            ", ".join(f"{n} {c}" for c, n in sorted(s.sent.items())) or "0",
            ", ".join(
                f"{n} {c} {why}" for c, reasons in sorted(s.suppressed.items())
                for why, n in sorted(reasons.items())
            ) or "0",
            ", ".join(f"{n} {why}" for why, n in sorted(s.held.items())) or "0",
            str(s.converted),
        )  # fmt: skip
    console.print(table)
    week = report.per_week
    cap = f" (cap {week.cap}: {week.over_cap} customers over it)" if week.cap else ""
    console.print(
        f"messages per customer per week: mean {week.mean}, p50 {week.p50}, p95 {week.p95}, "
        f"max {week.max}{cap}"
    )
    if report.top_customers:
        top = ", ".join(f"{t.customer_id} ({t.messages})" for t in report.top_customers[:5])
        console.print(f"most messaged: {top}")
    console.print("assumed: " + " ".join(report.assumptions), style="dim")


def difference(comparison: BacktestComparison) -> None:
    """Candidate minus baseline, per step: the change review before a publish."""
    table = Table(
        "step",
        f"reached {comparison.candidate.label} - {comparison.baseline.label}",
        "sent",
        "converted",
    )
    for s in comparison.steps:
        sent = ", ".join(f"{n:+d} {c}" for c, n in sorted(s.sent.items()) if n) or "0"
        table.add_row(s.id, f"{s.reached:+d}", sent, f"{s.converted:+d}")
    console.print(table)
    total = ", ".join(f"{n:+d} {c}" for c, n in sorted(comparison.messages.items())) or "0"
    console.print(f"messages {total}; conversions {comparison.converted:+d}")
