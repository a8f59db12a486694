"""Test support: stand-ins for the services the operator talks to, served over real HTTP."""
