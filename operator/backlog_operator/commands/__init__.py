"""The day-two commands of `backlogctl` / `kubectl backlog`: offline checks and cluster views.

Each module is imported by `cli` only when its command runs, so the worker steps never load
the Kubernetes client for them.
"""
