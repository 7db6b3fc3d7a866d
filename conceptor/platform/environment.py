"""The environment file (`_dev-env/environment.yaml`): what a team's stack declares, checked."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from conceptor.platform.limits import MAX_WORKERS_PER_QUEUE, REPO_ROOT

API_VERSION = "conceptor/v1"
DEFAULT_FILE = REPO_ROOT / "_dev-env" / "environment.yaml"
# Another file for one run (a test, or a variant of the stack): `CONCEPTOR_ENVIRONMENT_FILE`.
FILE_VARIABLE = "CONCEPTOR_ENVIRONMENT_FILE"
SCHEMA_FILE = REPO_ROOT / "_dev-env" / "environment.schema.json"
# Python entry points a team's package may publish instead of an import path.
QUEUE_ENTRY_POINTS = "conceptor.queues"
STEP_ENTRY_POINTS = "conceptor.steps"
# The platform's own queue: provisioning and the drift watch run on it.
PLATFORM_QUEUE = "core"
IMPORT_TIMEOUT_SECONDS = 60.0

# Names become Tilt resources (`worker-<queue>-0`), Kubernetes objects, step names
# (`migrate_postgres:<db>`) and SQL identifiers: each kind keeps to what all its uses accept.
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_IMPORT_PATH = f"^{_DOTTED}:{_DOTTED}$"  # module:attribute, as in entry points
_DATABASE_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
_QUEUE_NAME = r"^[a-z][a-z0-9-]{0,39}$"
_STEP_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_REALM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
# S3 bucket naming rules (MinIO enforces them too); conceptor/activities/buckets.py has the same.
_BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# Free-form keys: compose's `x-` prefix, accepted at every level and ignored.
_FREE_FORM = re.compile(r"^x-")


class _Strict(BaseModel):
    """Unknown keys are errors; keys starting with `x-` are the one place for notes."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_extra={"patternProperties": {"^x-": {}}},
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_free_form(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and _FREE_FORM.match(k))
            }
        return data


_COLUMN_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
SeedMode = Literal["insert-missing", "enforce", "managed"]
SEED_SUFFIXES = (".yaml", ".yml", ".json", ".csv")


class SeedReference(_Strict):
    """A foreign key given by the referenced seeded row's natural key, not its generated id."""

    table: str = Field(pattern=_COLUMN_NAME, description="A seeded table of the same database.")
    key: list[str] = Field(
        min_length=1, description="The referenced table's natural key (its seed `key`)."
    )


class Seed(_Strict):
    """Rows of one table, reconciled after the database's migrations."""

    table: str = Field(pattern=_COLUMN_NAME, description="The table (schema public).")
    file: str = Field(description="YAML, JSON or CSV rows, relative to this file's folder.")
    key: list[str] = Field(
        min_length=1, description="The columns identifying a row: a natural key, not an id."
    )
    mode: SeedMode = Field(
        default="insert-missing",
        description=(
            "insert-missing: create missing rows only; enforce: also keep rows equal to the "
            "file; managed: enforce, and delete rows seeding inserted that the file dropped."
        ),
    )
    references: dict[str, SeedReference] = Field(
        default_factory=dict,
        description="column -> the seeded table and natural key its value names.",
    )


class Database(_Strict):
    """A PostgreSQL database of the stack, created if missing, then migrated."""

    name: str = Field(pattern=_DATABASE_NAME, description="The database's name (a SQL identifier).")
    migrations: str | list[str] = Field(
        description=(
            "Folder(s) of `NNNN_name.sql` migrations, relative to this file's folder; "
            "several folders are applied as one ordered set."
        )
    )
    owner: str | None = Field(
        default=None,
        pattern=_DATABASE_NAME,
        description="The role owning the database; absent: CENTRAL_POSTGRES_USER.",
    )
    seed: list[Seed] = Field(
        default_factory=list,
        description="Rows reconciled after the migrations (step seed_postgres:<database>).",
    )

    @property
    def migration_folders(self) -> list[str]:
        return [self.migrations] if isinstance(self.migrations, str) else list(self.migrations)


class Realm(_Strict):
    """A Keycloak realm imported from a realm file (a Keycloak export)."""

    name: str = Field(pattern=_REALM_NAME, description="The realm's name, as the file's `realm`.")
    file: str = Field(description="The realm file, relative to this file's folder.")
    api: bool | None = Field(
        default=None,
        description=(
            "Whether the API accepts access tokens this realm issues; absent: only the first "
            "realm's."
        ),
    )


class LifecycleRule(_Strict):
    """One expiry rule: objects under `prefix` expire `expire_days` after creation."""

    id: str = Field(min_length=1, max_length=255)
    prefix: str = ""
    expire_days: int | None = Field(default=None, ge=1)
    noncurrent_expire_days: int | None = Field(
        default=None, ge=1, description="With versioning: old versions go this long after."
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _expires_something(self) -> LifecycleRule:
        if self.expire_days is None and self.noncurrent_expire_days is None:
            msg = "a rule needs expire_days or noncurrent_expire_days"
            raise ValueError(msg)
        return self


class BucketSeed(_Strict):
    """A folder of files kept as the bucket's objects (key = the file's path in the folder)."""

    folder: str = Field(description="The folder of files, relative to this file's folder.")
    mode: SeedMode = Field(
        default="insert-missing",
        description=(
            "insert-missing: upload missing objects only; enforce: also keep objects equal to "
            "the files (by content hash); managed: enforce, and delete objects seeding put "
            "there that the folder no longer has."
        ),
    )


class Bucket(_Strict):
    """An object-storage bucket. An absent (null) setting is not managed: what is live stays."""

    name: str = Field(pattern=_BUCKET_NAME, description="S3 rules: 3-63 of a-z 0-9 . -")
    policy: Literal["private", "public-read"] = "private"
    versioning: bool | None = None
    lifecycle: list[LifecycleRule] | None = None
    seed: BucketSeed | None = Field(
        default=None,
        description="Objects reconciled after the buckets are ensured (step seed_bucket:<name>).",
    )


class Concurrency(_Strict):
    """How much one worker process of a queue runs at once."""

    activities: int = Field(default=50, ge=1, description="max concurrent activities")
    workflow_tasks: int = Field(default=20, ge=1, description="max concurrent workflow tasks")


class Blocking(_Strict):
    """Where the queue's blocking (non-async) activities run: never on the event loop."""

    kind: Literal["thread", "process"] = Field(description="a thread pool or a process pool")
    pool_size: int = Field(ge=1, le=256)


class Resources(_Strict):
    """Kubernetes limits of one worker pod (its memory request equals the limit)."""

    cpu: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str = Field(pattern=r"^[0-9]+(Ki|Mi|Gi)?$")


class Queue(_Strict):
    """A Temporal task queue and the worker processes that serve it."""

    name: str = Field(pattern=_QUEUE_NAME)
    workers: int = Field(
        default=1, ge=0, le=MAX_WORKERS_PER_QUEUE, description="default worker processes"
    )
    declaration: str | None = Field(
        default=None,
        pattern=_IMPORT_PATH,
        description=(
            "`module:attribute` naming an object with `workflows()` and `activities(settings)`; "
            "the module is found from the repository root or this file's folder."
        ),
    )
    entry_point: str | None = Field(
        default=None,
        description=f"instead of `declaration`: an entry point of group {QUEUE_ENTRY_POINTS}.",
    )
    concurrency: Concurrency = Field(default_factory=Concurrency)
    blocking: Blocking | None = Field(default=None, description="absent: no blocking activities")
    resources: Resources | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> Queue:
        if (self.declaration is None) == (self.entry_point is None):
            msg = "give exactly one of `declaration` (module:attribute) or `entry_point`"
            raise ValueError(msg)
        return self


class Step(_Strict):
    """A team's own provisioning step, run after the steps it names."""

    name: str = Field(pattern=_STEP_NAME)
    run: str | None = Field(
        default=None,
        pattern=_IMPORT_PATH,
        description="`module:attribute`: a callable, or an object with desired/live/diff.",
    )
    entry_point: str | None = Field(
        default=None, description=f"instead of `run`: an entry point of group {STEP_ENTRY_POINTS}."
    )
    after: list[str] = Field(
        default_factory=list,
        description="steps this one runs after: this file's steps or built-in ones "
        "(wait_for_<service>, migrate_postgres:<database>, ensure_buckets, import_realm:<realm>).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Step:
        if (self.run is None) == (self.entry_point is None):
            msg = "give exactly one of `run` (module:attribute) or `entry_point`"
            raise ValueError(msg)
        return self


ImportPath = Annotated[str, Field(pattern=_IMPORT_PATH)]


class PanelCard(_Strict):
    """A card of the panel that the team's code fills: its title, its items, its empty text."""

    title: str = Field(min_length=1, max_length=80, description="the card's heading")
    items: ImportPath = Field(
        description="`module:attribute` of an async callable(resources) returning the card's "
        "items, each with `id` and `label`, and optionally `status` and `image_url`"
    )
    empty: str = Field(
        default="nothing yet", max_length=200, description="what the card says with no items"
    )


class Api(_Strict):
    """The API's extension points: a team's routes, served beside the platform's under /api."""

    routers: list[ImportPath] = Field(
        default_factory=list,
        description="`module:attribute` of a FastAPI APIRouter each, included under /api; "
        "the module is found from the repository root or this file's folder.",
    )
    upload_paths: list[str] = Field(
        default_factory=list,
        description="paths under /api (e.g. /uploads) whose bodies are multipart uploads, "
        "allowed up to CENTRAL_API_MAX_UPLOAD_BYTES (other bodies: JSON, "
        "CENTRAL_API_MAX_BODY_BYTES)",
    )
    panel_card: PanelCard | None = Field(
        default=None, description="a card of the panel the team's code fills; absent: none"
    )

    def targets(self) -> list[tuple[str, str]]:
        """(YAML path, import path) of everything this section names."""
        out = [(f"api.routers[{i}]", r) for i, r in enumerate(self.routers)]
        if self.panel_card is not None:
            out.append(("api.panel_card.items", self.panel_card.items))
        return out


class Services(_Strict):
    """Which infrastructure services run (all do unless turned off)."""

    postgres: bool = True
    redis: bool = True
    temporal: bool = True
    keycloak: bool = True
    minio: bool = True
    mailpit: bool = True
    front_door: bool = Field(default=True, alias="front-door")
    db_tools: bool = Field(default=True, alias="db-tools")

    def enabled(self) -> list[str]:
        """The names of the services that run, as `conceptor dev serve` knows them."""
        return [
            (info.alias or name)
            for name, info in type(self).model_fields.items()
            if getattr(self, name)
        ]


class Environment(_Strict):
    """The whole file."""

    model_config = ConfigDict(
        title="Conceptor environment file",
        json_schema_extra={
            "patternProperties": {"^x-": {}},
            "description": "Everything a team's dev stack declares: _dev-env/environment.yaml.",
        },
    )

    api_version: Literal["conceptor/v1"] = Field(alias="apiVersion")
    services: Services = Field(default_factory=Services)
    databases: list[Database] = Field(default_factory=list)
    realms: list[Realm] = Field(default_factory=list)
    buckets: list[Bucket] = Field(default_factory=list)
    queues: list[Queue] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    api: Api = Field(default_factory=Api)

    def api_realms(self) -> list[str]:
        """The realms whose tokens the API accepts: those with `api: true`, and the first
        unless it says `api: false`."""
        return [
            r.name for i, r in enumerate(self.realms) if (r.api if r.api is not None else i == 0)
        ]

    def builtin_steps(self) -> list[str]:
        """The platform's steps this file implies, by the names `after:` may use."""
        out: list[str] = []
        if self.services.postgres:
            out += ["wait_for_postgres", *(f"migrate_postgres:{d.name}" for d in self.databases)]
            out += [f"seed_postgres:{d.name}" for d in self.databases if d.seed]
        if self.services.redis:
            out.append("wait_for_redis")
        if self.services.minio:
            out += ["wait_for_minio", "ensure_buckets"]
            out += [f"seed_bucket:{b.name}" for b in self.buckets if b.seed is not None]
        if self.services.keycloak:
            out += ["wait_for_keycloak", *(f"import_realm:{r.name}" for r in self.realms)]
        return list(dict.fromkeys(out))  # two objects with one name are refused elsewhere


# ----- problems ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One refusal: where in the file, what is wrong, what to do."""

    path: str  # YAML path, e.g. databases[1].migrations
    why: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.why}; {self.fix}"


class EnvironmentFileError(Exception):
    """The file is refused; `problems` lists every reason found."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{file} is refused ({len(problems)} problem(s)):\n{lines}")


def yaml_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a YAML path: ('queues', 1, 'name') -> queues[1].name."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ----- reading -------------------------------------------------------------------------------


def _duplicate_keys(node: yaml.Node | None, path: str = "") -> Iterator[Problem]:
    """Keys given twice in one mapping (PyYAML would silently keep the last), by YAML path."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in first:
                yield Problem(
                    child,
                    f"key {key!r} appears twice (lines {first[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would keep only the last",
                    "merge the two into one",
                )
            else:
                first[key] = key_node.start_mark.line
            yield from _duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def _field_by_key(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at `loc` (to list its keys in a refusal)."""
    current: Any = Environment
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = _field_by_key(current, part)
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X], X | None -> X (the model inside a field's type); other types as they are."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(info.alias or name for name, info in model.model_fields.items())


def _file_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The location without pydantic's union tags (`migrations.str`, `migrations.list[str]`)."""
    out: list[int | str] = []
    current: Any = Environment
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            break  # inside a union of plain types: the rest are tags
        info = _field_by_key(current, part)
        if info is None:  # an unknown key, or a model's validator error
            out.append(part)
            break
        out.append(part)
        current = _unwrap(info.annotation)
    return tuple(out)


def _validation_problems(exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    unions: dict[str, list[str]] = {}  # one problem per place, however many types it may take
    for err in exc.errors():
        loc = _file_loc(tuple(err["loc"]))
        path = yaml_path(loc)
        kind = err["type"]
        if loc != tuple(err["loc"]) and kind != "extra_forbidden":
            if path not in unions:
                unions[path] = []
                problems.append(Problem(path, "", "correct it (see environment.schema.json)"))
            unions[path].append(str(err["msg"]).removeprefix("Input should be "))
            continue
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            known = f"; known keys here: {_keys(model)}" if model else ""
            problems.append(
                Problem(
                    path,
                    f"unknown key {loc[-1]!r}",
                    f"remove it or correct its spelling{known} (a note may use an `x-` key)",
                )
            )
        elif kind == "missing":
            problems.append(Problem(path, "is missing", "add it"))
        elif path == "apiVersion" and kind == "literal_error":
            problems.append(
                Problem(
                    path,
                    f"{err['input']!r} is not a version this platform reads",
                    f"set apiVersion: {API_VERSION}",
                )
            )
        elif kind == "string_pattern_mismatch":
            problems.append(
                Problem(
                    path,
                    f"{err['input']!r} does not match {err['ctx']['pattern']}",
                    "rename it (see environment.schema.json)",
                )
            )
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(Problem(path, msg, "correct it (see environment.schema.json)"))
    return [
        Problem(p.path, "Input should be " + " or ".join(dict.fromkeys(unions[p.path])), p.fix)
        if p.path in unions and not p.why
        else p
        for p in problems
    ]


# libyaml's loader when PyYAML was built with it (its wheels are): ten times the pure-Python
# one's speed. The seed files are read with it too.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=8)
def _read_yaml(text: str) -> tuple[tuple[Problem, ...], Any]:
    """Keys given twice, and the data, of one text: every step of a provisioning run reads
    the same file (kept by text: an edit is read anew). Raises PyYAML's errors."""
    try:
        problems = tuple(_duplicate_keys(yaml.compose(text, Loader=YAML_LOADER)))
        return problems, yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        if YAML_LOADER is yaml.SafeLoader:
            raise
        # The pure-Python parser words its errors better ("found '<stream end>'"): a file
        # that does not parse is read again by it, for the message.
        yaml.compose(text, Loader=yaml.SafeLoader)
        raise


def parse(file: Path, text: str) -> Environment:
    """The file's declarations as a model; any problem of shape raises EnvironmentFileError."""
    try:
        found, raw = _read_yaml(text)
        problems = list(found)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "somewhere"
        raise EnvironmentFileError(
            file, [Problem("", f"not valid YAML at {where}: {exc.problem}", "correct the YAML")]
        ) from None
    except yaml.YAMLError as exc:
        raise EnvironmentFileError(
            file, [Problem("", f"not valid YAML: {exc}", "correct the YAML")]
        ) from None
    if problems:
        raise EnvironmentFileError(file, problems)
    if not isinstance(raw, dict):
        raise EnvironmentFileError(
            file,
            [Problem("", "the file is not a mapping", f"start it with apiVersion: {API_VERSION}")],
        )
    try:
        return Environment.model_validate(raw)
    except ValidationError as exc:
        raise EnvironmentFileError(file, _validation_problems(exc)) from None


def default_file() -> Path:
    """The file in use: $CONCEPTOR_ENVIRONMENT_FILE, else _dev-env/environment.yaml."""
    return Path(os.environ.get(FILE_VARIABLE) or DEFAULT_FILE)


def load(file: Path = DEFAULT_FILE) -> Environment:
    """Read and parse the file (shape only; `check` also looks at what it refers to)."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFileError(
            file, [Problem("", f"cannot be read: {exc.strerror}", "create it or name another")]
        ) from None
    return parse(file, text)


# ----- what the file refers to ----------------------------------------------------------------


def _duplicates(kind: str, section: str, names: list[str]) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            yield Problem(
                f"{section}[{i}].name",
                f"a second {kind} named {name!r} (the first is {section}[{first[name]}])",
                f"give each {kind} its own name",
            )
        else:
            first[name] = i


def _names_problems(env: Environment) -> Iterator[Problem]:
    yield from _duplicates("database", "databases", [d.name for d in env.databases])
    yield from _duplicates("realm", "realms", [r.name for r in env.realms])
    yield from _duplicates("bucket", "buckets", [b.name for b in env.buckets])
    yield from _duplicates("queue", "queues", [q.name for q in env.queues])
    yield from _duplicates("step", "steps", [s.name for s in env.steps])
    builtin = set(env.builtin_steps())
    builtin |= {name.partition(":")[0] for name in builtin}  # the plain migrate_postgres too
    for i, step in enumerate(env.steps):
        if step.name in builtin:
            yield Problem(
                f"steps[{i}].name",
                f"{step.name!r} is a built-in step's name",
                "give the step a name of its own",
            )


def _services_problems(env: Environment) -> Iterator[Problem]:
    svc = env.services
    if not svc.temporal:
        yield Problem(
            "services.temporal",
            "the platform runs on Temporal: provisioning and every worker need it",
            "set services.temporal: true",
        )
    needs: list[tuple[str, int, str, bool]] = [
        ("databases", len(env.databases), "postgres", svc.postgres),
        ("realms", len(env.realms), "keycloak", svc.keycloak),
        ("buckets", len(env.buckets), "minio", svc.minio),
    ]
    for section, count, service, on in needs:
        if count and not on:
            yield Problem(
                section,
                f"{count} declared, but services.{service} is off",
                f"turn services.{service} on, or remove the {section}",
            )
    if svc.db_tools and not svc.postgres:
        yield Problem(
            "services.db-tools",
            "the database browser needs postgres, which is off",
            "set services.db-tools: false, or turn services.postgres on",
        )
    if PLATFORM_QUEUE not in [q.name for q in env.queues]:
        yield Problem(
            "queues",
            f"the platform's queue {PLATFORM_QUEUE!r} is not declared (provisioning runs on it)",
            f"add a queue named {PLATFORM_QUEUE} (declaration: "
            "conceptor.workers.declarations:CORE)",
        )


def _files_problems(env: Environment, folder: Path) -> Iterator[Problem]:
    for i, db in enumerate(env.databases):
        many = isinstance(db.migrations, list)
        for j, rel in enumerate(db.migration_folders):
            path = f"databases[{i}].migrations" + (f"[{j}]" if many else "")
            where = (folder / rel).resolve()
            if not where.is_dir():
                yield Problem(
                    path,
                    f"migrations folder {rel!r} does not exist ({where})",
                    "create the folder or correct the path (relative to the environment "
                    "file's folder)",
                )
    for i, realm in enumerate(env.realms):
        where = (folder / realm.file).resolve()
        if not where.is_file():
            yield Problem(
                f"realms[{i}].file",
                f"realm file {realm.file!r} does not exist ({where})",
                "export the realm to that file or correct the path (relative to the "
                "environment file's folder)",
            )
            continue
        try:
            found = json.loads(where.read_text(encoding="utf-8")).get("realm")
        except (OSError, ValueError, AttributeError) as exc:
            yield Problem(
                f"realms[{i}].file",
                f"{realm.file!r} is not a realm export (a JSON object with `realm`): {exc}",
                "point it at a Keycloak realm export",
            )
            continue
        if found != realm.name:
            yield Problem(
                f"realms[{i}].name",
                f"{realm.name!r}, but {realm.file} holds realm {found!r}",
                "make the name and the file's `realm` agree",
            )


def _seed_problems(env: Environment, folder: Path) -> Iterator[Problem]:
    for i, db in enumerate(env.databases):
        tables: dict[str, int] = {}
        for j, seed in enumerate(db.seed):
            tables.setdefault(seed.table, j)  # the first entry of a table is the one used
        for j, seed in enumerate(db.seed):
            path = f"databases[{i}].seed[{j}]"
            if tables[seed.table] != j:
                yield Problem(
                    f"{path}.table",
                    f"a second seed of table {seed.table!r} (the first is "
                    f"databases[{i}].seed[{tables[seed.table]}])",
                    "give each table one seed entry",
                )
            where = (folder / seed.file).resolve()
            if not where.is_file():
                yield Problem(
                    f"{path}.file",
                    f"seed file {seed.file!r} does not exist ({where})",
                    "create it or correct the path (relative to the environment file's folder)",
                )
            elif where.suffix.lower() not in SEED_SUFFIXES:
                yield Problem(
                    f"{path}.file",
                    f"{seed.file!r} is not a seed file (one of {', '.join(SEED_SUFFIXES)})",
                    "give rows as YAML, JSON or CSV",
                )
            for column, ref in seed.references.items():
                if ref.table not in tables:
                    yield Problem(
                        f"{path}.references.{column}.table",
                        f"table {ref.table!r} is not seeded in database {db.name!r}",
                        "seed it in the same database, or name a seeded table ("
                        + ", ".join(tables)
                        + ")",
                    )
                elif db.seed[tables[ref.table]].key != ref.key:
                    yield Problem(
                        f"{path}.references.{column}.key",
                        f"{ref.key} is not the natural key of {ref.table!r} "
                        f"({db.seed[tables[ref.table]].key})",
                        "name the key the referenced table's seed declares",
                    )
        cycle = _seed_cycle(db.seed)
        if cycle:
            yield Problem(
                f"databases[{i}].seed",
                "seeded tables reference each other in a cycle: " + " -> ".join(cycle),
                "seed one of them without the reference (rows are written referenced first)",
            )


def _bucket_seed_problems(env: Environment, folder: Path) -> Iterator[Problem]:
    for i, bucket in enumerate(env.buckets):
        if bucket.seed is None:
            continue
        where = (folder / bucket.seed.folder).resolve()
        if not where.is_dir():
            yield Problem(
                f"buckets[{i}].seed.folder",
                f"seed folder {bucket.seed.folder!r} does not exist ({where})",
                "create it or correct the path (relative to the environment file's folder)",
            )


def _seed_cycle(seeds: list[Seed]) -> list[str]:
    """A cycle of references among seeded tables (a table referencing itself too), or []."""
    refs = {s.table: [r.table for r in s.references.values()] for s in seeds}
    state: dict[str, int] = {}

    def visit(table: str, path: list[str]) -> list[str]:
        if state.get(table) == 1:
            return [*path[path.index(table) :], table]
        if state.get(table) == 2 or table not in refs:
            return []
        state[table] = 1
        for ref in refs[table]:
            found = visit(ref, [*path, table])
            if found:
                return found
        state[table] = 2
        return []

    for table in refs:
        found = visit(table, [])
        if found:
            return found
    return []


def _graph_problems(env: Environment) -> Iterator[Problem]:
    own = {s.name: i for i, s in enumerate(env.steps)}
    builtin = env.builtin_steps()
    for i, step in enumerate(env.steps):
        for j, dep in enumerate(step.after):
            if dep not in own and dep not in builtin:
                yield Problem(
                    f"steps[{i}].after[{j}]",
                    f"no step named {dep!r}",
                    "name a step of this file ("
                    + (", ".join(own) or "none declared")
                    + ") or a built-in step ("
                    + ", ".join(builtin)
                    + ")",
                )
    # Cycles among the file's own steps (built-in steps never wait for a team's).
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(name: str) -> Iterator[Problem]:
        state[name] = 1
        path.append(name)
        for j, dep in enumerate(env.steps[own[name]].after):
            if dep not in own:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    yield Problem(
                        f"steps[{own[name]}].after[{j}]",
                        "the steps wait for each other in a cycle: " + " after ".join(cycle),
                        "remove one of these `after:` entries",
                    )
            elif dep not in state:
                yield from visit(dep)
        path.pop()
        state[name] = 2

    for step in env.steps:
        if step.name not in state:
            yield from visit(step.name)


# Run in a fresh interpreter: a team's module may be slow, print, exit or crash, and importing it
# here would leave it loaded in this process. Reads [[path, kind, target, group]] on stdin.
_IMPORT_PROBE = r"""
import importlib, json, sys, traceback
from importlib.metadata import entry_points

def resolve(kind, target, group):
    if kind == "entry_point":
        found = list(entry_points(group=group, name=target))
        if not found:
            why = "no installed package publishes entry point %r in group %s" % (target, group)
            return None, ("entry_point", why)
        return found[0].load(), None
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        if not hasattr(obj, part):
            return None, ("attribute", "module %s has no attribute %r" % (module, attr))
        obj = getattr(obj, part)
    return obj, None

out = []
for path, kind, target, group, needs in json.load(sys.stdin):
    try:
        obj, why = resolve(kind, target, group)
        if why is None and needs == ["<router>"]:
            if not callable(getattr(obj, "add_api_route", None)):
                why = ("router_shape", "%s is not a FastAPI APIRouter" % target)
        elif why is None and needs == ["<callable>"]:
            if not callable(obj):
                why = ("callable_shape", "%s is not callable" % target)
        elif why is None:
            lacking = [n for n in needs if not callable(getattr(obj, n, None))]
            if needs and lacking:
                why = ("queue_shape", "%s has no callable %s" % (target, " or ".join(lacking)))
            elif not needs and not callable(obj) and not callable(getattr(obj, "diff", None)):
                why = ("step_shape", "%s is neither callable nor has desired/live/diff" % target)
    except BaseException as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        why = ("import", "importing %s failed: %s" % (target, last))
    out.append([path, why])
print(json.dumps(out))
"""


_IMPORT_FIXES = {
    "import": "correct the module's name, or make it importable from the repository root or "
    "the environment file's folder",
    "attribute": "correct the attribute after the colon",
    "entry_point": "install the package that publishes it (pip install -e PATH), or give "
    "`module:attribute` instead",
    "queue_shape": "point it at an object with workflows() and activities(settings), "
    "e.g. a conceptor.workers.declarations.QueueDeclaration",
    "step_shape": "point it at a callable, or at an object with desired, live and diff",
    "router_shape": "point it at a fastapi.APIRouter",
    "callable_shape": "point it at an async function taking the API's resources",
}


def _import_problems(env: Environment, folder: Path) -> list[Problem]:
    probes: list[list[Any]] = []
    for i, q in enumerate(env.queues):
        if q.declaration is not None:
            probes.append(
                [f"queues[{i}].declaration", "path", q.declaration, "", ["workflows", "activities"]]
            )
        elif q.entry_point is not None:
            probes.append(
                [
                    f"queues[{i}].entry_point",
                    "entry_point",
                    q.entry_point,
                    QUEUE_ENTRY_POINTS,
                    ["workflows", "activities"],
                ]
            )
    for i, s in enumerate(env.steps):
        if s.run is not None:
            probes.append([f"steps[{i}].run", "path", s.run, "", []])
        elif s.entry_point is not None:
            probes.append(
                [f"steps[{i}].entry_point", "entry_point", s.entry_point, STEP_ENTRY_POINTS, []]
            )
    for path, target in env.api.targets():
        shape = "<router>" if path.startswith("api.routers") else "<callable>"
        probes.append([path, "path", target, "", [shape]])
    if not probes:
        return []
    # The repository root and the file's folder come first, as for `conceptor worker`.
    search = [str(REPO_ROOT), str(folder.resolve())]
    code = f"import sys; sys.path[:0] = {search!r}\n{_IMPORT_PROBE}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(probes),
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT_SECONDS,
            cwd=folder,
            check=False,
        )
        results = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return [
            Problem(
                "queues",
                f"importing the declared modules took over {IMPORT_TIMEOUT_SECONDS:.0f}s",
                "make importing them cheap (defer heavy imports into functions)",
            )
        ]
    except (ValueError, IndexError):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return [
            Problem(
                "queues",
                f"importing the declared modules ended the interpreter: {tail[0]}",
                "import each module by hand to see why",
            )
        ]
    return [Problem(path, why[1], _IMPORT_FIXES[why[0]]) for path, why in results if why]


def check(file: Path = DEFAULT_FILE, *, imports: bool = True) -> Environment:
    """The file, refused (EnvironmentFileError) unless it and everything it names is sound."""
    env = load(file)
    folder = file.resolve().parent
    problems = [
        *_names_problems(env),
        *_services_problems(env),
        *_files_problems(env, folder),
        *_seed_problems(env, folder),
        *_bucket_seed_problems(env, folder),
        *_graph_problems(env),
    ]
    if imports:
        problems += _import_problems(env, folder)
    if problems:
        raise EnvironmentFileError(file, problems)
    return env


def _with_seed(db: Database) -> str:
    """A database's name, and the tables it seeds with their modes."""
    if not db.seed:
        return db.name
    return f"{db.name} (seed: {', '.join(f'{s.table} {s.mode}' for s in db.seed)})"


def _bucket_with_seed(bucket: Bucket) -> str:
    """A bucket's name, and its seed folder with its mode."""
    if bucket.seed is None:
        return bucket.name
    return f"{bucket.name} (seed: {bucket.seed.folder} {bucket.seed.mode})"


def summary(env: Environment) -> str:
    """One line per kind of object, for `conceptor env check`."""

    def names(items: list[str]) -> str:
        return ", ".join(items) if items else "none"

    off = [name for name in Services().enabled() if name not in env.services.enabled()]
    return "\n".join(
        [
            f"databases: {names([_with_seed(d) for d in env.databases])}",
            f"realms:    {names([r.name for r in env.realms])}",
            f"buckets:   {names([_bucket_with_seed(b) for b in env.buckets])}",
            f"queues:    {names([f'{q.name} x{q.workers}' for q in env.queues])}",
            f"steps:     {names([s.name for s in env.steps])}",
            f"services:  {names(env.services.enabled())}"
            + (f" (off: {', '.join(off)})" if off else ""),
        ]
    )


def schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check the file."""
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "environment.schema.json",
    }
    out.update(Environment.model_json_schema(by_alias=True))
    return out


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
