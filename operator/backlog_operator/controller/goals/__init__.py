"""The Goal controller: one unit of work, run as worker Jobs (reconciler, Job, retry, capacity)."""
