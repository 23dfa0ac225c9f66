"""Tables in, encoded and normalized tensors out (document section 2)."""

from .categorical import MAX_CATEGORIES
from .encoding import FeatureEncoder, TargetEncoder
from .loading import BUILTINS, DEFAULT_SOURCE, Table, load_table
from .memory import parse_size
from .normalize import Normalizer
from .splitting import DEFAULT_SPLIT, Part, SplitRows, Splits, encode_split, parse_split, split_table
from .validation import MISSING_POLICIES, DataWarning

__all__ = [
    "BUILTINS",
    "DEFAULT_SOURCE",
    "DEFAULT_SPLIT",
    "DataWarning",
    "FeatureEncoder",
    "MAX_CATEGORIES",
    "MISSING_POLICIES",
    "Normalizer",
    "Part",
    "SplitRows",
    "Splits",
    "Table",
    "TargetEncoder",
    "encode_split",
    "load_table",
    "parse_split",
    "parse_size",
    "split_table",
]
