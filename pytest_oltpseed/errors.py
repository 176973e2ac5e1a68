"""Errors that users see as one line and an exit code, never a traceback.

Each class carries the exit code of the contract (DESIGN.md): 1 failure,
2 bad usage or bad input, 3 refused by a guardrail. The CLI and the pytest
plugin both turn these into a single readable line.
"""


class OltpseedError(Exception):
    """Base of every error meant for the user; ``str()`` is the whole message."""

    exit_code = 1


class ConfigError(OltpseedError):
    """A configuration value is invalid: names the variable and what it accepts."""

    exit_code = 2

    def __init__(self, name: str, value: object, allowed: str, source: str = ""):
        where = f" (from {source})" if source else ""
        super().__init__(f"invalid {name}={value!r}{where}: expected {allowed}")
        self.name = name


class UsageError(OltpseedError):
    """The request itself is malformed (bad option combination, unknown name)."""

    exit_code = 2


class GuardrailRefused(OltpseedError):
    """A writing command met a production-like environment without --force."""

    exit_code = 3


class DatabaseUnavailable(OltpseedError):
    """The server could not be reached; the message names host, port and reason."""


class ServerError(OltpseedError):
    """The embedded/ephemeral PostgreSQL could not be set up, started or stopped."""


class Interrupted(OltpseedError):
    """Ctrl-C (SIGINT) stopped a command; the message says what was kept."""

    exit_code = 130


class OltpseedWarning(UserWarning):
    """Something oltpseed did differently from what was asked (an ignored
    ``SEED_<TABLE>`` override); shown in pytest's warnings summary."""
