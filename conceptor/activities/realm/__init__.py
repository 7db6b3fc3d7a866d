"""The Keycloak realm reconciler: file → items, live → items, pure diff, ordered writes, verify."""
