"""`journeys experiments ID` and `journeys bandit ID SPLIT ACTION`: a journey's experiments
over the API (`read`), and operators' decisions on a bandit split (`operate`, audited)."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer
from rich.table import Table

from journeys.cli.http import ApiUrl, CliError, Json, api_client, console, ok, print_json
from journeys.schemas.experiments import ArmResult, Experiment

Version = Annotated[int | None, typer.Option(help="A version; the latest by default.")]


def experiments(
    journey_id: Annotated[str, typer.Argument(help="The journey.")],
    version: Version = None,
    export: Annotated[
        str | None,
        typer.Option(help="Print one experiment's exposures as CSV (a split's id or holdout)."),
    ] = None,
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """A journey's experiments (splits, bandits, the holdout, content variants): per arm
    the exposures, conversions, the difference from the control with its 95% interval, an
    always-valid p-value, the probability to be best, and the verdict in words."""
    params = {"version": version} if version else {}
    base = f"/v1/journeys/{journey_id}/experiments"
    with api_client(api_url, timeout=300) as http:
        if export is not None:
            with http.stream("GET", f"{base}/{export}/exposures.csv", params=params) as answer:
                if answer.status_code != 200:
                    answer.read()
                    ok(answer)
                for chunk in answer.iter_text():
                    sys.stdout.write(chunk)
            return
        found = ok(http.get(base, params=params))
    if as_json:
        print_json(found)
        return
    console.print(f"[bold]{journey_id}[/] v{found['version']}")
    if not found["experiments"]:
        console.print("no experiments: no split, holdout or content variants in this version")
    for raw in found["experiments"]:
        show(Experiment.model_validate(raw))


def show(experiment: Experiment) -> None:
    """One experiment as a table and its verdict."""
    what = experiment.kind + ("" if experiment.metric == "goal" else f", on {experiment.metric}")
    title = f"{experiment.id} ({what})"
    if experiment.decision:
        title += f", {experiment.decision}"
    table = Table(
        "arm", "exposures", "conversions", "rate", "difference (95%)", "lift",
        "always-valid p", "P(best)", title=title, title_justify="left",
    )  # fmt: skip
    for arm in experiment.arms:
        table.add_row(*_cells(arm))
    console.print(table)
    if experiment.sample_ratio_mismatch:
        console.print(f"[red]sample-ratio mismatch (p = {experiment.sample_ratio_p:.2g})[/]")
    console.print(experiment.words)


def _cells(arm: ArmResult) -> list[str]:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    difference = "control" if arm.control else "-"
    if arm.difference is not None and arm.interval is not None:
        difference = (
            f"{arm.difference * 100:+.1f} pts ({arm.interval.low * 100:.1f} to "
            f"{arm.interval.high * 100:.1f})"
        )
    p = "-" if arm.always_valid_p is None else f"{arm.always_valid_p:.3g}"
    return [
        arm.name, str(arm.exposures), str(arm.conversions), pct(arm.rate), difference,
        pct(arm.lift), p, pct(arm.probability_best),
    ]  # fmt: skip


def bandit(
    journey_id: Annotated[str, typer.Argument(help="The journey.")],
    split_id: Annotated[str, typer.Argument(help="The bandit split's step id.")],
    action: Annotated[
        Literal["freeze", "winner", "release"],
        typer.Argument(help="freeze its weights, declare a winner, or release it."),
    ],
    arm: Annotated[str | None, typer.Option(help="The winner (with `winner`).")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "operator",
    api_url: ApiUrl = None,
    as_json: Json = False,
) -> None:
    """Freeze a bandit split's weights as they are, send every later entrant to a winning
    arm, or give the split back to the bandit. Enrollments that took an arm keep it."""
    if action == "winner" and not arm:
        raise CliError("a winner needs --arm")
    body = {"action": action, "reason": reason, **({"arm": arm} if arm else {})}
    with api_client(api_url) as http:
        url = f"/v1/journeys/{journey_id}/experiments/{split_id}/decision"
        found = ok(http.post(url, json=body))
    if as_json:
        print_json(found)
        return
    show(Experiment.model_validate(found))
