"""Command-line commands that drive the platform and the application by name."""
