#!/usr/bin/env bash
# Drop every table of a declared database (the first argument: a database the environment file
# declares; default the first) and re-apply its migrations, through ResetPostgresWorkflow on
# the core queue (so it is durable, locked against a concurrent migration, and visible in the
# Temporal Web UI). Waits for the result; exits non-zero on failure or for an undeclared name.
# Needs Temporal and a core worker running (`tilt up`, or `conceptor worker core`).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONCEPTOR="${CONCEPTOR:-$REPO_ROOT/.venv/bin/conceptor}"

exec "$CONCEPTOR" reset-postgres --wait "$@"
