"""The errors a user can fix. The CLI prints them on one line (``error: ...``) and exits with 2.

Their own module, below everything else, so that the config, the environments, the replay and
the algorithms can all raise them without importing each other.
"""


class UserError(ValueError):
    """A problem the user can fix (bad input, missing file); the CLI prints it on one line."""


class ConfigError(UserError):
    """A user-facing configuration problem; the CLI prints it on one line, no traceback."""


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message, if it has one."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
