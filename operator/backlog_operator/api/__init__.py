"""API models (pydantic): the source of truth for the custom resources and the worker result."""
