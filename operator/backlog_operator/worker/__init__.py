"""The worker's three steps (clone, task, publish), run in a Job's containers or locally."""
