"""A welcome series that branches on the plan and A/B-tests the channel for free users,
with a 10% holdout that receives nothing (so the lift is measurable)."""

from datetime import timedelta

from journeys.schemas.delivery import Template
from journeys.schemas.journey import (
    BranchCase,
    BranchStep,
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    SendStep,
    SplitPath,
    SplitStep,
    WaitStep,
)
from journeys.schemas.predicates import Comparison

JOURNEY = JourneySpec(
    id="welcome-series",
    name="Welcome series",
    description="Pro sign-ups get a personal email; free sign-ups are split in-app vs email.",
    entry=Entry(event="signup.completed"),
    goal=EventCondition(event="first_project.created"),
    exit_when=[EventCondition(event="unsubscribed")],
    reentry="never",
    steps=[
        WaitStep(id="settle", duration=timedelta(minutes=10), next="plan"),
        BranchStep(
            id="plan",
            cases=[
                BranchCase(
                    when=Comparison(field="profile.attributes.plan", op="eq", value="pro"),
                    next="pro-email",
                )
            ],
            default="channel-test",
        ),
        SendStep(id="pro-email", channel="email", template="welcome-pro", next="done"),
        SplitStep(
            id="channel-test",
            paths=[
                SplitPath(name="in-app", weight=45, next="free-in-app"),
                SplitPath(name="email", weight=45, next="free-email"),
                SplitPath(name="holdout", weight=10, next="done"),
            ],
        ),
        SendStep(id="free-in-app", channel="in_app", template="welcome-free", next="done"),
        SendStep(id="free-email", channel="email", template="welcome-free", next="done"),
        ExitStep(id="done"),
    ],
)

TEMPLATES = [
    Template(
        id="welcome-pro",
        subject="Welcome to Pro, {{ profile.attributes.first_name | default('there') }}",
        body="Your Pro workspace is ready. Reply to this email to reach your success manager.",
    ),
    Template(
        id="welcome-free",
        subject="Welcome aboard",
        title="Welcome aboard",
        body="Create your first project to get started.",
    ),
]
