"""Bucket access policies: the document each named policy stands for, and how to compare them."""

from __future__ import annotations

import json
from typing import Any

from conceptor.platform.settings import BucketPolicy


def policy_document(bucket: str, policy: BucketPolicy) -> dict[str, Any] | None:
    """The S3 policy for `policy` (None = no policy = private: only signed requests)."""
    if policy == "private":
        return None
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


def _as_sorted_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return sorted(str(v) for v in value)


def _principal(value: Any) -> list[str]:
    # "*" and {"AWS": "*"} and {"AWS": ["*"]} mean the same; servers echo any of them.
    if isinstance(value, dict):
        return _as_sorted_list(value.get("AWS"))
    return _as_sorted_list(value)


def normalize(document: str | dict[str, Any] | None) -> list[tuple[Any, ...]] | None:
    """A canonical, order-free form of a policy so equal policies compare equal."""
    if document is None:
        return None
    doc = json.loads(document) if isinstance(document, str) else document
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    canonical = [
        (
            st.get("Effect"),
            tuple(_principal(st.get("Principal"))),
            tuple(_as_sorted_list(st.get("Action"))),
            tuple(_as_sorted_list(st.get("Resource"))),
            json.dumps(st.get("Condition"), sort_keys=True),
        )
        for st in statements
    ]
    return sorted(canonical) or None
