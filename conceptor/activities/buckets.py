"""Buckets as declared (file + settings) and as found in S3, and the pure diff between them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from temporalio.exceptions import ApplicationError

from conceptor.activities.bucket_policy import normalize, policy_document
from conceptor.activities.reconcile import digest, refuse
from conceptor.contracts import Change, Diff
from conceptor.platform.settings import BucketPolicy

BUCKETS_FILE_INVALID = "BucketsFileInvalid"
# S3 bucket naming rules (what MinIO enforces too): 3-63 of lowercase letters, digits, dots and
# hyphens, starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# MinIO (our build, see README "What provisioning manages") answers PutBucketCors with 501
# NotImplemented: its CORS is one server-wide setting, so a per-bucket rule cannot be applied.
CORS_UNSUPPORTED = (
    "MinIO does not implement per-bucket CORS (PutBucketCors answers 501 NotImplemented; its "
    "CORS is server-wide, MINIO_API_CORS_ALLOW_ORIGIN, which allows every origin by default)"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LifecycleRule(_Strict):
    """One expiry rule: objects under `prefix` expire `expire_days` after creation."""

    id: str = Field(min_length=1, max_length=255)
    prefix: str = ""
    expire_days: int | None = Field(default=None, ge=1)
    # With versioning: non-current versions are removed this many days after being replaced.
    noncurrent_expire_days: int | None = Field(default=None, ge=1)
    enabled: bool = True

    @model_validator(mode="after")
    def _expires_something(self) -> LifecycleRule:
        if self.expire_days is None and self.noncurrent_expire_days is None:
            msg = "a rule needs expire_days or noncurrent_expire_days"
            raise ValueError(msg)
        return self


class CorsRule(_Strict):
    """A CORS rule as S3 defines it (declared so that it can be refused precisely)."""

    allowed_origins: list[str]
    allowed_methods: list[Literal["GET", "PUT", "POST", "DELETE", "HEAD"]]
    allowed_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age_seconds: int | None = Field(default=None, ge=0)


class BucketSpec(_Strict):
    """One bucket in the file. An absent (null) setting is not managed: whatever is live stays."""

    policy: BucketPolicy | None = None
    versioning: bool | None = None
    lifecycle: list[LifecycleRule] | None = None
    cors: list[CorsRule] | None = None

    @field_validator("lifecycle")
    @classmethod
    def _unique_rule_ids(cls, rules: list[LifecycleRule] | None) -> list[LifecycleRule] | None:
        ids = [r.id for r in rules or []]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            msg = f"rule ids must be unique, repeated: {', '.join(twice)}"
            raise ValueError(msg)
        return rules


class BucketsFile(_Strict):
    """The file: `{"buckets": {"<name>": {...}}}`."""

    buckets: dict[str, BucketSpec] = Field(default_factory=dict)

    @field_validator("buckets")
    @classmethod
    def _valid_names(cls, buckets: dict[str, BucketSpec]) -> dict[str, BucketSpec]:
        for name in buckets:
            if not _BUCKET_NAME.match(name) or ".." in name:
                msg = (
                    f"{name!r} is not a valid bucket name (3-63 lowercase letters, digits, dots "
                    "and hyphens, starting and ending with a letter or digit)"
                )
                raise ValueError(msg)
        return buckets


class DesiredBucket(_Strict):
    """A bucket as provisioning must leave it: the file's settings and the settings' policy."""

    name: str
    policy: BucketPolicy
    versioning: bool | None = None
    lifecycle: list[LifecycleRule] | None = None
    source: str  # where it is declared: "<file>: buckets.<name>" or "CENTRAL_BUCKETS.<name>"


class LiveBucket(BaseModel):
    """What S3 holds for one bucket, in the declaration's terms (None: no such bucket)."""

    name: str
    exists: bool
    policy: str | None = None  # the stored policy document (None = no policy: private)
    versioning: str = ""  # "", "Enabled" or "Suspended" (S3 never goes back to "")
    lifecycle: list[LifecycleRule] = Field(default_factory=list)
    # Rules as S3 returned them, kept so that rules the file does not list survive a rewrite.
    lifecycle_raw: list[dict[str, Any]] = Field(default_factory=list)


def _invalid(path: Path, why: str) -> ApplicationError:
    return ApplicationError(f"{path}: {why}", type=BUCKETS_FILE_INVALID, non_retryable=True)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_buckets_file(path: Path, text: str) -> BucketsFile:
    """The file's declarations; any problem names the file and the field (non-retryable)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(
            path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    try:
        return BucketsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(err['loc']) or '.'}: {err['msg']}" for err in exc.errors()
        )
        raise _invalid(path, problems) from None


def desired_buckets(
    path: Path, declared: BucketsFile, policies: dict[str, BucketPolicy]
) -> list[DesiredBucket]:
    """The file's buckets plus the settings' `buckets` (name -> policy); a policy stated in both
    must agree. Refuses what MinIO cannot manage (CORS) before anything is written."""
    out: list[DesiredBucket] = []
    for name in sorted(set(declared.buckets) | set(policies)):
        spec = declared.buckets.get(name, BucketSpec())
        source = (
            f"{path}: buckets.{name}" if name in declared.buckets else f"CENTRAL_BUCKETS.{name}"
        )
        if name in policies and not _BUCKET_NAME.match(name):
            raise _invalid(path, f"CENTRAL_BUCKETS names {name!r}, not a valid bucket name")
        setting = policies.get(name)
        if spec.policy is not None and setting is not None and spec.policy != setting:
            raise _invalid(
                path,
                f"buckets.{name}.policy is {spec.policy!r} but CENTRAL_BUCKETS gives {name} "
                f"{setting!r}; state the policy in one place",
            )
        if spec.cors:
            raise refuse(
                f"{path}: buckets.{name}.cors",
                f"bucket {name}: {CORS_UNSUPPORTED}",
                "remove the bucket's cors rules (an empty list or no cors key is accepted)",
            )
        out.append(
            DesiredBucket(
                name=name,
                policy=spec.policy or setting or "private",
                versioning=spec.versioning,
                lifecycle=spec.lifecycle,
                source=source,
            )
        )
    return out


# ----- S3 <-> declaration ------------------------------------------------------------------


def lifecycle_from_s3(rule: dict[str, Any]) -> LifecycleRule | None:
    """A live rule in the declaration's terms; None when it holds something the file cannot say
    (transitions, dates, tag filters): such a rule never equals a declared one."""
    known = {"ID", "Status", "Filter", "Prefix", "Expiration", "NoncurrentVersionExpiration"}
    filt = rule.get("Filter", {})
    expiration = rule.get("Expiration", {})
    noncurrent = rule.get("NoncurrentVersionExpiration", {})
    if (
        set(rule) - known
        or set(filt) - {"Prefix"}
        or set(expiration) - {"Days"}
        or set(noncurrent) - {"NoncurrentDays"}
        or not (expiration or noncurrent)
    ):
        return None
    try:
        return LifecycleRule(
            id=str(rule.get("ID", "")),
            prefix=str(filt.get("Prefix", rule.get("Prefix", ""))),
            expire_days=expiration.get("Days"),
            noncurrent_expire_days=noncurrent.get("NoncurrentDays"),
            enabled=rule.get("Status") == "Enabled",
        )
    except ValidationError:
        return None


def lifecycle_to_s3(rule: LifecycleRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ID": rule.id,
        "Status": "Enabled" if rule.enabled else "Disabled",
        "Filter": {"Prefix": rule.prefix},
    }
    if rule.expire_days is not None:
        out["Expiration"] = {"Days": rule.expire_days}
    if rule.noncurrent_expire_days is not None:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule.noncurrent_expire_days}
    return out


def lifecycle_rules_to_put(want: DesiredBucket, live: LiveBucket) -> list[dict[str, Any]]:
    """The whole lifecycle configuration to write: the declared rules, plus the live rules the
    file does not list (drift is reported, never removed)."""
    declared = {r.id for r in want.lifecycle or []}
    kept = [r for r in live.lifecycle_raw if str(r.get("ID", "")) not in declared]
    return [*(lifecycle_to_s3(r) for r in want.lifecycle or []), *kept]


# ----- the pure diff -----------------------------------------------------------------------


def _versioning_differs(want: bool | None, live: str) -> bool:
    if want is None:
        return False
    # A bucket that was never versioned and a suspended one both keep one version per key.
    return (live == "Enabled") != want


def bucket_changes(want: DesiredBucket, live: LiveBucket) -> list[Change]:
    """One `bucket` change (create / update naming what differs / unchanged), plus a `drift`
    change per live lifecycle rule the file does not list."""
    rules = want.lifecycle or []
    if not live.exists:
        fields = [
            *(["policy"] if policy_document(want.name, want.policy) is not None else []),
            *(["versioning"] if want.versioning else []),
            *(f"lifecycle[id={r.id}]" for r in rules),
        ]
        return [
            Change(
                kind="bucket", name=want.name, action="create", fields=fields, source=want.source
            )
        ]
    fields = []
    if normalize(policy_document(want.name, want.policy)) != normalize(live.policy):
        fields.append("policy")
    if _versioning_differs(want.versioning, live.versioning):
        fields.append("versioning")
    live_rules = {r.id: r for r in live.lifecycle}
    raw_ids = [str(r.get("ID", "")) for r in live.lifecycle_raw]
    for rule in rules:
        have = live_rules.get(rule.id)
        if have is None:
            fields.append(f"lifecycle[id={rule.id}]")
        else:
            fields.extend(
                f"lifecycle[id={rule.id}].{key}"
                for key in ("prefix", "expire_days", "noncurrent_expire_days", "enabled")
                if getattr(rule, key) != getattr(have, key)
            )
    out = [
        Change(
            kind="bucket",
            name=want.name,
            action="update" if fields else "unchanged",
            fields=fields,
            source=want.source,
        )
    ]
    if want.lifecycle is not None:
        declared = {r.id for r in rules}
        out.extend(
            Change(kind="lifecycle-rule", name=f"{want.name}/{rule_id}", action="drift")
            for rule_id in sorted(set(raw_ids) - declared)
        )
    return out


def buckets_diff(desired: list[DesiredBucket], live: list[LiveBucket]) -> Diff:
    """Desired vs live buckets, every bucket compared; digests of both states."""
    by_name = {b.name: b for b in live}
    changes = [
        change
        for want in desired
        for change in bucket_changes(
            want, by_name.get(want.name, LiveBucket(name=want.name, exists=False))
        )
    ]
    return Diff(
        target="buckets",
        changes=changes,
        desired_digest=digest([d.model_dump(mode="json") for d in desired]),
        live_digest=digest([b.model_dump(mode="json") for b in sorted(live, key=lambda b: b.name)]),
    )
