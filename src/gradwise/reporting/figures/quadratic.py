"""The optimizers' paths on an elongated 2-D quadratic (after Distill's "Why Momentum
Really Works"): J(θ) = ½ (θ1² + 50 θ2²), condition number 50, every optimizer from the
same start. Plain gradient descent at a rate near its limit 2/50 zig-zags across the
narrow valley, "because the derivative is bigger in the vertical direction"; momentum
averages the zig-zag away, RMSprop and Adam scale each direction by its own gradient size.

The paths are computed with gradwise.optim on one 2-parameter tensor.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...optim import GD, Adam, Momentum, RMSprop
from ..page import Figure
from .style import new_figure

CURVATURE = (1.0, 50.0)  # eigenvalues of the Hessian: condition number 50
START = (-9.0, 1.5)
STEPS = 60
# GD at 0.038: the vertical factor 1 - 0.038 * 50 = -0.9 flips sign every step (zig-zag).
# Momentum at the same rate: its averaged step cancels the flips and keeps the drift.
OPTIMIZERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "GD α=0.038": lambda p: GD(p, lr=0.038),
    "momentum α=0.038 β=0.9": lambda p: Momentum(p, lr=0.038, beta=0.9),
    "RMSprop α=0.3 β=0.9": lambda p: RMSprop(p, lr=0.3, beta=0.9),
    "Adam α=0.5": lambda p: Adam(p, lr=0.5),
}


def quadratic(theta: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.tensor(CURVATURE, dtype=theta.dtype) * theta * theta).sum()


def optimizer_path(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], steps: int = STEPS) -> np.ndarray:
    """The (steps + 1) x 2 points an optimizer visits from START."""
    theta = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    optimizer = make([theta])
    points = [theta.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        quadratic(theta).backward()
        optimizer.step()
        points.append(theta.detach().clone())
    return torch.stack(points).numpy()


def zigzag_share(points: np.ndarray) -> float:
    """Share of consecutive steps that point against each other (Δθ_t · Δθ_t-1 < 0)."""
    steps = np.diff(points, axis=0)
    dots = np.einsum("ij,ij->i", steps[1:], steps[:-1])
    return float(np.mean(dots < 0)) if dots.size else 0.0


def paths() -> dict[str, np.ndarray]:
    return {name: optimizer_path(make) for name, make in OPTIMIZERS.items()}


def paths_figure() -> Figure:
    xs, ys = np.linspace(-10, 2, 121), np.linspace(-2.2, 2.2, 89)
    grid_x, grid_y = np.meshgrid(xs, ys)
    values = 0.5 * (CURVATURE[0] * grid_x ** 2 + CURVATURE[1] * grid_y ** 2)
    figure = new_figure(f"Optimizer paths on J = ½(θ1² + 50 θ2²), {STEPS} steps from the same start", "θ1", "θ2")
    figure.add_contour(x=xs, y=ys, z=np.log10(values + 1e-3).round(3), contours={"coloring": "lines", "showlabels": False},
                       colorscale="Greys", showscale=False, hoverinfo="skip", name="log10 J")
    for name, points in paths().items():
        figure.add_scatter(x=points[:, 0].round(5), y=points[:, 1].round(5), mode="lines+markers", marker={"size": 4},
                           name=f"{name} (zig-zag {zigzag_share(points):.2f})")
    figure.add_scatter(x=[0.0], y=[0.0], mode="markers", marker={"symbol": "star", "size": 16, "color": "#c0392b"}, name="minimum")
    figure.update_layout(height=380)
    return Figure("optimizer_paths", figure, "Contour lines of the loss (log scale), the minimum as a star. Gradient descent zig-zags "
                  "across the valley because the derivative is bigger in the vertical direction; momentum damps the zig-zag; "
                  "RMSprop and Adam divide each direction by its own gradient size, so both directions move at a similar pace.")


def path_table_rows() -> list[list[Any]]:
    rows = []
    for name, points in paths().items():
        end = torch.tensor(points[-1])
        rows.append([name, float(quadratic(end)), zigzag_share(points)])
    return rows
