"""Adapters: the only code that does I/O (git, GitHub, Kubernetes)."""
