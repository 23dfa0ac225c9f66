"""Save and load a trained model as a bundle directory, safely and atomically.

A bundle is two files: ``model.safetensors`` (weights and normalizer statistics; loading
it never unpickles anything) and ``gradwise.json`` (configuration, encoders, metrics).
Each file is written to a temporary name and renamed into place, the JSON last, so a
crash never leaves a bundle that looks complete but is not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from ..config import TrainConfig
from ..data.encoding import FeatureEncoder, TargetEncoder
from ..data.normalize import Normalizer
from ..errors import GradwiseError
from ..files import atomic_write, atomic_write_json
from .ensemble import MeanOfNets, member_count
from .mlp import build_mlp
from .model import GradwiseModel

WEIGHTS = "model.safetensors"
METADATA = "gradwise.json"
FORMAT = "gradwise-bundle/1"


def save_bundle(model: GradwiseModel, directory: str | Path, config: TrainConfig, metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` to ``directory`` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    description = {**model.describe(), "members": member_count(model.net)}
    meta = {"format": FORMAT, "model": description, "config": config.to_dict(), "metrics": metrics or {}, **(extra or {})}
    atomic_write(directory / WEIGHTS, lambda path: save_file(tensors, str(path)))
    atomic_write_json(directory / METADATA, meta)
    return directory


def load_bundle(directory: str | Path) -> tuple[GradwiseModel, dict[str, Any]]:
    """Rebuild the model saved in ``directory``; returns (model, metadata)."""
    directory = Path(directory)
    meta_path, weights_path = directory / METADATA, directory / WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise GradwiseError(f"'{directory}' is not a gradwise model bundle (needs {METADATA} and {WEIGHTS}); train one with: gradwise train --out {directory}")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise GradwiseError(f"'{meta_path}' has format {meta.get('format')!r}; this gradwise reads {FORMAT}")
        model = _empty_model(meta["model"], TrainConfig.from_dict(meta["config"]))
        model.load_state_dict(load_file(str(weights_path)))
    except GradwiseError:
        raise
    except Exception as error:
        raise GradwiseError(f"model bundle '{directory}' is damaged: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    model.eval()
    return model, meta


def _empty_model(desc: dict[str, Any], config: TrainConfig) -> GradwiseModel:
    def network():
        return build_mlp(desc["n_features"], desc["n_outputs"], config.layers, config.hidden, config.activation, "torch", config.batch_norm, config.dropout)

    members = int(desc.get("members", 1))  # bundles written before ensembles have no count
    net = MeanOfNets([network() for _ in range(members)]) if members > 1 else network()
    target_norm = None
    if desc["target_normalize"] is not None:
        target_norm = Normalizer(desc["target_normalize"], desc["n_outputs"])
    return GradwiseModel(
        net,
        Normalizer(desc["normalize"], desc["n_features"]),
        target_norm,
        FeatureEncoder.from_dict(desc["encoder"]),
        TargetEncoder.from_dict(desc["target"]),
    )

