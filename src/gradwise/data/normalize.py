"""Input and target normalization (document section 2), as a module that travels with the model.

Putting every feature on a similar scale keeps any one feature from dominating through its
unit, keeps units out of the saturated regions of sigmoid and tanh (which is where gradients
vanish), and lets training converge faster. The statistics are buffers of the module, so a
saved model normalizes prediction inputs exactly as it normalized training inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError

METHODS = ("minmax", "standard", "none")
CHUNK_ROWS = 16384


class Normalizer(nn.Module):
    """Per-feature scaling, fitted once or streamed chunk by chunk.

    - ``minmax`` (the document's choice, the default): x' = (x - min) / (max - min), in [0, 1].
    - ``standard``: x' = (x - mean) / std, with the population std (ddof 0).
    - ``none``: x' = x.

    A constant feature (zero range or zero variance) is shifted but not scaled, so it maps
    to 0 and never to NaN or inf. Statistics are kept in float64 and merged across chunks
    with the Chan-Golub-LeVeque update, so ``partial_fit`` over chunks equals ``fit`` at once.

    >>> norm = Normalizer("minmax").fit(np.array([[0.0, 10.0], [2.0, 30.0]]))
    >>> norm(torch.tensor([[1.0, 20.0]]))
    tensor([[0.5000, 0.5000]])
    """

    def __init__(self, method: str = "minmax", n_features: int | None = None) -> None:
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"normalization method must be one of {', '.join(METHODS)}; got {method!r}")
        self.method = method
        self.reset(n_features or 0)

    # -- fitting --------------------------------------------------------------------------
    def reset(self, n_features: int = 0) -> "Normalizer":
        """Forget all statistics (fitted attributes end in an underscore)."""
        zeros = torch.zeros(n_features, dtype=torch.float64)
        self.register_buffer("n_samples_seen_", torch.zeros((), dtype=torch.float64))
        for name in ("data_min_", "data_max_", "mean_", "var_", "offset_"):
            self.register_buffer(name, zeros.clone())
        self.register_buffer("scale_", torch.ones(n_features, dtype=torch.float64))
        return self

    def fit(self, X, weights=None) -> "Normalizer":
        """Reset, then :meth:`partial_fit` on all of ``X``."""
        self.reset(_as_2d_float64(X).shape[1])
        return self.partial_fit(X, weights)

    def partial_fit(self, X, weights=None) -> "Normalizer":
        """Merge the statistics of another chunk of rows into those seen so far.

        ``weights`` (one non-negative number per row) make a row of weight k count as k
        copies of it: weighted mean and variance, and min/max over the rows of positive
        weight, so a weight-0 row does not move the scaling at all.
        """
        batch = _as_2d_float64(X)
        if weights is not None:
            batch, weights = _positive_rows(batch, weights)
        if batch.shape[0] == 0:
            return self
        if not torch.isfinite(batch).all():
            bad = (~torch.isfinite(batch)).nonzero()[0].tolist()
            raise DataError(f"normalizer input holds {int((~torch.isfinite(batch)).sum())} NaN or inf values (first in feature column {bad[1] + 1}, row {bad[0] + 1}); clean the data first")
        if self.n_samples_seen_ == 0:
            self.reset(batch.shape[1])
        elif batch.shape[1] != self.mean_.shape[0]:
            raise DataError(f"expected {self.mean_.shape[0]} features, got {batch.shape[1]}")
        self._merge(batch, weights)
        self._refresh_transform()
        return self

    def _merge(self, batch: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        n_a = self.n_samples_seen_.clone()
        if weights is None:
            n_b = float(batch.shape[0])
            mean_b = batch.mean(dim=0)
            m2_b = ((batch - mean_b) ** 2).sum(dim=0)
        else:
            n_b = float(weights.sum())
            mean_b = (weights[:, None] * batch).sum(dim=0) / n_b
            m2_b = (weights[:, None] * (batch - mean_b) ** 2).sum(dim=0)
        if n_a == 0:
            self.data_min_, self.data_max_ = batch.amin(dim=0), batch.amax(dim=0)
            mean, m2 = mean_b, m2_b
        else:
            self.data_min_ = torch.minimum(self.data_min_, batch.amin(dim=0))
            self.data_max_ = torch.maximum(self.data_max_, batch.amax(dim=0))
            n = n_a + n_b
            delta = mean_b - self.mean_
            mean = self.mean_ + delta * (n_b / n)
            m2 = self.var_ * n_a + m2_b + delta**2 * (n_a * n_b / n)
        self.n_samples_seen_ = n_a + n_b
        self.mean_ = mean
        self.var_ = m2 / self.n_samples_seen_

    def _refresh_transform(self) -> None:
        if self.method == "minmax":
            offset, spread = self.data_min_, self.data_max_ - self.data_min_
        elif self.method == "standard":
            offset, spread = self.mean_, torch.sqrt(self.var_)
        else:
            offset, spread = torch.zeros_like(self.mean_), torch.ones_like(self.mean_)
        # Guard constant features: tiny spreads are treated as no spread at all.
        tiny = spread <= 10 * torch.finfo(torch.float64).eps * torch.maximum(offset.abs(), torch.ones_like(offset))
        self.offset_ = offset.clone()
        self.scale_ = torch.where(tiny, torch.ones_like(spread), 1.0 / torch.where(tiny, torch.ones_like(spread), spread))

    # -- applying -------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self.n_samples_seen_ > 0)

    def forward(self, X):
        """Normalize ``X`` (tensor or NumPy array; returns the same kind)."""
        return self._map(X, lambda x, offset, scale: (x - offset) * scale)

    transform = forward

    def inverse(self, X):
        """Map normalized values back to original units."""
        return self._map(X, lambda x, offset, scale: x / scale + offset)

    def _map(self, X, op):
        if not self.fitted:
            raise RuntimeError("this Normalizer is not fitted yet; call fit(X) first")
        is_numpy = isinstance(X, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(X)) if is_numpy else X
        if not torch.is_floating_point(x):
            x = x.to(torch.float32)
        if x.shape[-1] != self.scale_.shape[0]:
            raise DataError(f"expected {self.scale_.shape[0]} features, got {x.shape[-1]}")
        # Work in float64: a float32 offset such as 1e6 would be off by up to 0.03 before
        # the subtraction even starts. Normalizing is cheap next to training. Rows go in
        # chunks, so the float64 temporaries of a 300,000-row table stay a few MB.
        wide = torch.float64 if x.device.type != "mps" else torch.float32
        offset, scale = self.offset_.to(x.device, wide), self.scale_.to(x.device, wide)
        if x.ndim < 2 or x.shape[0] <= CHUNK_ROWS:
            out = op(x.to(wide), offset, scale).to(x.dtype)
        else:
            out = torch.empty_like(x)
            for start in range(0, x.shape[0], CHUNK_ROWS):
                out[start : start + CHUNK_ROWS] = op(x[start : start + CHUNK_ROWS].to(wide), offset, scale)
        return out.numpy() if is_numpy else out

    def extra_repr(self) -> str:
        return f"method={self.method!r}, n_features={self.scale_.shape[0]}"


def _positive_rows(batch: torch.Tensor, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of positive weight and their weights (float64); weight-0 rows say nothing."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64)).reshape(-1)
    if w.shape[0] != batch.shape[0]:
        raise DataError(f"normalizer got {w.shape[0]} weights for {batch.shape[0]} rows")
    keep = w > 0
    return batch[keep], w[keep]


def _as_2d_float64(X) -> torch.Tensor:
    tensor = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.array(X, dtype=np.float64))
    tensor = tensor.detach().to("cpu", torch.float64)
    if tensor.ndim == 1:
        tensor = tensor[:, None]
    if tensor.ndim != 2:
        raise DataError(f"normalizer expects a 2-D array (rows x features), got shape {tuple(tensor.shape)}")
    return tensor
