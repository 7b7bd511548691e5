"""Run directories: executing a recipe into one, and what it leaves there (config, metrics, summary)."""
