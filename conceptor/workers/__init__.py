"""Queue declarations and the `conceptor worker` entry point."""
