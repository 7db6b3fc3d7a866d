"""The framework: settings, logging, clients, worker runtime, dev-service launcher."""
