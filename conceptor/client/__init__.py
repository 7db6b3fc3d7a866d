"""Typed clients of the workflows, by name: what the API and the CLI start and read."""
