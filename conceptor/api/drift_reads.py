"""Drift status reads for the API: coalesced, and remembered for a few seconds.

Every open panel polls /api/status; the drift watch changes at most once per interval, so a
status a few seconds old is as good as a fresh one and costs Temporal nothing.
"""

from __future__ import annotations

import time

from temporalio.client import Client

from conceptor.api.singleflight import SingleFlight
from conceptor.client.plan import DriftStatus, drift_status
from conceptor.contracts import DRIFT_WATCH_SCHEDULE_ID

FRESH_SECONDS = 5.0


class DriftReader:
    def __init__(
        self, schedule_id: str = DRIFT_WATCH_SCHEDULE_ID, fresh_seconds: float = FRESH_SECONDS
    ) -> None:
        self._schedule_id = schedule_id
        self._fresh = fresh_seconds
        self._flight: SingleFlight[DriftStatus] = SingleFlight()
        self._last: tuple[float, DriftStatus] | None = None

    async def read(self, client: Client) -> DriftStatus:
        last = self._last
        if last is not None and time.monotonic() - last[0] < self._fresh:
            return last[1]
        return await self._flight.run(lambda: self._read(client))

    async def _read(self, client: Client) -> DriftStatus:
        status = await drift_status(client, schedule_id=self._schedule_id)
        self._last = (time.monotonic(), status)
        return status
