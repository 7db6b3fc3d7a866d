"""Realm files: what Keycloak 26 keeps of older exports (pure; for the import step and the CLI)."""
