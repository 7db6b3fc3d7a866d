"""Activity functions, one module per infrastructure service or concern."""
