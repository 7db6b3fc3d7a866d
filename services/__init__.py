"""Teams' services: code the environment file names, outside the platform's package."""
