"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations


class MvaError(Exception):
    """Base class: a problem with the user's input, config or files."""


class ConfigError(MvaError):
    """A config key is missing, unknown or has a wrong value; the message names the key path."""


class InputError(MvaError):
    """An input file, tree, branch or the events in it cannot be used; the message names which."""


class NotFittedError(MvaError):
    """A model was asked to predict before it was trained."""
