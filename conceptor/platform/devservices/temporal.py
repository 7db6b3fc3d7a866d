"""Temporal: the CLI dev server with its Web UI and a persistent database file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.settings import Settings
from conceptor.platform.tools import venv_tool


def command(settings: Settings, data_dir: Path) -> list[str]:
    return [
        str(venv_tool("temporal")),
        "server",
        "start-dev",
        "--ip",
        settings.host,
        "--port",
        str(settings.port("temporal")),
        "--ui-port",
        str(settings.port("temporal_ui")),
        "--http-port",
        str(settings.port("temporal_http")),
        "--metrics-port",
        str(settings.port("temporal_metrics")),
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--namespace",
        settings.temporal_namespace,
        "--ui-disable-news-fetch",
        "--log-level",
        "warn",
    ]


async def probe(settings: Settings) -> str:
    # Imported here: `conceptor dev …` stays quick to start when it only needs other services.
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    # An open port is not enough: the namespace may not exist for a moment after first start.
    try:
        client = await asyncio.wait_for(
            Client.connect(settings.temporal_address, namespace=settings.temporal_namespace), 3
        )
        resp = await asyncio.wait_for(
            client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=settings.temporal_namespace)
            ),
            3,
        )
    except Exception as exc:  # the SDK raises RuntimeError/RPCError variants while starting
        raise NotReadyError(f"namespace describe failed: {exc}") from exc
    from temporalio.api.enums.v1 import NamespaceState

    state = NamespaceState.Name(resp.namespace_info.state).removeprefix("NAMESPACE_STATE_")
    return f"namespace {resp.namespace_info.name!r} {state.lower()}"


SERVICE = DevService(
    name="temporal",
    description="Temporal dev server + Web UI",
    ports=("temporal", "temporal_ui", "temporal_http", "temporal_metrics"),
    command=command,
    probe=probe,
    links={"Temporal Web UI": "http://localhost:{temporal_ui}"},
)
