"""API models (pydantic): the single source of truth for the custom resources and the worker's result."""
