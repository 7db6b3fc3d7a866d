"""Provisioning status reads for the API: coalesced, and closed runs served from memory."""

from __future__ import annotations

from temporalio.client import Client

from conceptor.api.singleflight import SingleFlight
from conceptor.client.provisioning import (
    ProvisionStatus,
    provision_status,
)
from conceptor.contracts import PROVISION_WORKFLOW_ID


class ProvisionReader:
    """`provision_status` for many readers at once.

    A closed run never changes, so while the latest run under the id is still the one
    remembered, one DescribeWorkflowExecution answers instead of a describe, a history
    fetch and a query; concurrent readers share whichever call is in flight.
    """

    def __init__(self, workflow_id: str = PROVISION_WORKFLOW_ID) -> None:
        self._workflow_id = workflow_id
        self._flight: SingleFlight[ProvisionStatus] = SingleFlight()
        self._closed: ProvisionStatus | None = None

    async def read(self, client: Client) -> ProvisionStatus:
        return await self._flight.run(lambda: self._read(client))

    def forget(self) -> None:
        """Drop the remembered run (after starting a new one)."""
        self._closed = None

    async def _read(self, client: Client) -> ProvisionStatus:
        closed = self._closed
        if closed is not None:
            latest = await client.get_workflow_handle(self._workflow_id).describe()
            if latest.run_id == closed.run_id:
                return closed
        status = await provision_status(client, workflow_id=self._workflow_id)
        self._closed = status if status.state in ("completed", "failed") else None
        return status
