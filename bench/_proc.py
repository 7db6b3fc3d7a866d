"""What the benchmarks read about processes: CPU seconds used, the listener of a port."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU time a process has used so far (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listener_pid(port: int) -> int | None:
    """The process listening on a loopback TCP port (from `ss -ltnp`)."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    match = re.search(r"pid=(\d+)", out.stdout)
    return int(match.group(1)) if match else None


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU time of a process, of its children it has reaped, and of its live descendants.

    For servers that fork a process per connection (PostgreSQL): a backend that exited is
    counted in its parent's reaped-children time, one still running in its own.
    """
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return own + sum(tree_cpu_seconds(int(k)) for k in kids if Path(f"/proc/{k}").exists())


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy so far (all processes, from
    /proc/stat: user, nice, system, irq, softirq, steal), to set against a wall time."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
