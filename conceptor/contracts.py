"""The contracts between sides: queue and workflow names, every workflow and activity model.

Imported by the workflows, the activities, the workers, the API and the CLI alike; it imports
nothing of the application, so any side can depend on it without pulling in another side's code
(the API starts a workflow without loading a worker's libraries). No secrets in any model:
everything here travels through Temporal and is shown in its Web UI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# ----- task queues -------------------------------------------------------------------------

# The platform's own queue (provisioning, drift watch, snapshots); a team's queues are named
# by its environment file only.
CORE_QUEUE = "core"

# ----- workflows: started and queried by these names ---------------------------------------

PROVISION_WORKFLOW = "ProvisionWorkflow"
PROVISION_PLAN_WORKFLOW = "ProvisionPlanWorkflow"
DRIFT_WATCH_WORKFLOW = "DriftWatchWorkflow"
RESET_POSTGRES_WORKFLOW = "ResetPostgresWorkflow"
PROVISION_WORKFLOW_ID = "provision"
RESET_POSTGRES_WORKFLOW_ID = "reset-postgres"
PROVISION_PLAN_WORKFLOW_ID = "provision-plan"
DRIFT_WATCH_SCHEDULE_ID = "drift-watch"
PROGRESS_QUERY = "progress"


# ----- activities that workflows call by name ---------------------------------------------

SEND_NOTIFICATION = "send_notification"
PROVISION_DEFAULTS = "provision_defaults"
REGISTER_DRIFT_WATCH = "register_drift_watch"
RESET_POSTGRES = "reset_postgres"

# ----- provisioning ------------------------------------------------------------------------

# The platform's own step names (the API refuses others unless the environment file declares
# them: `migrate_postgres:<database>`, `import_realm:<realm>`, a team's own steps).
StepName = Literal[
    "wait_for_postgres",
    "migrate_postgres",
    "wait_for_redis",
    "wait_for_minio",
    "ensure_buckets",
    "wait_for_keycloak",
    "import_realm",
]
# The activity a team's own step runs through (it imports the step's `run:` and calls it).
CUSTOM_STEP = "custom_step"
# A database's seed data, after its migrations: only for a database that declares some.
SEED_STEP = "seed_postgres"
# A bucket's seed files, after the buckets are ensured: `seed_bucket:<bucket>`, only for a
# bucket that declares a seed folder.
SEED_BUCKET_STEP = "seed_bucket"
# Changes the drift watch does not report: a row or object `insert-missing` seeds is the
# developer's once it exists (a missing one is still created by provisioning, and planned).
UNWATCHED_KINDS = frozenset({"seed-row", "seed-object"})
# Where a step of a declared object puts the object's name: `migrate_postgres:billing`.
TARGET_SEPARATOR = ":"


class GraphStep(BaseModel):
    """One step of the provisioning graph: the activity it runs, on what, after which steps."""

    name: str  # e.g. "migrate_postgres", "migrate_postgres:billing", "create_topics"
    activity: str  # the activity run by name
    # The declared object it works on (a database, a realm, a team's step); None: the one
    # settings name (the plain `migrate_postgres` and `import_realm`).
    target: str | None = None
    after: list[str] = Field(default_factory=list)
    # Reads desired and live state and applies a Diff: planned, watched for drift, healed.
    reconciling: bool = False
    service: str | None = None  # whose data it manages (data-loss healing); None: nobody's
    # Its time grows with what it manages: no deadline per attempt (see PROGRESS_STEPS).
    long_running: bool = False


class ProvisionGraph(BaseModel):
    """Every step provisioning runs and what each waits for: derived from the environment
    file by the worker (`provision_defaults`), so a workflow never reads a file."""

    steps: list[GraphStep]

    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def get(self, name: str) -> GraphStep | None:
        return next((s for s in self.steps if s.name == name), None)

    def reconciling(self) -> list[str]:
        return [s.name for s in self.steps if s.reconciling]

    def with_dependencies(self, names: list[str]) -> list[str]:
        """`names` and every step they wait for, directly or not, in graph order."""
        wanted: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            step = self.get(name)
            if name in wanted or step is None:
                continue
            wanted.add(name)
            todo.extend(step.after)
        return [n for n in self.names() if n in wanted]


def build_graph(
    *,
    databases: list[str],
    realms: list[str],
    custom: list[tuple[str, list[str], bool]] | None = None,
    services: frozenset[str] | set[str] | None = None,
    seeded: list[str] | None = None,
    seeded_buckets: list[str] | None = None,
) -> ProvisionGraph:
    """The graph of a stack: one chain per service, one step per database and realm after
    its service's wait, a seed step after the migrations of each database in `seeded`, one
    after `ensure_buckets` for each bucket in `seeded_buckets`, then a team's own steps
    (name, after, whether it plans).

    The first database and the first realm are the ones settings name: their steps keep the
    plain names `migrate_postgres` and `import_realm`; the others are `<step>:<name>`.
    """
    on = services if services is not None else {"postgres", "redis", "minio", "keycloak"}
    steps: list[GraphStep] = []

    def objects(wait: str, step: str, names: list[str], service: str, long: bool) -> None:
        steps.append(GraphStep(name=wait, activity=wait))
        for i, name in enumerate(names):
            steps.append(
                GraphStep(
                    name=step if i == 0 else f"{step}{TARGET_SEPARATOR}{name}",
                    activity=step,
                    target=None if i == 0 else name,
                    after=[wait],
                    reconciling=True,
                    service=service,
                    long_running=long,
                )
            )

    if "postgres" in on:
        objects("wait_for_postgres", "migrate_postgres", databases, "postgres", False)
        for i, name in enumerate(databases):
            if name not in (seeded or []):
                continue
            plain = i == 0
            steps.append(
                GraphStep(
                    name=SEED_STEP if plain else f"{SEED_STEP}{TARGET_SEPARATOR}{name}",
                    activity=SEED_STEP,
                    target=None if plain else name,
                    after=["migrate_postgres" if plain else f"migrate_postgres:{name}"],
                    reconciling=True,
                )
            )
    if "redis" in on:
        steps.append(GraphStep(name="wait_for_redis", activity="wait_for_redis"))
    if "minio" in on:
        objects("wait_for_minio", "ensure_buckets", ["buckets"], "minio", False)
        steps.extend(
            GraphStep(
                name=f"{SEED_BUCKET_STEP}{TARGET_SEPARATOR}{bucket}",
                activity=SEED_BUCKET_STEP,
                target=bucket,
                after=["ensure_buckets"],
                reconciling=True,
            )
            for bucket in seeded_buckets or []
        )
    if "keycloak" in on:
        objects("wait_for_keycloak", "import_realm", realms, "keycloak", True)
    # The file names every object's step `<step>:<name>`, the first ones' too: their alias.
    alias = {f"migrate_postgres{TARGET_SEPARATOR}{d}": "migrate_postgres" for d in databases[:1]}
    alias.update({f"import_realm{TARGET_SEPARATOR}{r}": "import_realm" for r in realms[:1]})
    alias.update({f"{SEED_STEP}{TARGET_SEPARATOR}{d}": SEED_STEP for d in databases[:1]})
    for name, after, plans in custom or []:
        steps.append(
            GraphStep(
                name=name,
                activity=CUSTOM_STEP,
                target=name,
                after=[alias.get(a, a) for a in after],
                reconciling=plans,
            )
        )
    return ProvisionGraph(steps=steps)


# Which service's data each built-in reconciling step manages (for data-loss healing).
STEP_SERVICE: dict[str, str] = {
    "migrate_postgres": "postgres",
    "ensure_buckets": "minio",
    "import_realm": "keycloak",
}


Outcome = Literal["created", "updated", "unchanged"]
StepState = Literal["pending", "running", "completed", "failed", "skipped"]


class WaitInput(BaseModel):
    """How long a wait_for_* activity may keep trying, counted from its first scheduling."""

    deadline_seconds: float = 180.0


# ----- the reconcile model: desired state -> live state -> typed diff -> apply -> verify -----

ChangeAction = Literal["create", "update", "delete", "unchanged", "drift"]
# What a change means for the step's counts (and for the `changed` list's sign).
_COUNTED_AS: dict[str, str] = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "unchanged": "unchanged",
    "drift": "drift",
}
_SIGN = {"create": "+", "update": "~", "delete": "-", "drift": "!"}
_WRITES = ("create", "update", "delete")
# How many changes a step's result lists; the full diff is kept apart (see Diff.bounded).
RESULT_CHANGES = 50


class Change(BaseModel):
    """One managed object: how its live state differs from the desired one.

    `create`, `update` and `delete` are what applying does; `unchanged` was compared and found
    equal; `drift` is reported and never touched (e.g. a table no migration created).
    """

    kind: str  # e.g. "client", "client-role", "group", "bucket-policy", "migration", "table"
    name: str  # its identity within the kind, e.g. "conceptor-api", "/platform-admins/ops"
    action: ChangeAction
    fields: list[str] = Field(default_factory=list)  # what differs (JSON paths), for updates
    source: str = ""  # where the desired object is in its file (JSON path), when it has one

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


class Diff(BaseModel):
    """Desired vs live state of one step's target: a pure value, computed apart from applying.

    The digests identify the states it was computed from, so a plan can be refused when the
    files or the live state have moved on since. A step's result carries a bounded copy
    (`bounded`): `left_out` counts the changes it does not list, and `ref` names the full diff,
    kept outside the workflow history.
    """

    target: str  # e.g. "realm partners", "buckets", "database app"
    changes: list[Change] = Field(default_factory=list)
    desired_digest: str = ""
    live_digest: str = ""
    left_out: dict[str, int] = Field(default_factory=dict)  # action -> changes not listed
    ref: str | None = None  # the full diff: `conceptor provision --diff REF`

    @property
    def pending(self) -> list[Change]:
        """What applying would write (of the changes listed)."""
        return [c for c in self.changes if c.action in ("create", "update", "delete")]

    @property
    def drift(self) -> list[Change]:
        return [c for c in self.changes if c.action == "drift"]

    @property
    def is_empty(self) -> bool:
        """Nothing to write (drift that is only reported does not count)."""
        return not self.pending and not any(self.left_out.get(a) for a in _WRITES)

    @property
    def complete(self) -> bool:
        """Every change is listed (not a bounded copy that left some out)."""
        return not any(self.left_out.values())

    def counts(self) -> dict[str, int]:
        """Changes per kind of change, those left out of a bounded copy included."""
        counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
        for action, n in [(c.action, 1) for c in self.changes] + list(self.left_out.items()):
            key = _COUNTED_AS[action]
            counts[key] = counts.get(key, 0) + n
        return counts

    def bounded(self, limit: int = RESULT_CHANGES, *, ref: str | None = None) -> Diff:
        """A copy listing at most `limit` changes, writes and drift first, the rest counted.

        What a workflow result carries: its size does not grow with the target's (a realm of
        50 000 users), while the digests, the counts and the first changes stay.
        """
        rank = {"create": 0, "update": 0, "delete": 0, "drift": 1, "unchanged": 2}
        changes = self.changes
        if len(changes) > limit:
            changes = sorted(changes, key=lambda c: rank[c.action])  # stable: order kept
        left_out = dict(self.left_out)
        for c in changes[limit:]:
            left_out[c.action] = left_out.get(c.action, 0) + 1
        return self.model_copy(
            update={"changes": changes[:limit], "left_out": left_out, "ref": ref or self.ref}
        )


class StepResult(BaseModel):
    """What one step changed: an outcome, counts per kind of change, and the names involved.

    Its size is bounded whatever the size of the step's target: it names at most
    RESULT_CHANGES changes, and the full diff is found by `diff.ref`.
    """

    outcome: Outcome = "unchanged"
    counts: dict[str, int] = Field(default_factory=dict)
    changed: list[str] = Field(default_factory=list)  # "+kind:name" of the changes `diff` lists
    attempts: int = 1
    detail: str = ""
    # Reconciling steps: the diff they applied (or, for a plan, would apply), bounded.
    diff: Diff | None = None
    planned: bool = False  # True: a dry run, nothing was written
    # What the step did not refuse but a person should know: one line per cause, naming the
    # JSON path and what the server does with it (e.g. a field Keycloak 24+ drops).
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def from_diff(
        cls,
        diff: Diff,
        *,
        planned: bool = False,
        attempts: int = 1,
        detail: str = "",
        warnings: list[str] | None = None,
        ref: str | None = None,
    ) -> StepResult:
        """The result of applying (or planning) `diff`: outcome, counts and names from it.

        `ref` names where the full diff is kept; the result lists RESULT_CHANGES at most.
        """
        counts = diff.counts()
        shown = diff.bounded(ref=ref)
        changes = [c for c in shown.changes if c.action != "unchanged"]
        writes = counts["created"] + counts["updated"] + counts["deleted"]
        if writes and counts["created"] == writes and not counts["unchanged"]:
            outcome: Outcome = "created"
        elif writes:
            outcome = "updated"
        else:
            outcome = "unchanged"
        return cls(
            outcome=outcome,
            counts=counts,
            changed=[f"{_SIGN[c.action]}{c.label}" for c in changes],
            attempts=attempts,
            detail=detail,
            diff=shown,
            planned=planned,
            warnings=list(warnings or []),
        )


class ProvisionInput(BaseModel):
    """Optional: which steps to run (default all) and a deadline per step (default settings)."""

    steps: list[str] | None = None  # names of the graph's steps
    step_deadline_seconds: float | None = None
    plan: bool = False  # compute every selected step's diff, write nothing
    # Apply exactly a saved plan: per reconciling step, the digests that plan saw.
    expected: dict[str, PlanDigests] | None = None
    reason: str | None = None  # why this run happens (drift repair, data loss), for its history


class PlanDigests(BaseModel):
    """The desired and live state a plan saw for one step."""

    desired_digest: str
    live_digest: str

    def moved(self, now: Diff) -> list[str]:
        """What changed since the plan, by `now` (a diff just computed): files, live state."""
        return [
            what
            for what, saw, current in (
                ("files", self.desired_digest, now.desired_digest),
                ("live state", self.live_digest, now.live_digest),
            )
            if saw != current
        ]


class ReconcileInput(BaseModel):
    """How a reconciling step runs: apply the diff (default), or only compute it (a plan).

    With `expected` set (applying a saved plan), a step whose files or live state moved since
    the plan refuses before writing anything (failure type `StalePlan`).
    """

    plan: bool = False
    expected: PlanDigests | None = None
    # The declared object the step works on (`billing` of `migrate_postgres:billing`);
    # None: the one settings name. A name only: the worker reads the rest from its files.
    target: str | None = None


class ProvisionDefaults(BaseModel):
    """Values the workflow reads from the worker's settings (through a local activity)."""

    step_deadline_seconds: float
    drift_repair: bool = False
    # The environment file's, as the worker reads it (conceptor/stack_graph.py).
    graph: ProvisionGraph = Field(default_factory=lambda: ProvisionGraph(steps=[]))


class StepProgress(BaseModel):
    """One step's live state, as the `progress` query and the UI's details show it."""

    step: str
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


class DriftItem(BaseModel):
    """One object whose live state differs from the files (or that is not managed: `drift`)."""

    step: str
    kind: str
    name: str
    action: ChangeAction
    fields: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.step} {self.kind}:{self.name}"


class DriftReport(BaseModel):
    """What one drift check found, and what it did about it."""

    checked_at: datetime
    items: list[DriftItem] = Field(default_factory=list)
    # Services whose state was entirely missing (wiped data): healed whatever the settings.
    data_loss: list[str] = Field(default_factory=list)
    # Steps that could not be compared (service down, a refused file), with the reason.
    unchecked: dict[str, str] = Field(default_factory=dict)
    repair_workflow_id: str | None = None
    repaired: bool = False
    # Drifted objects a step's bounded diff did not list, and each step's full diff (by ref).
    left_out: int = 0
    diff_refs: dict[str, str] = Field(default_factory=dict)

    @property
    def has_drift(self) -> bool:
        return bool(self.items or self.left_out or self.data_loss)


class ResetPostgresInput(BaseModel):
    """Which declared database to reset: its name in the environment file (None: the first,
    the one settings name)."""

    database: str | None = None


def reset_postgres_workflow_id(database: str | None = None) -> str:
    """One reset per database at a time: the first keeps the plain id."""
    return (
        RESET_POSTGRES_WORKFLOW_ID
        if database is None
        else f"{RESET_POSTGRES_WORKFLOW_ID}:{database}"
    )


class ResetPostgresResult(BaseModel):
    """What the reset dropped and what the re-migration applied."""

    dropped_tables: int
    migrations: StepResult
    database: str | None = None  # the declared database reset (None: the first)
    # Its seed data, loaded again after the migrations (None: the database declares none).
    seed: StepResult | None = None


# ----- notifications -----------------------------------------------------------------------


class SendNotificationInput(BaseModel):
    """What to say; sender and recipient come from settings, never from workflow input."""

    subject: str
    body: str
    # Stable per event, so a retried send is recognisable as the same message.
    message_key: str


class SendNotificationResult(BaseModel):
    message_id: str
    to: str
