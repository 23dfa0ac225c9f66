"""Save and load a trained model as a bundle directory, safely and atomically.

A bundle is two files: ``model.safetensors`` (weights and normalizer statistics; loading
it never unpickles anything) and ``gradwise.json`` (configuration, encoders, metrics).
Each file is written to a temporary name and renamed into place, the JSON last, so a
crash never leaves a bundle that looks complete but is not. The JSON also records the
SHA-256 of the weights file it was written with, and loading checks it: a save over an
existing bundle that died between its two renames (new weights beside the old JSON, whose
encoders and normalizer may not match them) is refused as damaged instead of predicting
with a mismatched pair.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..config import TrainConfig
from ..data.encoding import FeatureEncoder, TargetEncoder
from ..data.normalize import Normalizer
from ..errors import GradwiseError
from ..files import atomic_write, atomic_write_json
from .bundle_schema import check_metadata, check_size
from .ensemble import MeanOfNets, member_count
from .mlp import build_mlp
from .model import GradwiseModel

WEIGHTS = "model.safetensors"
METADATA = "gradwise.json"
FORMAT = "gradwise-bundle/1"
DIGEST = "weights_sha256"  # gradwise.json's record of the weights file it belongs to


class DivergedError(GradwiseError):
    """Training ended with NaN or inf weights or loss: there is no model to save or use."""


def diverged(model: GradwiseModel, metrics: dict | None = None) -> str | None:
    """Why ``model`` is not a usable model (NaN or inf in its weights or its loss), or None."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"its weights hold NaN or inf values ({name})"
    for split, values in (metrics or {}).items():
        loss = values.get("loss") if isinstance(values, dict) else None
        if isinstance(loss, float) and not math.isfinite(loss):
            return f"its {split} loss is {loss}"
    return None


def save_bundle(model: GradwiseModel, directory: str | Path, config: TrainConfig, metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` to ``directory`` (created if needed); returns the directory.

    A diverged model (see :func:`diverged`) is refused with :class:`DivergedError`: a bundle
    on disk is always one that can predict.
    """
    directory = Path(directory)
    reason = diverged(model, metrics)
    if reason:
        raise DivergedError(f"training diverged ({reason}); no model was saved to {directory}; lower the learning rate (--lr) or clip gradients (--clip-grad 1)")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    description = {**model.describe(), "members": member_count(model.net)}
    meta = {"format": FORMAT, "model": description, "config": config.to_dict(), "metrics": metrics or {}, **(extra or {})}
    digest = {}

    def write_weights(path: str) -> None:
        save_file(tensors, path)
        digest[DIGEST] = file_digest(path)

    atomic_write(directory / WEIGHTS, write_weights)
    atomic_write_json(directory / METADATA, {**meta, **digest})
    return directory


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces (a bundle's weights can be hundreds of MB)."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            sha.update(piece)
    return sha.hexdigest()


def _check_digest(meta: dict[str, Any], weights_path: Path, directory: Path) -> None:
    """The weights must be the file this gradwise.json was written with (bundles saved
    before the digest was recorded have none to check)."""
    expected = meta.get(DIGEST)
    if expected is not None and expected != file_digest(weights_path):
        raise GradwiseError(f"model bundle '{directory}' is damaged: {WEIGHTS} is not the weights file {METADATA} was saved with (an interrupted save?); save or train it again")


def load_bundle(directory: str | Path) -> tuple[GradwiseModel, dict[str, Any]]:
    """Rebuild the model saved in ``directory``; returns (model, metadata)."""
    directory = Path(directory)
    meta_path, weights_path = directory / METADATA, directory / WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise GradwiseError(f"'{directory}' is not a gradwise model bundle (needs {METADATA} and {WEIGHTS}); train one with: gradwise train --out {directory}")
    try:
        meta = json.loads(meta_path.read_text())
        if isinstance(meta, dict) and meta.get("format") != FORMAT:
            raise GradwiseError(f"'{meta_path}' has format {meta.get('format')!r}; this gradwise reads {FORMAT}")
        check_metadata(meta, str(directory))
        _check_digest(meta, weights_path, directory)
        model = _load_model(meta, load_file(str(weights_path)), str(directory))
    except GradwiseError:
        raise
    except Exception as error:
        raise GradwiseError(f"model bundle '{directory}' is damaged: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    reason = diverged(model)
    if reason:
        raise DivergedError(f"model bundle '{directory}' is diverged ({reason}) and cannot predict; train it again with a lower learning rate (--lr)")
    model.eval()
    return model, meta


def _load_model(meta: dict[str, Any], tensors: dict[str, torch.Tensor], where: str) -> GradwiseModel:
    try:
        config = TrainConfig.from_dict(meta["config"])
        check_size(meta["model"], config.layers, config.hidden, sum(t.numel() for t in tensors.values()), where)
        model = _empty_model(meta["model"], config)
    except GradwiseError as error:
        message = str(error)
        raise GradwiseError(message if message.startswith("model bundle") else f"model bundle '{where}' is damaged: {message}") from None
    model.load_state_dict(tensors)
    if model.encoder.n_features != meta["model"]["n_features"]:
        raise GradwiseError(f"model bundle '{where}' is damaged: its encoder makes {model.encoder.n_features} features but model.n_features is {meta['model']['n_features']}")
    return model


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

