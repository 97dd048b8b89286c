"""The authors' testing kit on this repo's own example journeys: scenario 1 in virtual time
through the real router, the worker and the channels (no API, no PostgreSQL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from testkit import JourneyKit
from tests.conftest import repo_root


async def test_onboarding_nudge_reminds_then_emails(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.profile("golfer-1", email="golfer-1@test.example",
                              attributes={"first_name": "Ana"})  # fmt: skip
    routed = await journey_kit.event("golfer-1", "registration.completed")
    assert routed.entered == ["onboarding-nudge"]
    run = journey_kit.run("onboarding-nudge", "golfer-1")

    state = await run.advance(timedelta(hours=23))
    assert state.step == "wait-club" and await run.sent() == []
    await run.advance(timedelta(hours=14))  # the timeout, then at most 12 h to the best time
    [push] = await run.sent()
    assert (push.step, push.channel, push.status, push.template) == (
        "push", "in_app", "sent", "come-back"
    )  # fmt: skip
    assert push.text.startswith("Ana, add your clubs")

    final = await run.finish()
    assert final.status == "completed"
    assert await run.path() == ["wait-club", "push", "wait-more", "email", "done"]
    email = (await run.sent())[-1]
    assert (email.channel, email.subject) == ("email", "Ana, your bag is waiting")
    [received] = journey_kit.emails("golfer-1@test.example")
    assert received.subject == "Ana, your bag is waiting"
    assert "have not added any clubs" in received.text()


async def test_adding_clubs_converts(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.event("golfer-2", "registration.completed")
    run = journey_kit.run("onboarding-nudge", "golfer-2")
    await run.advance(timedelta(hours=3))
    await journey_kit.event("golfer-2", "bag.club_added", club="driver")
    state = await run.state()
    assert state.status == "converted" and await run.sent() == []


def readme_tests() -> list[str]:
    """The README's Python code blocks that define a test."""
    text = (repo_root() / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if re.search(r"^(async )?def test_", b, flags=re.M)]


def test_the_readme_tests_run_as_is_in_an_empty_folder(tmp_path: Path) -> None:
    """Each README block that defines a test, copied into an empty folder and run with
    pytest there (its own dev server; the kit's plugin comes with the package)."""
    blocks = readme_tests()
    assert blocks, "the README shows a complete test"
    for i, block in enumerate(blocks):
        folder = tmp_path / f"block{i}"
        folder.mkdir()
        (folder / "test_readme.py").write_text(block)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme.py"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        )
        defined = len(re.findall(r"^(?:async )?def test_", block, flags=re.M))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{defined} passed" in done.stdout, done.stdout
