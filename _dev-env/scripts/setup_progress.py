"""Progress of dev-setup.bash: what installs, for how long, against how long it took last time."""

# Standard library only: dev-setup.bash runs this with the system Python while the venv is
# still being made. On a terminal, with rich importable (a venv that is already there), it
# shows a live display instead of plain lines.
#
# The set-up describes each step in STATE_DIR: <name>.step when it starts
# (verb/label/started/expected/basis, one key=value a line), <name>.end when it ends
# (ended/status). STATE_DIR/.finished tells this process to print what is left and exit.

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

# Seconds between two lines about a running step: the promise is "at least every 15 s",
# and a loaded machine may wake this process a little late.
TICK = 10.0
POLL = 0.5
BASIS = {
    "last": "last run on this machine",
    "estimate": "estimate for a first run, 2 cores",
}


@dataclass(frozen=True)
class Step:
    """One install or build step as the set-up described it."""

    name: str
    verb: str
    label: str
    started: int
    expected: int
    basis: str
    ended: int | None
    ok: bool


def duration(seconds: float) -> str:
    """45s, 4m30s, 1h02m: short enough for one line, exact enough to compare."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _fields(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text()
    except OSError:
        return None  # not written yet, or cleared by a new run
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def read_steps(state: Path) -> list[Step]:
    """The steps described in the state directory, in the order they started."""
    steps = []
    for path in state.glob("*.step"):
        begin = _fields(path)
        if begin is None or not {"verb", "label", "started", "expected", "basis"} <= begin.keys():
            continue
        end = _fields(path.with_suffix(".end")) or {}
        steps.append(
            Step(
                name=path.stem,
                verb=begin["verb"],
                label=begin["label"],
                started=int(begin["started"]),
                expected=int(begin["expected"]),
                basis=begin["basis"],
                ended=int(end["ended"]) if "ended" in end else None,
                ok=end.get("status") == "ok",
            )
        )
    return sorted(steps, key=lambda s: (s.started, s.name))


def expectation(step: Step) -> str:
    """`expected 4m30s (last build on this machine)`; an estimate says so."""
    about = "about " if step.basis == "estimate" else ""
    return f"expected {about}{duration(step.expected)} ({BASIS.get(step.basis, step.basis)})"


def running_line(step: Step, now: float) -> str:
    """The line printed for a running step: what, how long so far, how long expected."""
    elapsed = now - step.started
    late = "; taking longer than expected" if elapsed > step.expected * 1.2 + 10 else ""
    return f"{step.verb:<10} {step.label}: {duration(elapsed)} elapsed, {expectation(step)}{late}"


def ended_line(step: Step) -> str:
    """`done       minio … in 4m12s` or `failed     minio … after 1m02s`."""
    took = duration((step.ended or step.started) - step.started)
    return (
        f"{'done':<10} {step.label} in {took}"
        if step.ok
        else f"{'failed':<10} {step.label} after {took}"
    )


class Plain:
    """A line per running step every TICK seconds, one when it ends: for logs and CI."""

    def __init__(self) -> None:
        self.last_tick = 0.0

    def show(self, steps: list[Step], seen: set[str], now: float) -> list[str]:
        lines = [running_line(s, now) for s in steps if s.ended is None and s.name not in seen]
        if now - self.last_tick >= TICK:
            # On the 10 s grid, so a late wake-up does not push every later line back too.
            self.last_tick = now if now - self.last_tick >= 2 * TICK else self.last_tick + TICK
            lines = [running_line(s, now) for s in steps if s.ended is None]
        return lines

    def emit(self, line: str) -> None:
        print(line, flush=True)

    def close(self) -> None:
        pass


class Live:
    """A live display (rich) on a terminal: a row per running step, a bar to its expected time."""

    def __init__(self, rich_progress: Any) -> None:
        self.progress = rich_progress.Progress(
            rich_progress.SpinnerColumn(),
            rich_progress.TextColumn("{task.description}"),
            rich_progress.BarColumn(bar_width=24),
            rich_progress.TextColumn("{task.fields[times]}"),
            transient=True,
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def show(self, steps: list[Step], seen: set[str], now: float) -> list[str]:
        for step in steps:
            if step.ended is not None:
                if step.name in self.tasks:
                    self.progress.remove_task(self.tasks.pop(step.name))
                continue
            elapsed = now - step.started
            times = f"{duration(elapsed)} elapsed, {expectation(step)}"
            if step.name not in self.tasks:
                self.tasks[step.name] = self.progress.add_task(
                    f"{step.verb} {step.label}", total=step.expected, times=times
                )
            # Past the expected time the bar pulses instead of sitting full.
            total = step.expected if elapsed < step.expected else None
            self.progress.update(
                self.tasks[step.name],
                completed=min(elapsed, step.expected),
                total=total,
                times=times,
            )
        return []

    def emit(self, line: str) -> None:
        self.progress.console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        self.progress.stop()


def _display() -> Plain | Live:
    if sys.stdout.isatty() and os.environ.get("TERM", "dumb") != "dumb":
        try:
            import rich.progress
        except ImportError:
            return Plain()
        return Live(rich.progress)
    return Plain()


def run(state: Path, *, follow: bool) -> None:
    """Report until the set-up says it finished (or, following another run, until stopped)."""
    stop = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    parent = os.getppid()
    display = _display()
    started = time.time()
    seen: set[str] = set()
    reported_end: set[str] = set()
    waiting_tick = started
    first = True
    try:
        while True:
            # Read the marker before the steps: every step that ended before it is then reported.
            finished = not follow and (state / ".finished").exists()
            now = time.time()
            steps = read_steps(state)
            if first and follow:
                # Another run's steps that ended before we looked are not news.
                reported_end = {s.name for s in steps if s.ended is not None}
            first = False
            for line in display.show(steps, seen, now):
                display.emit(line)
            seen |= {s.name for s in steps}
            for step in steps:
                if step.ended is not None and step.name not in reported_end:
                    reported_end.add(step.name)
                    display.emit(ended_line(step))
            if follow and not any(s.ended is None for s in steps) and now - waiting_tick >= TICK:
                waiting_tick = now
                display.emit(f"{'waiting':<10} for the other dev-setup: {duration(now - started)}")
            if finished or stop or os.getppid() != parent:
                return
            time.sleep(POLL)
    except KeyboardInterrupt:
        return
    finally:
        display.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("state", type=Path, help="the set-up's progress directory")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="another run owns the directory: report it until stopped",
    )
    args = parser.parse_args()
    run(args.state, follow=args.follow)


if __name__ == "__main__":
    main()
