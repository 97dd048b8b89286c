"""The operator's skip and migrate controls over one enrollment, as one small state machine.

An update asks (`skip`, `migrate`); the wait under way ends and takes the skip
(`wait_ended`); the main loop carries out the migration (`carried_out`, `refused`) or the
enrollment ends first (`ended`); the update answers once its request is settled. Deterministic
state only: the workflow owns the history and the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from journeys.schemas.enrollment import MigrateRequest, MigrationPlan


@dataclass
class Controls:
    cutting: str | None = None
    """Why the wait under way must end now (an operator's skip, or a migration)."""
    skipped: str | None = None
    """Why the last wait ended early, for its path entry; None when it ran its course."""
    migration: MigrateRequest | None = None
    """An accepted migration the main loop has not carried out yet."""
    promised: MigrationPlan | None = None
    """The plan as the update accepted it (what the operator was told)."""
    outcome: MigrationPlan | str | None = None
    """The plan carried out, or why the migration was refused; None while pending."""
    cut_wait: bool = False
    """The migration ended a wait: the wait's own step is what maps into the new version."""

    def skip(self, reason: str) -> None:
        self.cutting = reason

    @property
    def skip_settled(self) -> bool:
        return self.cutting is None

    def migrate(self, request: MigrateRequest, plan: MigrationPlan, *, waiting: bool) -> None:
        """Accept `request`; a wait under way ends now, as a skip would end it."""
        self.migration, self.outcome, self.promised = request, None, plan
        self.cut_wait = waiting
        if waiting:
            self.cutting = f"migrated to v{request.version} by an operator: {request.reason}"

    def wait_ended(self) -> str | None:
        """Take a pending cut as the end of the wait that just ended; why, if it was cut."""
        self.skipped, self.cutting = self.cutting, None
        return self.skipped

    def carried_out(self, plan: MigrationPlan) -> MigrationPlan:
        """The plan that happened: the promised one when it still holds (a cut wait)."""
        promised = self.promised
        if promised is not None and promised.from_step == plan.from_step:
            plan = promised
        else:
            plan.effect = f"the enrollment entered '{plan.to_step}' of v{plan.to_version} next"
        self.outcome = plan
        return plan

    def refused(self, why: str) -> None:
        self.outcome, self.migration = why, None

    def ended(self, status: str) -> None:
        """The enrollment ended: a migration still pending is answered with why not."""
        if self.migration is not None and self.outcome is None:
            self.outcome = f"enrollment {status} before it could migrate"
