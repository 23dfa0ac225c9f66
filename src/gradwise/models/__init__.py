"""Networks and the saved-model format."""

from .bundle import load_bundle, save_bundle
from .ensemble import MeanOfNets
from .mlp import ACTIVATIONS, build_mlp, initialize
from .model import GradwiseModel

__all__ = ["ACTIVATIONS", "GradwiseModel", "MeanOfNets", "build_mlp", "initialize", "load_bundle", "save_bundle"]
