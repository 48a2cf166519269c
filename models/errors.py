"""Errors of the shared core; the API maps them to HTTP statuses in one place."""

from __future__ import annotations


class AivbatchError(Exception):
    """Root of the core's errors."""


class NotFound(AivbatchError):
    """No such object for this tenant (another tenant's object is not found either)."""


class Conflict(AivbatchError):
    """The object is in a state that does not allow the operation."""


class InvalidInput(AivbatchError):
    """The caller's input is unusable; the message names the field or line."""


class ConfigError(AivbatchError):
    """The routing file is unusable; the message names the file and the key."""
