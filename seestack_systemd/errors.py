"""The errors the agent raises on purpose; cli.py maps each to an exit code."""


class SeestackError(Exception):
    """Base class: the message is one line that says what is wrong and how to fix it."""


class ConfigError(SeestackError):
    """A setting is missing or has a bad value (EX_CONFIG)."""


class StateError(SeestackError):
    """A state, spool or drop-in path is unsafe or cannot be written."""


class UsageError(SeestackError):
    """The command line is wrong (exit 2)."""
