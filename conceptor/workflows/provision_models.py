"""Inputs, results and progress of the provisioning workflow and its activities (no secrets)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

StepName = Literal[
    "wait_for_postgres",
    "migrate_postgres",
    "wait_for_redis",
    "wait_for_minio",
    "ensure_buckets",
    "wait_for_keycloak",
    "import_realm",
]
# The four independent chains; a step runs after the one before it in its chain.
CHAINS: tuple[tuple[StepName, ...], ...] = (
    ("wait_for_postgres", "migrate_postgres"),
    ("wait_for_redis",),
    ("wait_for_minio", "ensure_buckets"),
    ("wait_for_keycloak", "import_realm"),
)
ALL_STEPS: tuple[StepName, ...] = tuple(step for chain in CHAINS for step in chain)

Outcome = Literal["created", "updated", "unchanged"]
StepState = Literal["pending", "running", "completed", "failed", "skipped"]


class WaitInput(BaseModel):
    """How long a wait_for_* activity may keep trying, counted from its first scheduling."""

    deadline_seconds: float = 180.0


class StepResult(BaseModel):
    """What one step changed: an outcome, counts per kind of change, and the names involved."""

    outcome: Outcome = "unchanged"
    counts: dict[str, int] = Field(default_factory=dict)
    changed: list[str] = Field(default_factory=list)
    attempts: int = 1
    detail: str = ""

    @classmethod
    def from_counts(
        cls,
        *,
        created: list[str],
        updated: list[str],
        unchanged: list[str],
        attempts: int = 1,
        detail: str = "",
    ) -> StepResult:
        """Outcome `created` when everything was new, `updated` on any other change."""
        if created and not updated and not unchanged:
            outcome: Outcome = "created"
        elif created or updated:
            outcome = "updated"
        else:
            outcome = "unchanged"
        return cls(
            outcome=outcome,
            counts={"created": len(created), "updated": len(updated), "unchanged": len(unchanged)},
            changed=[*(f"+{n}" for n in created), *(f"~{n}" for n in updated)],
            attempts=attempts,
            detail=detail,
        )


class ProvisionInput(BaseModel):
    """Optional: which steps to run (default all) and a deadline per step (default settings)."""

    steps: list[StepName] | None = None
    step_deadline_seconds: float | None = None


class ProvisionDefaults(BaseModel):
    """Values the workflow reads from the worker's settings (through a local activity)."""

    step_deadline_seconds: float


class StepProgress(BaseModel):
    """One step's live state, as the `progress` query and the UI's details show it."""

    step: StepName
    state: StepState = "pending"
    attempts: int = 0
    duration_seconds: float | None = None
    result: StepResult | None = None
    error: str | None = None


class ProvisionProgress(BaseModel):
    """The answer of the `progress` query."""

    steps: list[StepProgress]
    finished: bool = False


class ProvisionResult(BaseModel):
    """The workflow's result: one StepResult per step that ran."""

    steps: dict[str, StepResult]
    duration_seconds: float

    @property
    def outcomes(self) -> dict[str, Outcome]:
        return {name: step.outcome for name, step in self.steps.items()}


class ResetPostgresResult(BaseModel):
    """What the reset dropped and what the re-migration applied."""

    dropped_tables: int
    migrations: StepResult
