"""backlog-operator: turns a backlog into pull requests, one Kubernetes Job per task."""

__version__ = "0.1.0"
