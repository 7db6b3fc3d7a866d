"""Bind queue, worker identity, workflow id and activity type onto every worker log line."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class LogContextInterceptor(Interceptor):
    """Activities run with structlog contextvars bound, so every logger in them carries them.

    Sync activities in a thread pool inherit these: the SDK copies the context into the thread.
    """

    def __init__(self, *, queue: str, identity: str) -> None:
        self._bindings = {"queue": queue, "worker": identity}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next, self._bindings)


class _ActivityLogContext(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, bindings: dict[str, str]) -> None:
        super().__init__(next)
        self._bindings = bindings

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            **self._bindings,
            workflow_id=info.workflow_id,
            activity_type=info.activity_type,
            activity_id=info.activity_id,
            attempt=info.attempt,
        ):
            return await self.next.execute_activity(input)


class WorkflowLogFilter(logging.Filter):
    """Flattens the SDK's `temporal_workflow` extra into the same keys activities carry.

    Workflow code logs through `workflow.logger` (which stays silent during replay); its
    activations run on SDK threads without our contextvars, so the keys are added here.
    """

    def __init__(self, *, queue: str, identity: str) -> None:
        super().__init__()
        self._queue = queue
        self._identity = identity

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.__dict__.pop("temporal_workflow", None)
        if isinstance(info, dict):
            record.workflow_id = info.get("workflow_id")
            record.workflow_type = info.get("workflow_type")
            record.run_id = info.get("run_id")
        record.queue = self._queue
        record.worker = self._identity
        return True


def install_log_context(*, queue: str, identity: str) -> LogContextInterceptor:
    """Wire the SDK's workflow/activity loggers to structlog keys; returns the interceptor."""
    structlog.contextvars.bind_contextvars(queue=queue, worker=identity)
    # The info is carried as structured keys instead of being appended to every message.
    activity.logger.activity_info_on_message = False
    activity.logger.activity_info_on_extra = False
    workflow.logger.workflow_info_on_message = False
    workflow.logger.workflow_info_on_extra = True
    wf_logger = logging.getLogger(workflow.logger.logger.name)
    if not any(isinstance(f, WorkflowLogFilter) for f in wf_logger.filters):
        wf_logger.addFilter(WorkflowLogFilter(queue=queue, identity=identity))
    return LogContextInterceptor(queue=queue, identity=identity)
