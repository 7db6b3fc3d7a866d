"""Keep a step's full diff outside the workflow history, where the CLI, API and panel find it."""

from __future__ import annotations

from redis.exceptions import RedisError
from temporalio import activity

from conceptor.activities.waiting import address_of
from conceptor.contracts import RESULT_CHANGES, Diff, StepResult
from conceptor.platform.diff_store import diff_store
from conceptor.platform.retrying import retry_until
from conceptor.platform.settings import Settings

# Redis may still be starting when a step ends (it is waited for in another chain).
_STORE_SECONDS = 10.0


async def keep_diff(settings: Settings, diff: Diff) -> tuple[str | None, list[str]]:
    """The full diff's reference; or None, and a warning when the result cannot list it all.

    A result names at most RESULT_CHANGES changes: the rest is only reachable through the
    stored diff. Failing to store it does not undo the step's work, so it is said, not raised.
    """
    text = diff.model_dump_json()
    try:
        async for attempt in retry_until(
            _STORE_SECONDS, every=0.5, growing_to=2.0, on=(RedisError, OSError)
        ):
            with attempt:
                async with diff_store(settings) as store:
                    return await store.put(text), []
    except (RedisError, OSError) as exc:
        activity.logger.warning("full diff not stored: %s", exc)
        if len(diff.changes) <= RESULT_CHANGES:
            return None, []  # the result lists every change: nothing is lost
        where = address_of(settings.redis_url, 6379)
        return None, [
            f"the full diff ({len(diff.changes)} changes) could not be kept in Redis at "
            f"{where} ({type(exc).__name__}: {str(exc)[:200]}): the result lists "
            f"{RESULT_CHANGES} of them and counts the rest"
        ]
    raise AssertionError("unreachable: retry_until returns or raises")  # pragma: no cover


async def step_result(
    settings: Settings,
    diff: Diff,
    *,
    planned: bool = False,
    attempts: int = 1,
    detail: str = "",
    warnings: list[str] | None = None,
) -> StepResult:
    """A reconciling step's result: bounded, naming its full diff kept in Redis."""
    ref, kept = await keep_diff(settings, diff)
    return StepResult.from_diff(
        diff,
        planned=planned,
        attempts=attempts,
        detail=detail,
        warnings=[*(warnings or []), *kept],
        ref=ref,
    )
