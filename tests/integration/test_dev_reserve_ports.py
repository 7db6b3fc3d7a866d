"""reserve-ports.bash (`make up`): the prefix's block is kept out of the ephemeral range."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conceptor.platform.settings import REPO_ROOT

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "_dev-env" / "scripts" / "reserve-ports.bash"
SYSCTL = "sudo sysctl -w net.ipv4.ip_local_reserved_ports="


def _run(tmp: Path, prefix: str, reserved: str, *, root: bool = True) -> tuple[str, str]:
    """The script on fake /proc files and a fake sysctl that records what it was told."""
    (tmp / "range").write_text("32768\t60999\n")
    (tmp / "reserved").write_text(reserved + "\n")
    fake = tmp / "sysctl"
    fake.write_text(
        f'#!/bin/sh\n[ "$1 $2" = "-q -w" ] || exit 9\necho "${{3#*=}}" > {tmp}/reserved\n'
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "CONCEPTOR_VENV": sys.prefix,
        "TILT_PORT_PREFIX": prefix,
        "RESERVED_FILE": str(tmp / "reserved"),
        "RANGE_FILE": str(tmp / "range"),
        "SYSCTL": str(fake),
        "EUID_OVERRIDE": "0" if root else "1000",
    }
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    return result.stdout, (tmp / "reserved").read_text().strip()


def test_root_adds_the_block_and_keeps_the_reserved_ranges(tmp_path: Path) -> None:
    """As root, 53000-53099 is appended to what was reserved; nothing else changes."""
    out, reserved = _run(tmp_path, "530", "44000-46999,50001")
    assert reserved == "44000-46999,50001,53000-53099"
    assert out == (
        "set        reserved ports 53000-53099 "
        "(net.ipv4.ip_local_reserved_ports=44000-46999,50001,53000-53099)\n"
    )


def test_a_covered_block_is_left_as_it_is(tmp_path: Path) -> None:
    """A block inside a reserved range (462 in 44000-46999) only gets a `found` line."""
    out, reserved = _run(tmp_path, "462", "44000-46999")
    assert reserved == "44000-46999"
    assert out == (
        "found      reserved ports 46200-46299 (net.ipv4.ip_local_reserved_ports=44000-46999)\n"
    )


def test_without_root_it_prints_the_exact_command(tmp_path: Path) -> None:
    """Not root: nothing is written, and the one command that reserves the block is printed."""
    out, reserved = _run(tmp_path, "531", "44000-46999", root=False)
    assert reserved == "44000-46999"
    assert out.splitlines() == [
        "warning    ports 53100-53199 are not reserved against ephemeral use; to reserve them run:",
        f"           {SYSCTL}44000-46999,53100-53199",
    ]


def test_a_block_outside_the_ephemeral_range_needs_nothing(tmp_path: Path) -> None:
    """Prefix 100 (10000-10099) is below the ephemeral range: nothing to reserve."""
    out, reserved = _run(tmp_path, "100", "")
    assert reserved == ""
    assert out == (
        "found      ports 10000-10099 outside the ephemeral range (32768-60999): "
        "nothing to reserve\n"
    )


def test_make_up_reserves_before_tilt_starts() -> None:
    """The Makefile's `up` runs the script, then Tilt."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    up = makefile.split("\nup:", 1)[1].split("\n\n", 1)[0].splitlines()
    assert up[1].strip() == "@bash $(REPO)/_dev-env/scripts/reserve-ports.bash"
    assert up[2].strip().startswith("cd $(REPO) && $(TILT) up")
