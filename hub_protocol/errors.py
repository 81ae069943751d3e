"""Errors shared by both programs, without pydantic (the command line's frame reports them before any model loads)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration or input that failed validation; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))
