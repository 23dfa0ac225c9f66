"""Tables in, encoded and normalized tensors out (document section 2).

Every public name is imported on first use (PEP 562), as in the ``gradwise`` package: a
light module of this package (``memory``, ``defaults``) can be imported without pandas and
torch, which the command line's ``--help`` has no use for.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
