"""Errors that reach the user as one line (the CLI prints them and exits with code 2)."""


class ComllmError(Exception):
    """A user-facing error whose message names the offending field and value."""
