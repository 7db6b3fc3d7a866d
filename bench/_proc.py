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
