"""Gradient flow: where the gradient shrinks or grows, layer by layer and step by step.

- a heatmap of log10 ||dJ/dW|| by layer (rows, input at the top) and observed step;
- each layer's backward gain ||dJ/d input|| / ||dJ/d output||, the document's |w·g'(z)|,
  against the line at 1: below it the gradient fades on its way to the input, above it grows;
- each layer's update-to-weight ratio ||ΔW|| / ||W|| against the rule of thumb 1e-3;
- the share of saturated (sigmoid/tanh) and dead (ReLU) units per layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..page import Figure
from .style import new_figure, positive_or_none

MAX_COLUMNS = 1000  # heatmap columns / line points; more steps are averaged into bins
UPDATE_RULE = 1e-3  # Karpathy's rule of thumb for ||ΔW|| / ||W|| per step


def _matrix(rows: list[list[Any]]) -> np.ndarray:
    """Layers x steps as floats; None (NaN in the saved JSON) becomes NaN."""
    return np.array(rows, dtype=float).reshape(len(rows), -1)


def _binned(matrix: np.ndarray, steps: list[int]) -> tuple[np.ndarray, list[int]]:
    """At most MAX_COLUMNS columns: each the mean of the finite values over consecutive
    observed steps (NaN where a bin has none)."""
    width = matrix.shape[1]
    if width <= MAX_COLUMNS:
        return matrix, steps
    starts = np.linspace(0, width, MAX_COLUMNS + 1).astype(int)[:-1]
    finite = np.isfinite(matrix)
    sums = np.add.reduceat(np.where(finite, matrix, 0.0), starts, axis=1)
    counts = np.add.reduceat(finite.astype(float), starts, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), [steps[a] for a in starts]


def _positive(matrix: np.ndarray) -> np.ndarray:
    """NaN (a gap in the line) where a value cannot be drawn on a log axis."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(matrix) & (matrix > 0), matrix, np.nan)


def grad_heatmap(flow: dict[str, Any]) -> Figure:
    grads = _matrix(flow["grad_norm"])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(grads > 0, np.log10(np.where(grads > 0, grads, 1.0)), np.nan)
    logs, steps = _binned(logs, flow["steps"])
    figure = new_figure("log10 gradient norm ||dJ/dW|| by layer and step", "observed step", "layer (input at the top)")
    figure.add_heatmap(z=logs.round(4), x=steps, y=flow["layers"], colorscale="Viridis", colorbar={"title": {"text": "log10"}})
    figure.update_yaxes(autorange="reversed", type="category")
    binned = " (each column the mean of consecutive observed steps)" if len(steps) < len(flow["steps"]) else ""
    return Figure("gradient_heatmap", figure, "Each row is a layer, input at the top, each column an observed step"
                  f"{binned}. A colour that darkens towards the top is a vanishing gradient; one that brightens, an exploding one.")


def _percentiles(values: np.ndarray) -> tuple[float | None, float | None, float | None]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None, None, None
    low, mid, high = np.percentile(finite, [10, 50, 90])
    return float(low), float(mid), float(high)


def gain_figure(flow: dict[str, Any]) -> Figure:
    gains = _matrix(flow["gain"])
    stats = [_percentiles(row) for row in gains]
    mids = [m for _, m, _ in stats]
    figure = new_figure("Backward gain per layer |∂J/∂input| / |∂J/∂output|", "layer (input to output)", "gain (median, 10-90%)", log_y=True)
    figure.add_scatter(
        x=flow["layers"], y=positive_or_none(mids), mode="markers", marker={"size": 11}, name="median gain",
        error_y={"type": "data", "symmetric": False, "array": [(h - m) if m is not None else None for (_, m, h) in stats],
                 "arrayminus": [(m - lo) if m is not None else None for (lo, m, _) in stats]},
    )
    figure.add_hline(y=1.0, line_dash="dash", line_color="#c0392b", annotation_text="gain 1: the gradient passes unchanged")
    figure.update_xaxes(type="category")
    return Figure("backward_gain", figure, "The measured |w·g'(z)| of each layer. Below 1 the gradient shrinks on its way to the input "
                  "(vanishing), above 1 it grows (exploding); a product of such factors over many layers is what vanishes or explodes.")


def update_ratio_figure(flow: dict[str, Any]) -> Figure:
    ratios = _matrix(flow["update_ratio"])
    ratios, steps = _binned(ratios, flow["steps"])
    figure = new_figure("Update-to-weight ratio ||ΔW|| / ||W|| per step", "observed step", "update / weight", log_y=True)
    for name, row in zip(flow["layers"], _positive(ratios)):
        figure.add_scatter(x=steps, y=row, mode="lines", name=f"layer {name}")
    figure.add_hline(y=UPDATE_RULE, line_dash="dash", line_color="#c0392b", annotation_text="1e-3 rule of thumb")
    return Figure("update_ratio", figure, "How far each step moves each layer's weights, relative to their size. Far above 1e-3 the "
                  "learning rate is too high for that layer; far below, it learns slowly.")


def units_figure(flow: dict[str, Any]) -> Figure:
    figure = new_figure("Saturated and dead units per layer", "layer (input to output)", "share of units (median)", yaxis_range=[0, 1])
    for measure, label in (("saturation", "saturated (sigmoid/tanh, g' ≈ 0)"), ("dead", "dead (ReLU, never active)")):
        mids = [_percentiles(row)[1] for row in _matrix(flow[measure])]
        figure.add_bar(x=flow["layers"], y=mids, name=label)
    figure.update_layout(barmode="group")
    figure.update_xaxes(type="category")
    return Figure("units", figure, "A saturated unit passes almost no gradient (g'(z) near 0); a dead ReLU unit passes none. "
                  "Missing bars: the layer has no activation of that kind.")


def flow_figures(flow: dict[str, Any]) -> list[Figure]:
    if not flow.get("layers") or not flow.get("steps"):
        return []
    return [grad_heatmap(flow), gain_figure(flow), update_ratio_figure(flow), units_figure(flow)]
