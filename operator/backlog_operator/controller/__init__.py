"""The operator: reconcilers per kind, and the thin kopf layer that runs them.

- `handlers`: kopf registration, one function per kind; `runtime`: the apply cycles, what
  wakes them and the requeue loop, kept in kopf's `memo`; `cache`: what the watches said (Goals'
  last bodies, worker Jobs); `keyed`: per-object locks and wake-up times; `main`: `backlogctl
  operator`; `settings`; `metrics` (Prometheus) and `health` (readiness).
- `results` (`Reconciled`, `Event`), `status` (typed status and its one writer), `conditions`
  (Ready, Reconciling, Stalled for every kind), `owned_goals` (what Backlog and GoalSchedule
  share about the Goals they create), `usage` (task usage summed, daily budgets decided).
- `goals/`, `backlogs/`, `schedules/`: each kind's `reconciler` (with the Protocol of what it
  needs from the cluster) and its pure rules (the Job, retry, outcome, capacity; cron).
"""
