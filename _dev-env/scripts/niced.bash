#!/usr/bin/env bash
# Run a command at a lower CPU priority: niced.bash LEVEL COMMAND [ARG...]
#
# Tilt starts every resource in a session of its own, and Linux with autogroup scheduling (the
# default of most distributions) first shares the CPU equally between sessions and only then,
# inside each one, by nice value: `nice` alone would change nothing against another resource.
# So the session's own priority is lowered too (/proc/self/autogroup: this shell is the
# session's leader, and the command it becomes stays in the session). Lowering a priority needs
# no privilege; where there is no autogroup (macOS, or a kernel without it) `nice` is enough.
set -euo pipefail

level="${1:?usage: niced.bash LEVEL COMMAND [ARG...]}"
shift
if [[ -w /proc/self/autogroup ]]; then
	echo "$level" >/proc/self/autogroup 2>/dev/null || true
fi
exec nice -n "$level" "$@"
