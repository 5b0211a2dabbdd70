"""Errors a user can cause with input: one module, so config, envs and scenarios share them without a cycle."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")
