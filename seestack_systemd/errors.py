"""The errors the agent raises on purpose, each with the exit code it stands for.

cli/main.py's one boundary (``exit_code_for``) turns them into a line and that code; the
hooks exit 0 instead unless --strict, since a monitoring failure must not fail a job.
Anything else that reaches the boundary is a bug of ours, said as one.
"""

EX_OK, EX_FAIL, EX_USAGE, EX_TEMPFAIL, EX_CONFIG = 0, 1, 2, 75, 78


class SeestackError(Exception):
    """Base class: the message is one line that says what is wrong and how to fix it."""

    exit_code = EX_FAIL


class ConfigError(SeestackError):
    """A setting is missing or has a bad value."""

    exit_code = EX_CONFIG


class StateError(SeestackError):
    """A state, spool or drop-in path is unsafe or cannot be written."""


class UsageError(SeestackError):
    """The command line is wrong."""

    exit_code = EX_USAGE


class InvalidValue(SeestackError, ValueError):
    """A slug or status the contract does not allow. Also a ValueError: that is what the
    SDK's start_job/finish_job are documented to raise for one."""

    exit_code = EX_USAGE


class Stopped(BaseException):
    """The process was told to stop (SIGTERM) while a heartbeat was being sent: the
    heartbeat stays in the spool. Not an Exception: no ``except Exception`` on the way
    (a transport error handler) may take it for a failed attempt."""
