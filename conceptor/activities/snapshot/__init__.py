"""Snapshots of the whole environment: every declared database, bucket and realm as one point."""
