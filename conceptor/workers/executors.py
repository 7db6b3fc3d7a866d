"""The pool a queue's blocking activities run in: threads or processes, sized from settings."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from contextlib import AbstractContextManager, ExitStack

from temporalio.worker import SharedStateManager

from conceptor.platform.logging import configure_from_settings
from conceptor.platform.settings import Settings
from conceptor.workers.declarations import QueueDeclaration


class BlockingPool(AbstractContextManager["BlockingPool"]):
    """Executor (and, for processes, the shared heartbeat state) handed to the SDK Worker."""

    def __init__(self, declaration: QueueDeclaration, settings: Settings) -> None:
        self.kind = declaration.blocking(settings)
        self.size = declaration.pool_size(settings) if self.kind else 0
        self.executor: concurrent.futures.Executor | None = None
        self.shared_state: SharedStateManager | None = None
        self._stack = ExitStack()
        self._wait_on_exit = True
        if self.kind is None:
            return
        if self.size < 1:
            msg = f"queue {declaration.name!r} runs blocking work but its pool size is {self.size}"
            raise ValueError(msg)
        if self.kind == "thread":
            self.executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.size, thread_name_prefix=f"{declaration.name}-blocking"
            )
        else:
            # spawn, not fork: the SDK's core runs native threads a fork would copy mid-flight.
            ctx = multiprocessing.get_context("spawn")
            manager = self._stack.enter_context(ctx.Manager())
            self.shared_state = SharedStateManager.create_from_multiprocessing(manager)
            # Children log like their parent (JSON/console, redaction) from their first line.
            self.executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.size, mp_context=ctx, initializer=configure_from_settings
            )

    def abandon(self) -> None:
        """Leave running work behind on exit instead of waiting for it (a drain that timed out)."""
        self._wait_on_exit = False

    def __exit__(self, *exc: object) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=self._wait_on_exit, cancel_futures=True)
        if not self._wait_on_exit:
            # Pool processes still busy would outlive the worker: stop them with it.
            for child in multiprocessing.active_children():
                child.terminate()
        self._stack.close()
