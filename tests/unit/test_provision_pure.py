"""Pure pieces of provisioning: policy comparison, realm file checks, representation matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.bucket_policy import normalize, policy_document
from conceptor.activities.realm_file import load_realm
from conceptor.activities.reconcile import differing_fields
from conceptor.contracts import Change, ChangeAction, Diff, StepResult
from conceptor.platform.settings import REPO_ROOT, Settings


def test_policy_normalize_ignores_server_reformatting() -> None:
    """A policy echoed with a bare "*" principal and string action equals the one we send."""
    sent = policy_document("thumbnails", "public-read")
    echoed = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::thumbnails/*",
                }
            ],
        }
    )
    assert normalize(echoed) == normalize(sent)
    assert normalize(None) is None
    assert policy_document("media", "private") is None
    assert normalize(policy_document("other", "public-read")) != normalize(sent)


def _outcome(*actions: ChangeAction) -> str:
    changes = [Change(kind="k", name=str(i), action=a) for i, a in enumerate(actions)]
    return StepResult.from_diff(Diff(target="t", changes=changes)).outcome


def test_step_result_outcome_from_the_diff() -> None:
    """All new is `created`; any change on top of existing things is `updated`."""
    assert _outcome("create") == "created"
    assert _outcome("create", "unchanged") == "updated"
    assert _outcome("update") == "updated"
    assert _outcome("unchanged") == "unchanged"


def matches(want: object, have: object) -> bool:
    return not differing_fields(want, have)


def test_matches_is_a_subset_comparison() -> None:
    """Server extras are fine; set-like lists compare unordered; "true" equals true."""
    assert matches({"a": 1, "l": ["x", "y"]}, {"a": 1, "b": 2, "l": ["y", "x"]})
    assert matches({"port": "45317", "ssl": "false"}, {"port": "45317", "ssl": False})
    assert not matches({"a": 1}, {"a": 2})
    assert not matches({"a": 1}, {})
    assert not matches({"l": ["x"]}, {"l": ["x", "y"]})


def _settings(**overrides: object) -> Settings:
    return Settings(port_prefix="453", **overrides)  # type: ignore[arg-type]


def test_load_realm_substitutes_ports_and_secret() -> None:
    """The shipped realm file gets Mailpit's port of this prefix and the API client secret."""
    realm = load_realm(REPO_ROOT / "_dev-env" / "realms" / "technova.json", _settings())
    assert realm["smtpServer"]["port"] == "45317"
    assert realm["smtpServer"]["host"] == "127.0.0.1"
    api = next(c for c in realm["clients"] if c["clientId"] == "conceptor-api")
    assert api["secret"] == "conceptor-dev-api-secret"
    assert {r["name"] for r in realm["roles"]["realm"]} == {"platform-admin", "user"}


def test_load_realm_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    """Malformed JSON is a non-retryable error with the file, line and column."""
    path = tmp_path / "broken.json"
    path.write_text('{\n  "realm": "technova",\n  "enabled": tru\n}\n')
    with pytest.raises(ApplicationError) as info:
        load_realm(path, _settings())
    assert info.value.non_retryable
    assert info.value.message == (
        f"realm file {path} is not valid JSON: Expecting value at line 3 column 14"
    )


def test_load_realm_unknown_placeholder(tmp_path: Path) -> None:
    """A placeholder that settings cannot fill is named."""
    path = tmp_path / "realm.json"
    path.write_text(json.dumps({"realm": "technova", "displayName": "${NOPE}"}))
    with pytest.raises(ApplicationError, match=r"uses unknown placeholder \$\{NOPE\}"):
        load_realm(path, _settings())


def test_load_realm_wrong_realm_name(tmp_path: Path) -> None:
    """A file for another realm than settings expect is refused."""
    path = tmp_path / "realm.json"
    path.write_text(json.dumps({"realm": "other"}))
    with pytest.raises(ApplicationError) as info:
        load_realm(path, _settings())
    assert info.value.message == (
        f"realm file {path} defines realm 'other', but settings expect 'technova'"
    )
