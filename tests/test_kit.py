"""The authors' testing kit as the README shows it, and what it runs for real (the
examples' own tests use it too: test_examples.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from journeys.activities.profiles import ProfileActivities
from journeys.schemas.activities import SendTimeRequest
from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitStep,
)
from journeys.testkit import JourneyKit
from tests.conftest import repo_root
from tests.helpers import one_send


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


async def test_a_local_time_wait_runs_in_the_customers_zone(journey_kit: JourneyKit) -> None:
    """The real `next_local_time` activity through the kit: 09:00 in Jakarta (UTC+7)."""
    journey = JourneySpec(
        id="morning",
        name="Good morning",
        entry=Entry(event="signed.up"),
        steps=[
            WaitStep(id="nine", until_local_time=time(9, 0), next="hello"),
            SendStep(id="hello", channel="in_app", content=MessageContent(body="Hi"), next="end"),
            ExitStep(id="end"),
        ],
    )
    await journey_kit.publish(journey.model_dump(mode="json"))  # the JSON form
    await journey_kit.profile("early-bird", timezone="Asia/Jakarta")
    await journey_kit.event("early-bird", "signed.up")
    final = await journey_kit.run("morning", "early-bird").finish()
    sent_at = final.path[1].at.astimezone(ZoneInfo("Asia/Jakarta"))
    assert (sent_at.hour, sent_at.minute) == (9, 0)
    assert [s.status for s in await journey_kit.sent("early-bird")] == ["sent"]


async def test_the_best_time_lookup_of_older_histories(journey_kit: JourneyKit) -> None:
    """Histories from before the patch `best-time-in-send` still run the `best_send_time`
    activity: the customer's busiest hour within the bound, else now."""
    profiles = ProfileActivities(journey_kit.stores.profiles)
    now = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    await journey_kit.profile("night-owl", active_hours=[0] * 22 + [9, 0])
    ask = SendTimeRequest(customer_id="night-owl", at=now, within=timedelta(hours=24))
    assert await profiles.best_send_time(ask) == now.replace(hour=22)
    unknown = ask.model_copy(update={"customer_id": "new-here"})
    assert await profiles.best_send_time(unknown) == now


async def test_a_webhook_send_reaches_the_sandbox_signed(journey_kit: JourneyKit) -> None:
    """The kit's webhook receiver checks the signature with the key the channel signs with."""
    body = "order {{ event.order }}"
    journey = one_send("hook", entry="ordered", body=body, channel="webhook", topic="transactional")
    await journey_kit.publish(journey)
    await journey_kit.event("shop-1", "ordered", order="A-1")
    [sent] = await journey_kit.run("hook", "shop-1").sent()
    assert (sent.channel, sent.status, sent.text) == ("webhook", "sent", "order A-1")
    assert len(journey_kit.received("webhooks")) == 1
