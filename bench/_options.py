"""What every benchmark accepts besides its own knobs: --runs, --quick and --results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from conceptor.platform.imports import make_importable
from conceptor.platform.settings import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
# A benchmark of a team's service imports its code (services/...) from the repository root,
# as `conceptor worker` does; every benchmark imports this module before its own imports.
make_importable()


def add_options(parser: argparse.ArgumentParser, *, runs: int) -> None:
    """--runs (rounds to take medians of), --quick and --results."""
    parser.add_argument("--runs", type=int, default=runs, help=f"rounds (default {runs})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one short round, to check that the benchmark still runs end to end; its figures "
        "are not for comparing, and go to bench/results/quick/ unless --results says otherwise",
    )
    parser.add_argument("--results", type=Path, help="the JSON file to write")


def parse_options(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    return args


def write_results(args: argparse.Namespace, name: str, data: Any) -> Path:
    """The JSON next to the full runs' (bench/results/<name>.json), or in quick/ for --quick,
    so that a quick run never replaces the figures a full run wrote."""
    path = args.results or RESULTS_DIR / ("quick" if args.quick else "") / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"results: {path}")
    return path


def exit_if_missed(args: argparse.Namespace, met: bool) -> None:
    """A full run exits 1 when its target is missed. A quick run's single round, taken next to
    whatever else the machine does, decides nothing: it only has to run."""
    if not met and not args.quick:
        sys.exit(1)


def verdict(checks: dict[str, bool], say: Any = print) -> dict[str, Any]:
    """Each check printed as met or MISSED; what a results file records of them (with the
    machine's load, which the figures depend on)."""
    for name, met in checks.items():
        say(f"{name}: {'met' if met else 'MISSED'}")
    return {
        "checks": checks,
        "targets_met": all(checks.values()),
        "load_average": list(os.getloadavg()),
    }
