"""The data layer's defaults that the command line shows in its help.

They live apart from the modules that use them, which import pandas and torch, so that
``gradwise tune --help`` can print them without waiting for either.
"""

DEFAULT_SOURCE = "builtin:digits"
MAX_CATEGORIES = 100  # one-hot columns per string column, the "other" slot included
