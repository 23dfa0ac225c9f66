"""Tables in, encoded and normalized tensors out (document section 2).

Every public name is imported on first use (PEP 562), as in the ``gradwise`` package: a
light module of this package (``memory``, ``defaults``) can be imported without pandas and
torch, which the command line's ``--help`` has no use for.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the submodule that defines it
_HOMES = {
    "DEFAULT_SOURCE": ".defaults", "MAX_CATEGORIES": ".defaults",
    "FeatureEncoder": ".encoding", "TargetEncoder": ".encoding",
    "BUILTINS": ".loading", "Table": ".loading", "load_table": ".loading",
    "parse_size": ".memory",
    "Normalizer": ".normalize",
    **dict.fromkeys(("DEFAULT_SPLIT", "Part", "SplitRows", "Splits", "encode_split", "parse_split", "split_table"), ".splitting"),
    "MISSING_POLICIES": ".validation", "DataWarning": ".validation",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
