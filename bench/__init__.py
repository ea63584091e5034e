"""bench: orchestration of SKD-Bench (CLI, grids, executors, result records, reports)."""
