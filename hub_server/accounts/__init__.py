"""Operators and what they did: ``auth`` (sessions, API tokens, CSRF, roles, login limits) and ``audit`` (the trail)."""
