"""The model a user trains, saves and predicts with: normalizer + network + target decoding.

Keeping the input normalizer (and, for regression, the target normalizer) inside the model
means training and prediction can never disagree about scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.encoding import FeatureEncoder, TargetEncoder
from ..data.normalize import Normalizer


class GradwiseModel(nn.Module):
    """``forward`` maps raw (encoded) features to network outputs in training units.

    For classification the outputs are logits; for regression they are normalized targets,
    and :meth:`predict` maps them back to the original units.
    """

    def __init__(
        self,
        net: nn.Module,
        input_normalizer: Normalizer,
        target_normalizer: Normalizer | None,
        encoder: FeatureEncoder,
        target: TargetEncoder,
    ) -> None:
        super().__init__()
        self.input_normalizer = input_normalizer
        self.net = net
        self.target_normalizer = target_normalizer
        self.encoder = encoder  # plain data, saved as JSON
        self.target = target

    @property
    def task(self) -> str:
        return self.target.task

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_normalizer(X))

    @torch.no_grad()
    def predict_array(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class codes, or regression values in original units, for encoded features."""
        was_training = self.training
        self.eval()
        device = next(self.net.parameters()).device
        out = self(torch.as_tensor(X, dtype=torch.float32, device=device)).cpu()
        self.train(was_training)
        if self.task == "classification":
            return out.argmax(dim=1).numpy()
        return self.target_normalizer.inverse(out).numpy()

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        self.eval()
        device = next(self.net.parameters()).device
        return torch.softmax(self(torch.as_tensor(X, dtype=torch.float32, device=device)), dim=1).cpu().numpy()

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predictions for a raw feature table: labels, or targets in original units."""
        encoded = self.encoder.transform(features)
        if self.task == "classification":
            labels = self.target.inverse(self.predict_array(encoded))
            frame = pd.DataFrame({self.target.names[0]: labels})
            proba = self.predict_proba(encoded)
            for i, label in enumerate(self.target.classes):
                frame[f"p({label})"] = proba[:, i]
            return frame
        values = self.predict_array(encoded)
        return pd.DataFrame(values, columns=self.target.names)

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n_features": int(self.input_normalizer.scale_.shape[0]),
            "n_outputs": len(self.target.classes) if self.task == "classification" else len(self.target.names),
            "normalize": self.input_normalizer.method,
            "target_normalize": self.target_normalizer.method if self.target_normalizer is not None else None,
            "encoder": self.encoder.to_dict(),
            "target": self.target.to_dict(),
        }
