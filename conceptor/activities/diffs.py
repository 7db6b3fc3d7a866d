"""Keep a step's full diff outside the workflow history, where the CLI, API and panel find it."""

from __future__ import annotations

from redis.exceptions import RedisError
from temporalio import activity

from conceptor.activities.waiting import address_of
from conceptor.contracts import RESULT_CHANGES, Diff, StepResult
from conceptor.platform.diff_store import Packed, pack, shared_store
from conceptor.platform.retrying import retry_until
from conceptor.platform.settings import Settings

# Redis may still be starting when a step ends (it is waited for in another chain).
_STORE_SECONDS = 10.0


def packed_result(
    diff: Diff,
    *,
    planned: bool = False,
    attempts: int = 1,
    detail: str = "",
    warnings: list[str] | None = None,
) -> tuple[StepResult, Packed]:
    """A reconciling step's bounded result, naming the full diff packed for `keep`: the CPU
    part (serializing, compressing: a second for 50 000 users), to run off the worker's loop."""
    packed = pack(diff.model_dump_json())
    result = StepResult.from_diff(
        diff,
        planned=planned,
        attempts=attempts,
        detail=detail,
        warnings=warnings,
        ref=packed.ref,
    )
    return result, packed


async def keep(settings: Settings, result: StepResult, packed: Packed) -> StepResult:
    """`result` once its full diff is in Redis; if it cannot be stored, without the reference,
    and with a warning when the result does not list every change.

    Failing to store the diff does not undo the step's work: it is said, not raised.
    """
    try:
        async for attempt in retry_until(
            _STORE_SECONDS, every=0.5, growing_to=2.0, on=(RedisError, OSError)
        ):
            with attempt:
                await shared_store(settings).put(packed)
        return result
    except (RedisError, OSError) as exc:
        activity.logger.warning("full diff not stored: %s", exc)
        assert result.diff is not None
        warnings = list(result.warnings)
        if not result.diff.complete:  # else the result lists every change: nothing is lost
            total = sum(result.counts.values())
            where = address_of(settings.redis_url, 6379)
            warnings.append(
                f"the full diff ({total} changes) could not be kept in Redis at {where} "
                f"({type(exc).__name__}: {str(exc)[:200]}): the result lists "
                f"{RESULT_CHANGES} of them and counts the rest"
            )
        diff = result.diff.model_copy(update={"ref": None})
        return result.model_copy(update={"diff": diff, "warnings": warnings})


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
    result, packed = packed_result(
        diff, planned=planned, attempts=attempts, detail=detail, warnings=warnings
    )
    return await keep(settings, result, packed)
