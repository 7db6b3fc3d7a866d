"""Seed data: rows of a database's tables declared in files, reconciled after its migrations."""
