"""Constants both the settings and the environment file's model need (neither imports the other's
module for them: settings read the file)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Worker health/metrics ports: one slot of MAX_WORKERS_PER_QUEUE per declared queue, laid out
# by conceptor/platform/queues.py (offsets 30-69 for the first two, then a second block):
# conceptor.platform.queues.worker_port(settings, queue, index).
MAX_WORKERS_PER_QUEUE = 20
