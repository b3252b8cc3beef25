"""The errors a user can fix. The CLI prints them on one line (``error: ...``) and exits with 2.

Their own module, below everything else, so that the config, the environments, the replay and
the algorithms can all raise them without importing each other.
"""


class UserError(ValueError):
    """A problem the user can fix (bad input, missing file); the CLI prints it on one line."""


class ConfigError(UserError):
    """A user-facing configuration problem; the CLI prints it on one line, no traceback."""
