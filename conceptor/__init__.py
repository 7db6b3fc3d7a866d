"""Conceptor: a Temporal-centric local development platform."""

__version__ = "0.1.0"
