"""API models (pydantic): the source of truth for the custom resources and the worker result;
and the rules and the result the worker steps use without pydantic."""
