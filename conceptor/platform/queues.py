"""The task queues the environment file declares, in port order, and each worker's port."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from conceptor.platform.environment import PLATFORM_QUEUE, Environment, Queue, default_file, load
from conceptor.platform.settings import MAX_WORKERS_PER_QUEUE, REPO_ROOT, Settings

# Worker health/metrics ports (README "Ports"). The first FIRST_BLOCK_QUEUES queues keep their
# slots of MAX_WORKERS_PER_QUEUE in the prefix's own block, from offset FIRST_BLOCK_OFFSET
# (30-49 and 50-69: the ports the first two always had); the 70s hold no full slot, and 80-99
# are the launchers'. Every further queue takes the next slot of the second block, which starts
# at <worker prefix>00 (TILT_WORKER_PORT_PREFIX, default the next prefix: 440 -> 44100) and
# runs on into the prefixes after it, five queues per hundred ports.
FIRST_BLOCK_OFFSET = 30
FIRST_BLOCK_QUEUES = 2
HIGHEST_PORT = 65535


class UnknownQueueError(KeyError):
    """A queue the environment file does not declare; the message names the file and its queues."""

    def __init__(self, queue: str, file: Path, known: list[str]) -> None:
        self.queue = queue
        msg = (
            f"queue {queue!r} is not declared in {file}; it declares: {', '.join(known)} "
            "(add it under `queues:` to run it)"
        )
        super().__init__(msg)

    def __str__(self) -> str:
        return str(self.args[0])


def port_order(env: Environment) -> list[Queue]:
    """The platform's queue first, then the others as the file lists them (their port slots)."""
    return sorted(env.queues, key=lambda q: q.name != PLATFORM_QUEUE)


@lru_cache(maxsize=8)
def _read(path: str, _mtime_ns: int, _size: int) -> tuple[Queue, ...]:
    # Keyed by the file's mtime and size: a worker port is asked for many times per command.
    return tuple(port_order(load(Path(path))))


def declared_queues(file: Path | None = None) -> list[Queue]:
    """The file's queues in port order ($CONCEPTOR_ENVIRONMENT_FILE, else the repo's file)."""
    path = file or default_file()
    try:
        stat = os.stat(path)
    except OSError:
        return list(_read(str(path), 0, -1))  # load() refuses it, naming the file
    return list(_read(str(path), stat.st_mtime_ns, stat.st_size))


def queue_names(file: Path | None = None) -> list[str]:
    return [q.name for q in declared_queues(file)]


def declared_queue(name: str, file: Path | None = None) -> Queue:
    """The file's entry for queue `name`, or UnknownQueueError naming the file and its queues."""
    queues = declared_queues(file)
    for queue in queues:
        if queue.name == name:
            return queue
    raise UnknownQueueError(name, file or default_file(), [q.name for q in queues])


def slot_port(prefix: str, worker_prefix: str | None, ordinal: int, index: int) -> int:
    """The port of worker `index` of the queue at position `ordinal` of the port order."""
    if not 0 <= index < MAX_WORKERS_PER_QUEUE:
        msg = f"worker index {index} is outside 0..{MAX_WORKERS_PER_QUEUE - 1}"
        raise ValueError(msg)
    if ordinal < FIRST_BLOCK_QUEUES:
        return int(prefix) * 100 + FIRST_BLOCK_OFFSET + ordinal * MAX_WORKERS_PER_QUEUE + index
    second = int(worker_prefix) if worker_prefix else int(prefix) + 1
    port = second * 100 + (ordinal - FIRST_BLOCK_QUEUES) * MAX_WORKERS_PER_QUEUE + index
    own = range(int(prefix) * 100, int(prefix) * 100 + 100)
    if port > HIGHEST_PORT or port in own:
        where = "is past 65535" if port > HIGHEST_PORT else f"falls in the block of {prefix}"
        msg = (
            f"worker {index} of queue number {ordinal + 1} would use port {port}, which {where}: "
            "set TILT_WORKER_PORT_PREFIX to a prefix whose block (and the ones after it, five "
            "queues per block) nothing else uses"
        )
        raise ValueError(msg)
    return port


def queue_worker_port(
    prefix: str, worker_prefix: str | None, queue: str, index: int, file: Path | None = None
) -> int:
    """Worker `index` of declared queue `queue` (UnknownQueueError if the file lacks it)."""
    names = queue_names(file)
    if queue not in names:
        raise UnknownQueueError(queue, file or default_file(), names)
    return slot_port(prefix, worker_prefix, names.index(queue), index)


def worker_port(settings: Settings, queue: str, index: int) -> int:
    """Health/metrics port of worker `index` of `queue`, a queue the environment file declares."""
    return queue_worker_port(settings.port_prefix, settings.worker_port_prefix, queue, index)


def team_code(file: Path | None = None) -> list[str]:
    """What of the team's own code the file names, as repository paths (for the app image).

    The top-level package (folder) or module (`.py`) of each queue's `declaration`, each
    step's `run` and what the `api` section names, found as `conceptor worker` finds it:
    from the repository root, then the file's folder; the `conceptor` package (always in the
    image) and code outside the repository (it cannot be in a build context) are left out.
    """
    path = file or default_file()
    env = load(path)
    targets = [q.declaration for q in env.queues if q.declaration]
    targets += [s.run for s in env.steps if s.run]
    targets += [target for _path, target in env.api.targets()]
    roots = [REPO_ROOT, path.resolve().parent]
    found: list[str] = []
    for target in targets:
        top = target.partition(":")[0].split(".")[0]
        for root in roots:
            hits = [c for c in (root / top, root / f"{top}.py") if c.exists()]
            if hits:
                where = hits[0].resolve()
                if where.is_relative_to(REPO_ROOT) and top != "conceptor":
                    found.append(where.relative_to(REPO_ROOT).as_posix())
                break
    return list(dict.fromkeys(found))
