"""The shipped environment file's stack (_dev-env/environment.yaml), as tests expect it."""

from __future__ import annotations

from conceptor.platform import environment
from conceptor.stack_graph import environment_graph

SHIPPED = environment.load(environment.DEFAULT_FILE)
# Its provisioning graph: one database with seed data, one realm, two seeded buckets.
DEFAULT_GRAPH = environment_graph(SHIPPED)
ALL_STEPS: tuple[str, ...] = tuple(DEFAULT_GRAPH.names())
# The steps of the shipped graph that change something (each applies a Diff).
RECONCILING_STEPS: tuple[str, ...] = tuple(DEFAULT_GRAPH.reconciling())
ALL_QUEUES: tuple[str, ...] = tuple(q.name for q in SHIPPED.queues)
