"""The operator: reconcilers per kind, and the thin kopf layer that runs them.

- `handlers`: kopf registration, one function per kind; `runtime`: the requeue loop, the locks
  and the apply cycles, kept in kopf's `memo`; `main`: `backlogctl operator`; `settings`.
- `results` (`Reconciled`, `Event`), `status` (typed status and its one writer), `conditions`
  (Ready, Reconciling, Stalled for every kind), `owned_goals` (what Backlog and GoalSchedule
  share about the Goals they create).
- `goals/`, `backlogs/`, `schedules/`: each kind's `reconciler` (with the Protocol of what it
  needs from the cluster) and its pure rules (the Job, retry, outcome, capacity; cron).
"""
