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
    CORE_QUEUE,
    DRIFT_WATCH_SCHEDULE_ID,
    DRIFT_WATCH_WORKFLOW,
    REGISTER_DRIFT_WATCH,
)
from conceptor.platform.settings import Settings

DRIFT_RUN_ID = "drift-watch-run"  # the schedule appends the time of each run


def drift_schedule(interval_seconds: float) -> Schedule:
    """Every `interval_seconds`, one DriftWatchWorkflow; a run still going skips the next."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DRIFT_WATCH_WORKFLOW, id=DRIFT_RUN_ID, task_queue=CORE_QUEUE
        ),
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
        handle = client.get_schedule_handle(DRIFT_WATCH_SCHEDULE_ID)
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
        wanted = drift_schedule(interval)
        if live is None:
            try:
                await client.create_schedule(DRIFT_WATCH_SCHEDULE_ID, wanted)
                return "created"
            except ScheduleAlreadyRunningError:  # a concurrent run created it just now
                live = await handle.describe()
        action = live.schedule.action
        if (
            _interval_of(live.schedule) == interval
            and isinstance(action, ScheduleActionStartWorkflow)
            and action.workflow == DRIFT_WATCH_WORKFLOW
            and action.task_queue == CORE_QUEUE
        ):
            return "unchanged"

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await handle.update(update)
        return "updated"
