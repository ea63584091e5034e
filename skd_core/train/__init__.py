"""Training: teacher, scratch student and distilled student share one loop with exact resume."""
