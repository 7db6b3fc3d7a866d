"""The drift watch's Temporal Schedule: created, updated or removed to match the settings."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from conceptor.contracts import (
    DRIFT_WATCH_SCHEDULE_ID,
    DRIFT_WATCH_WORKFLOW,
    REGISTER_DRIFT_WATCH,
)
from conceptor.platform.settings import Settings

DRIFT_RUN_ID = "drift-watch-run"  # the schedule appends the time of each run


def drift_schedule(interval_seconds: float, *, task_queue: str, run_id: str) -> Schedule:
    """Every `interval_seconds`, one DriftWatchWorkflow; a run still going skips the next."""
    return Schedule(
        action=ScheduleActionStartWorkflow(DRIFT_WATCH_WORKFLOW, id=run_id, task_queue=task_queue),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note="Compares the environment's files with the live state (conceptor provision --plan)"
        ),
    )


def _interval_of(schedule: Schedule) -> float | None:
    intervals = schedule.spec.intervals
    return intervals[0].every.total_seconds() if len(intervals) == 1 else None


class DriftWatchActivities:
    """Registers the schedule with the worker's settings; secrets play no part."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name=REGISTER_DRIFT_WATCH)
    async def register_drift_watch(self) -> str:
        """`created`, `updated`, `unchanged`, `removed` or `off`, from the live schedule."""
        client = activity.client()
        interval = self.settings.drift_interval_seconds
        schedule_id = self.settings.drift_watch_schedule_id
        # The queue this worker serves (core): it hosts the drift workflow as well.
        queue = activity.info().task_queue
        handle = client.get_schedule_handle(schedule_id)
        try:
            live = await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            live = None
        if interval <= 0:
            if live is None:
                return "off"
            await handle.delete()
            return "removed"
        run_id = DRIFT_RUN_ID if schedule_id == DRIFT_WATCH_SCHEDULE_ID else f"{schedule_id}-run"
        wanted = drift_schedule(interval, task_queue=queue, run_id=run_id)
        if live is None:
            try:
                await client.create_schedule(schedule_id, wanted)
                return "created"
            except ScheduleAlreadyRunningError:  # a concurrent run created it just now
                live = await handle.describe()
        action = live.schedule.action
        if (
            _interval_of(live.schedule) == interval
            and isinstance(action, ScheduleActionStartWorkflow)
            and action.workflow == DRIFT_WATCH_WORKFLOW
            and action.task_queue == queue
        ):
            return "unchanged"

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await handle.update(update)
        return "updated"
