"""Short-lived httpx clients sharing one TLS context: httpx builds one per client otherwise."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def _tls() -> ssl.SSLContext:
    # What httpx builds for each client by default (loading the CA bundle: about 40 ms of CPU),
    # built once per process. An SSLContext may be shared between clients, threads and loops.
    return httpx.create_ssl_context()


def client(**options: Any) -> httpx.AsyncClient:
    """`httpx.AsyncClient(**options)`, minus the TLS context it would build: for the probes
    that run every fraction of a second while a service starts (and every few seconds after),
    and the steps that open a client per run (a realm import: a third of a small realm's
    re-run was building that context)."""
    return httpx.AsyncClient(verify=_tls(), **options)
