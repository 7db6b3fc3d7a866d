"""`tilt up` with the default environment file against the code before the environment file.

The environment file moved the stack's description out of the platform's code; a user's
`tilt up` must be no slower for it. Each round, alternating which goes first, `tilt up` to
everything ready (bench/stack_startup.py's measure: every resource green in Tilt's own view)
on an empty data directory, once with this checkout and once with the commit before the
environment file (BEFORE, unpacked by `git archive`, run with this checkout's virtualenv and
tools), both on the same port block.

Target: this checkout's median <= BEFORE's (medians of --runs). --quick: one round each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from _options import add_options, exit_if_missed, parse_options, verdict, write_results
from rich.console import Console
from rich.table import Table
from stack_startup import PREFIX, time_tilt_up

from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

# The last commit before `_dev-env/environment.yaml` (3de7224 introduced it).
BEFORE = "af7b07e"


def unpack(commit: str, into: Path) -> Path:
    """The tree of `commit`, with this checkout's virtualenv (the same pinned packages)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", commit], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / ".venv").symlink_to(REPO_ROOT / ".venv")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, runs=3)
    parser.add_argument("--prefix", default=PREFIX, help="port prefix (Tilt's port: 10000+it)")
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    args = parse_options(parser)
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    settings = Settings(port_prefix=args.prefix)
    root = Path(tempfile.mkdtemp(prefix="conceptor-bench-tilt-before-"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` and must reach its data dir
    before = unpack(args.before, root / "before")
    samples: dict[str, list[float]] = {"now": [], "before": []}
    try:
        for run in range(args.runs):
            for which in ("now", "before") if run % 2 == 0 else ("before", "now"):
                localdev = root / f"{which}-{run}"
                localdev.mkdir()
                localdev.chmod(0o755)
                # Not waiting for the unit-tests resource: a test run is not the stack.
                if which == "now":
                    timed = time_tilt_up(settings, localdev, tilt, unit_tests=False)
                else:
                    timed = time_tilt_up(
                        settings,
                        localdev,
                        tilt,
                        repo=before,
                        extra_env={"PYTHONPATH": str(before)},
                        unit_tests=False,
                    )
                samples[which].append(timed["ready_s"])
                print(f"  round {run + 1}: {which} {timed['ready_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = report(samples, args)
    write_results(args, "tilt_up_before", summary)
    exit_if_missed(args, summary["targets_met"])


def report(samples: dict[str, list[float]], args: argparse.Namespace) -> dict[str, Any]:
    now, before = statistics.median(samples["now"]), statistics.median(samples["before"])
    table = Table(title=f"tilt up to everything ready, cold (medians of {args.runs})")
    for col in ("this checkout", f"before the environment file ({args.before})", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(f"{now:.1f} s", f"{before:.1f} s", f"{now / before:.2f}x")
    console = Console(width=120)
    console.print(table)
    judged = verdict({"no_slower": now <= before}, console.print)
    return {
        "runs": args.runs,
        "now_s": now,
        "before_s": before,
        "ratio": now / before,
        **judged,
        "samples": samples,
        "load_average_now": list(os.getloadavg()),
    }


if __name__ == "__main__":
    main()
