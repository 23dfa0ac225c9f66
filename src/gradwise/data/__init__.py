"""Tables in, encoded and normalized tensors out (document section 2)."""

from .encoding import FeatureEncoder, TargetEncoder
from .loading import BUILTINS, DEFAULT_SOURCE, Table, load_table
from .normalize import Normalizer
from .splitting import DEFAULT_SPLIT, Part, Splits, parse_split, split_table

__all__ = [
    "BUILTINS",
    "DEFAULT_SOURCE",
    "DEFAULT_SPLIT",
    "FeatureEncoder",
    "Normalizer",
    "Part",
    "Splits",
    "Table",
    "TargetEncoder",
    "load_table",
    "parse_split",
    "split_table",
]
