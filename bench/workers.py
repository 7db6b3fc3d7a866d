"""Workers: no-op activities vs a bare SDK worker; thumbnails/s vs Pillow; schedule-to-start."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _options import add_options, parse_options, write_results
from PIL import Image
from rich.console import Console
from rich.table import Table
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack, stop_process
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import Settings
from conceptor.platform.temporal import connect
from conceptor.workers.registry import resolve_queue
from services.central.client import ingest_upload
from services.central.contracts import media_workflow_id
from services.central.imaging import render_thumbnails
from services.central.settings import get_media_settings

PREFIX = "469"
SERVICES = ("postgres", "redis", "temporal", "minio", "mailpit")
BARE_QUEUE = "bench-bare-core"
NOOP_FLOWS, NOOP_PER_FLOW = 4, 25  # per run: 100 activities in flight at once
IMAGES = 6  # per media run: 12-megapixel PNG photos (4000x3000)
NOOP_ACTIVITY = "provision_defaults"  # a core activity that does no I/O: returns a settings value


@dataclass
class NoopLoad:
    activities: int
    queue: str


@workflow.defn(sandboxed=False)
class NoopLoadWorkflow:
    """Schedules `activities` no-op activities at once on `queue` (the worker under test)."""

    @workflow.run
    async def run(self, load: NoopLoad) -> int:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    NOOP_ACTIVITY,
                    task_queue=load.queue,
                    start_to_close_timeout=timedelta(seconds=60),
                )
                for _ in range(load.activities)
            )
        )
        return load.activities


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def schedule_to_start_ms(
    client: Client, workflow_ids: list[str], activity: str
) -> list[float]:
    """Scheduled → started latency of every `activity` in these histories, in milliseconds."""
    latencies: list[float] = []
    for wf_id in workflow_ids:
        scheduled: dict[int, float] = {}
        async for event in client.get_workflow_handle(wf_id).fetch_history_events():
            at = event.event_time.ToMicroseconds() / 1000
            if event.HasField("activity_task_scheduled_event_attributes"):
                attrs = event.activity_task_scheduled_event_attributes
                if attrs.activity_type.name == activity:
                    scheduled[event.event_id] = at
            elif event.HasField("activity_task_started_event_attributes"):
                sched = event.activity_task_started_event_attributes.scheduled_event_id
                if sched in scheduled:
                    latencies.append(at - scheduled[sched])
    return latencies


class Proc:
    """A worker child process, waited for via its health endpoint (or a marker line)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, timeout=40)


async def wait_health(port: int, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                msg = f"worker exited: {proc.log.read_text()[-2000:]}"
                raise RuntimeError(msg)
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    msg = f"worker on {port} never polled; log {proc.log}"
    raise TimeoutError(msg)


async def wait_marker(proc: Proc, marker: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while marker not in proc.log.read_text():
        if time.monotonic() > deadline or proc.proc.poll() is not None:
            msg = f"bare worker not ready: {proc.log.read_text()[-2000:]}"
            raise RuntimeError(msg)
        await asyncio.sleep(0.1)


async def noop_run(
    client: Client, driver_queue: str, queue: str, n: int, flows: int
) -> tuple[float, list[str]]:
    """Activities per second for `flows` workflows x `n` no-op activities against `queue`."""
    ids = [f"bench-noop-{uuid.uuid4()}" for _ in range(flows)]
    start = time.perf_counter()
    handles = [
        await client.start_workflow(
            NoopLoadWorkflow.run, NoopLoad(activities=n, queue=queue), id=i, task_queue=driver_queue
        )
        for i in ids
    ]
    await asyncio.gather(*(h.result() for h in handles))
    return flows * n / (time.perf_counter() - start), ids


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of these processes (all their threads) so far, from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def make_images(count: int, width: int, height: int) -> list[bytes]:
    images = []
    for seed in range(count):
        grad = Image.linear_gradient("L").resize((width, height)).rotate(seed * 7)
        noise = Image.effect_noise((width // 4, height // 4), 20 + seed).resize((width, height))
        picture = Image.merge("RGB", (grad, noise, grad.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))
        out = io.BytesIO()
        picture.save(out, "PNG", compress_level=1)
        images.append(out.getvalue())
    return images


def direct_rate(images: list[bytes], sizes: list[int], settings: Settings) -> tuple[float, float]:
    """Pillow called directly, one image after another here: (images/s, images per CPU-s)."""
    start, cpu = time.perf_counter(), time.process_time()
    for i, data in enumerate(images):
        render_thumbnails(
            data, sizes, filename=f"{i}.png", max_pixels=get_media_settings().max_image_pixels
        )
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    return len(images) / wall, len(images) / used


async def media_run(
    client: Client, settings: Settings, images: list[bytes]
) -> tuple[float, list[str]]:
    """Uploads → every MediaIngestWorkflow finished: thumbnails (images) per second."""
    start = time.perf_counter()
    assets = await asyncio.gather(
        *(
            ingest_upload(
                settings, client, filename=f"bench-{i}.png", content_type="image/png", data=d
            )
            for i, d in enumerate(images)
        )
    )
    ids = [media_workflow_id(a.id) for a in assets]
    await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids))
    return len(images) / (time.perf_counter() - start), ids


async def bench(
    settings: Settings, env: dict[str, str], logs: Path, runs: int, images_per_run: int
) -> dict[str, Any]:
    from conceptor.activities.postgres import PostgresActivities
    from conceptor.activities.storage import StorageActivities

    activity_env = ActivityEnvironment()
    await activity_env.run(PostgresActivities(settings).migrate_postgres)
    await activity_env.run(StorageActivities(settings).ensure_buckets)
    client = await connect(settings)
    conceptor = str(Path(sys.executable).parent / "conceptor")
    child_env = {**os.environ, **env}
    procs: list[Proc] = []
    samples: dict[str, list[float]] = {}
    latencies: dict[str, list[float]] = {}
    try:
        core = Proc([conceptor, "worker", "core", "--index", "0"], child_env, logs / "core-0.log")
        bare = Proc([sys.executable, __file__, "--bare-worker"], child_env, logs / "bare.log")
        procs += [core, bare]
        await wait_health(worker_port(settings, "core", 0), core)
        await wait_marker(bare, "bare worker polling")
        driver_queue = f"bench-driver-{uuid.uuid4()}"
        async with Worker(
            client, task_queue=driver_queue, workflows=[NoopLoadWorkflow], max_cached_workflows=100
        ):
            await noop_run(client, driver_queue, "core", 20, 2)  # warm-up, both sides
            await noop_run(client, driver_queue, BARE_QUEUE, 20, 2)
            for key in ("noop conceptor worker", "noop bare Worker"):
                samples[key] = []
                latencies[key] = []
            for _ in range(runs):
                for key, queue in (
                    ("noop conceptor worker", "core"),
                    ("noop bare Worker", BARE_QUEUE),
                ):
                    rate, ids = await noop_run(
                        client, driver_queue, queue, NOOP_PER_FLOW, NOOP_FLOWS
                    )
                    samples[key].append(rate)
                    latencies[key] += await schedule_to_start_ms(client, ids, NOOP_ACTIVITY)
        bare.stop()

        sizes = sorted(set(get_media_settings().thumbnail_sizes))
        images = make_images(images_per_run, 4000, 3000)
        direct = [direct_rate(images, sizes, settings) for _ in range(runs)]
        samples["thumbnails direct Pillow"] = [wall for wall, _ in direct]
        samples["thumbnails direct Pillow per CPU-s"] = [per_cpu for _, per_cpu in direct]
        media: list[Proc] = []
        for workers in (1, 2):
            while len(media) < workers:
                index = len(media)
                proc = Proc(
                    [conceptor, "worker", "media", "--index", str(index)],
                    child_env,
                    logs / f"media-{index}.log",
                )
                procs.append(proc)
                media.append(proc)
                await wait_health(worker_port(settings, "media", index), proc)
            await media_run(client, settings, images[:2])  # warm-up
            key = f"thumbnails {workers} media worker{'s' if workers > 1 else ''}"
            samples[key], samples[f"{key} per CPU-s"], latencies[key] = [], [], []
            for _ in range(runs):
                cpu = cpu_seconds([p.proc.pid for p in media])
                rate, ids = await media_run(client, settings, images)
                used = cpu_seconds([p.proc.pid for p in media]) - cpu
                samples[key].append(rate)
                samples[f"{key} per CPU-s"].append(len(images) / used)
                latencies[key] += await schedule_to_start_ms(client, ids, "create_thumbnails")
    finally:
        for proc in procs:
            proc.stop()
    return {"samples": samples, "latencies_ms": latencies}


def report(result: dict[str, Any], settings: Settings, runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = result["samples"]
    medians = {k: statistics.median(v) for k, v in samples.items()}
    cpus = os.cpu_count() or 1
    direct = medians["thumbnails direct Pillow"]
    direct_cpu = medians["thumbnails direct Pillow per CPU-s"]
    pool = resolve_queue("media").pool_size(settings)
    ratios = {"noop conceptor/bare": medians["noop conceptor worker"] / medians["noop bare Worker"]}
    for workers, label in ((1, "1 media worker"), (2, "2 media workers")):
        # Wall clock per core assumes the cores are ours; per CPU-second holds on a busy machine.
        cores = min(cpus, workers * pool)
        ratios[f"thumbnails {label} per core / direct"] = (
            medians[f"thumbnails {label}"] / cores / direct
        )
        ratios[f"thumbnails {label} per CPU-s / direct"] = (
            medians[f"thumbnails {label} per CPU-s"] / direct_cpu
        )
    lat = {
        k: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99), "n": len(v)}
        for k, v in result["latencies_ms"].items()
        if v
    }
    table = Table(
        title=f"Workers, median of {runs} runs: {cpus} CPUs, media pool {pool}, 12 MP PNGs"
    )
    for col in ("measurement", "median /s", "runs /s", "sched→start p50 ms", "p99 ms"):
        table.add_column(col)
    for key, values in samples.items():
        l50 = f"{lat[key]['p50']:.1f}" if key in lat else ""
        l99 = f"{lat[key]['p99']:.1f}" if key in lat else ""
        table.add_row(key, f"{medians[key]:.1f}", " ".join(f"{v:.1f}" for v in values), l50, l99)
    targets = {"noop conceptor/bare": 0.95}
    for key, value in ratios.items():
        target = targets.get(key, 0.8)
        table.add_row(f"ratio {key}", f"{value:.2f}", f"target ≥ {target}", "", "")
    Console().print(table)
    return {
        "runs": runs,
        "cpus": cpus,
        "media_pool_size": pool,
        "samples": samples,
        "medians": medians,
        "ratios": ratios,
        "targets": {k: targets.get(k, 0.8) for k in ratios},
        "schedule_to_start_ms": lat,
    }


async def bare_worker() -> None:
    """The baseline: a plain SDK Worker with the core queue's activities, workflows and limits."""
    from conceptor.platform.settings import get_settings
    from conceptor.workers.declarations import QUEUES

    settings = get_settings()
    core = QUEUES["core"]
    client = await connect(settings)
    worker = Worker(
        client,
        task_queue=BARE_QUEUE,
        workflows=list(core.workflows()),
        activities=core.activities(settings),
        max_concurrent_activities=core.max_concurrent_activities(settings),
        max_concurrent_workflow_tasks=core.max_concurrent_workflow_tasks(settings),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("bare worker polling", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_options(parser, runs=3)
    parser.add_argument("--prefix", default=PREFIX, help="port prefix of the stack to use/start")
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    args = parse_options(parser)
    if args.bare_worker:
        asyncio.run(bare_worker())
        return
    root = Path(tempfile.mkdtemp(prefix="conceptor-bench-workers-"))
    root.chmod(0o755)
    env = {
        "TILT_PORT_PREFIX": args.prefix,
        "CENTRAL_LOCALDEV_DIR": os.environ.get("CENTRAL_LOCALDEV_DIR", str(root / "localdev")),
        "CENTRAL_ENVIRONMENT": "test",
        "CENTRAL_LOG_FORMAT": "json",
    }
    os.environ.update(env)
    settings = Settings()
    stack = LocalStack(settings, env=env, log_dir=root / "logs", services=SERVICES)
    reuse = port_in_use(settings.host, settings.port("temporal"))
    try:
        if reuse:
            asyncio.run(stack.wait_ready(SERVICES, timeout=60))
        else:
            stack.start(timeout=300)
        (root / "workers").mkdir()
        images = 2 if args.quick else IMAGES
        result = asyncio.run(bench(settings, env, root / "workers", args.runs, images))
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary = report(result, settings, args.runs)
    write_results(args, "workers", summary)


if __name__ == "__main__":
    main()
