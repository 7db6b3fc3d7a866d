"""Workflow classes: deterministic, no I/O."""
