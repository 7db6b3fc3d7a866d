"""The FastAPI backend served under /api."""
