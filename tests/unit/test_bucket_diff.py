"""The buckets diff, a pure function: declarations resolved, live state compared by aspect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.bucket_policy import policy_document
from conceptor.activities.buckets import (
    DesiredBucket,
    LifecycleRule,
    LiveBucket,
    buckets_diff,
    desired_buckets,
    lifecycle_from_s3,
    lifecycle_rules_to_put,
    lifecycle_to_s3,
    parse_buckets_file,
)

FILE = Path("/repo/_dev-env/buckets.json")
RULE = LifecycleRule(id="expire-tmp", prefix="tmp/", expire_days=7)


def want(**kw: object) -> DesiredBucket:
    fields: dict[str, object] = {"name": "media", "policy": "private", "source": "f"}
    fields.update(kw)
    return DesiredBucket.model_validate(fields)


def live(**kw: object) -> LiveBucket:
    fields: dict[str, object] = {"name": "media", "exists": True}
    fields.update(kw)
    return LiveBucket.model_validate(fields)


def test_shipped_file_keeps_todays_buckets() -> None:
    path = Path(__file__).resolve().parents[2] / "_dev-env" / "buckets.json"
    declared = parse_buckets_file(path, path.read_text())
    desired = desired_buckets(path, declared, {"media": "private", "thumbnails": "public-read"})
    assert [(d.name, d.policy, d.versioning, d.lifecycle) for d in desired] == [
        ("media", "private", False, []),
        ("thumbnails", "public-read", False, []),
    ]


def test_settings_and_file_are_joined() -> None:
    declared = parse_buckets_file(FILE, json.dumps({"buckets": {"exports": {"versioning": True}}}))
    desired = desired_buckets(FILE, declared, {"media": "public-read"})
    assert [(d.name, d.policy, d.versioning, d.source) for d in desired] == [
        ("exports", "private", True, f"{FILE}: buckets.exports"),
        ("media", "public-read", None, "CENTRAL_BUCKETS.media"),
    ]


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(ApplicationError) as info:
        parse_buckets_file(FILE, '{"buckets": {\n  "media": }\n}')
    assert info.value.message == (f"{FILE}: not valid JSON: Expecting value at line 2 column 12")
    assert info.value.non_retryable


def test_bad_bucket_name_and_duplicate_rule_ids() -> None:
    with pytest.raises(ApplicationError, match=r"buckets: Value error, 'Media_1' is not a valid"):
        parse_buckets_file(FILE, json.dumps({"buckets": {"Media_1": {}}}))
    rules = [{"id": "a", "expire_days": 1}, {"id": "a", "expire_days": 2}]
    with pytest.raises(ApplicationError, match=r"buckets.m1x.lifecycle: Value error, rule ids"):
        parse_buckets_file(FILE, json.dumps({"buckets": {"m1x": {"lifecycle": rules}}}))


def test_missing_bucket_is_one_create_naming_what_it_sets() -> None:
    diff = buckets_diff(
        [want(policy="public-read", versioning=True, lifecycle=[RULE])],
        [live(exists=False)],
    )
    [change] = diff.changes
    assert (change.kind, change.name, change.action) == ("bucket", "media", "create")
    assert change.fields == ["policy", "versioning", "lifecycle[id=expire-tmp]"]


def test_equal_state_is_unchanged_whatever_the_servers_formatting() -> None:
    stored = json.dumps(policy_document("media", "public-read"), indent=4)
    diff = buckets_diff(
        [want(policy="public-read", versioning=True, lifecycle=[RULE])],
        [
            live(
                policy=stored,
                versioning="Enabled",
                lifecycle=[RULE],
                lifecycle_raw=[lifecycle_to_s3(RULE)],
            )
        ],
    )
    assert [c.action for c in diff.changes] == ["unchanged"]
    assert diff.is_empty


def test_each_drifted_aspect_is_named() -> None:
    diff = buckets_diff(
        [want(versioning=True, lifecycle=[RULE])],
        [live(policy=json.dumps(policy_document("media", "public-read")), versioning="Suspended")],
    )
    assert diff.changes[0].action == "update"
    assert diff.changes[0].fields == ["policy", "versioning", "lifecycle[id=expire-tmp]"]


def test_versioning_false_accepts_never_versioned_and_suspended() -> None:
    for state in ("", "Suspended"):
        assert buckets_diff([want(versioning=False)], [live(versioning=state)]).is_empty
    diff = buckets_diff([want(versioning=False)], [live(versioning="Enabled")])
    assert diff.changes[0].fields == ["versioning"]
    # Not declared: not managed.
    assert buckets_diff([want()], [live(versioning="Enabled")]).is_empty


def test_unlisted_live_rules_are_drift_and_kept_on_rewrite() -> None:
    handmade = {"ID": "handmade", "Status": "Enabled", "Transition": {"Days": 1}}
    desired = want(lifecycle=[RULE])
    current = live(lifecycle_raw=[handmade])
    diff = buckets_diff([desired], [current])
    assert [(c.kind, c.name, c.action) for c in diff.changes] == [
        ("bucket", "media", "update"),
        ("lifecycle-rule", "media/handmade", "drift"),
    ]
    assert lifecycle_rules_to_put(desired, current) == [lifecycle_to_s3(RULE), handmade]
    # Lifecycle not declared: live rules are neither compared nor reported.
    assert [c.action for c in buckets_diff([want()], [current]).changes] == ["unchanged"]


def test_rule_fields_are_compared_one_by_one() -> None:
    live_rule = LifecycleRule(id="expire-tmp", prefix="tmp/", expire_days=3, enabled=False)
    diff = buckets_diff(
        [want(lifecycle=[RULE])],
        [live(lifecycle=[live_rule], lifecycle_raw=[lifecycle_to_s3(live_rule)])],
    )
    assert diff.changes[0].fields == [
        "lifecycle[id=expire-tmp].expire_days",
        "lifecycle[id=expire-tmp].enabled",
    ]


def test_rules_the_file_cannot_express_never_compare_equal() -> None:
    assert lifecycle_from_s3({"ID": "a", "Status": "Enabled", "Expiration": {"Date": "x"}}) is None
    legacy = {"ID": "a", "Status": "Enabled", "Prefix": "p/", "Expiration": {"Days": 2}}
    assert lifecycle_from_s3(legacy) == LifecycleRule(id="a", prefix="p/", expire_days=2)


def test_digests_follow_the_states() -> None:
    a = buckets_diff([want()], [live()])
    b = buckets_diff([want()], [live(versioning="Enabled")])
    c = buckets_diff([want(versioning=True)], [live()])
    assert a.desired_digest == b.desired_digest != c.desired_digest
    assert a.live_digest == c.live_digest != b.live_digest
