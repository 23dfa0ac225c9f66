"""Errors a user can act on.

Anything raised as :class:`GradwiseError` is a problem with the user's input or arguments.
The command line prints its message as one line on stderr and exits with code 2; the
Python API lets it propagate. Messages state the rule, what was received, and the fix.
"""


class GradwiseError(ValueError):
    """A problem with user input: bad data, a bad argument, a missing file."""


class DataError(GradwiseError):
    """The table cannot be used as given (format, columns, values)."""


class ConfigError(GradwiseError):
    """A training, tuning or optimizer argument is out of its valid range."""
