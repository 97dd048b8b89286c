"""The patch policy: every patch is recorded with the day it went in, the workflow code asks
for exactly those, and one may be deprecated only when no history within retention uses it."""

from __future__ import annotations

import ast
from datetime import date, timedelta

from journeys.workflows import engine, journey, patches
from journeys.workflows.patches import Patch, may_deprecate
from tests.conftest import repo_root


def test_every_patch_has_its_day_and_reason_and_is_asked_for() -> None:
    ids = [p.id for p in patches.PATCHES]
    assert len(ids) == len(set(ids))
    assert tuple(ids) == journey.PATCHES
    for patch in patches.PATCHES:
        assert patch.added >= date(2026, 1, 1) and patch.why
    sources = [(repo_root() / "workflows" / f).read_text() for f in ("journey.py", "engine.py")]
    asked = {
        node.args[0].id
        for source in sources
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "_patched"
        and node.args
        and isinstance(node.args[0], ast.Name)
    }
    live = {getattr(journey, name, None) or getattr(engine, name) for name in asked}
    assert live == set(ids) - patches.DEPRECATED, "each live patch has a patched branch"


def test_the_patch_set_holds_only_recorded_patches() -> None:
    assert set(journey.PATCH_SET_MEMBERS) <= set(journey.PATCHES)


def test_a_patch_may_be_deprecated_only_when_unused_and_older_than_retention() -> None:
    patch = Patch("p", date(2026, 11, 1), "old branch")
    month = timedelta(days=30)
    assert may_deprecate(patch, 0, today=date(2026, 12, 6), retention=month)
    assert not may_deprecate(patch, 1, today=date(2026, 12, 6), retention=month)  # in use
    assert not may_deprecate(patch, 0, today=date(2026, 11, 20), retention=month)  # too new
