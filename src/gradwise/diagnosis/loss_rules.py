"""Rules on the loss curve: divergence, oscillation, slow convergence.

Each compares the loss with its own beginning (the loss at initialization, or the first
stretch of a smoothed curve), so no threshold depends on the data set's loss scale.
"""

from __future__ import annotations

import math
from typing import Sequence

from . import fixes as F
from . import measures as M
from .findings import Finding
from .monitor import GradientMonitor

# Losses this many times the starting loss mean training blew up, even if it recovered.
SPIKE_WARNING = 3.0  # sustained over three steps
SPIKE_SINGLE = 4.0  # in a single step
SPIKE = 10.0  # sustained: critical


def late_update_ratios(mon: GradientMonitor) -> list[float]:
    observations = mon.observations[len(mon.observations) // 2:]
    return [l.update_ratio for o in observations for l in o.layers.values()]


def loss_series(mon: GradientMonitor) -> list[float]:
    """Smoothed loss: epoch means when there are enough epochs, else chunks of steps."""
    if len(mon.epoch_losses) >= 8:
        return list(mon.epoch_losses)
    losses = M.finite(mon.losses)
    return M.chunk_means(losses, 10) if len(losses) >= 10 else losses


def rule_diverging(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    bad = [i for i, v in enumerate(mon.losses) if not math.isfinite(v)]
    if bad or mon.stopped_nonfinite:
        step = bad[0] if bad else None
        return Finding(
            "diverging_loss", "critical", [], {"first_nonfinite_step": step, "last_finite_loss": _last_finite(mon.losses)},
            F.for_diverging(ctx), origin="training",
            explanation="The loss became NaN or inf: steps this large throw the weights out of range.",
        )
    spike = _loss_spike(mon.losses)
    if spike is not None:
        return spike_finding(spike, ctx)
    series = loss_series(mon)
    if len(series) < 3:
        return None
    start, end, best = series[0], series[-1], min(series)
    if not (end > 2 * start and end > 2 * best):
        return None
    return Finding(
        "diverging_loss", "critical" if end > 10 * start else "warning", [],
        {"loss_start": start, "loss_end": end, "loss_best": best}, F.for_diverging(ctx), origin="training",
        explanation=f"The loss grew from {start:.3g} to {end:.3g} (best {best:.3g}): the learning rate overshoots.",
    )


def _loss_spike(losses: Sequence[float]) -> dict[str, float] | None:
    """Evidence of a blow-up: the loss rising far over its value at initialization.

    Either three consecutive steps (their median) reach SPIKE_WARNING times the starting
    loss, or one step reaches SPIKE_SINGLE times it; one unlucky batch of an outlier-heavy
    regression does neither.
    """
    if len(losses) < 2:
        return None
    start = losses[0]  # the loss at initialization, before any update could overshoot
    if not start > 0:
        return None
    window = 3 if len(losses) >= 6 else 1
    rolling = [M.median(losses[i:i + window]) or 0.0 for i in range(1, len(losses) - window + 1)] or [0.0]
    sustained, single = max(rolling), max(losses[1:])
    if sustained < SPIKE_WARNING * start and single < SPIKE_SINGLE * start:
        return None
    return {"loss_start": start, "loss_peak": single, "sustained_peak": sustained,
            "peak_step": losses.index(single), "loss_end": losses[-1]}


def spike_finding(spike: dict[str, float], ctx: F.Context) -> Finding:
    severe = spike["sustained_peak"] >= SPIKE * spike["loss_start"]
    return Finding(
        "diverging_loss", "critical" if severe else "warning", [], spike, F.for_diverging(ctx),
        origin="training",
        explanation=(
            f"The loss jumped from {spike['loss_start']:.3g} at initialization to {spike['loss_peak']:.3g} "
            f"at step {spike['peak_step']}: the learning rate overshoots and throws the weights out of range."
        ),
    )


def rule_oscillating(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    series = loss_series(mon)
    if len(series) < 6:
        return None
    flips = M.sign_change_fraction(series)
    diffs = [abs(b - a) for a, b in zip(series, series[1:])]
    swing = M.median(diffs) or 0.0
    net = abs(series[-1] - series[0])
    # Swings that are large against the starting loss and that cancel out instead of descending.
    if flips >= 0.5 and swing >= 0.1 * abs(series[0]) and sum(diffs) >= 3 * net:
        return Finding(
            "oscillating_loss", "warning", [],
            {"sign_change_share": flips, "median_swing": swing, "loss_start": series[0], "loss_end": series[-1]},
            F.for_oscillating(ctx), origin="training",
            explanation=(
                f"The loss goes up and down (direction flips in {flips:.0%} of intervals, typical swing "
                f"{swing:.3g}) instead of descending: each step overshoots the valley."
            ),
        )
    return None


def rule_slow(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    series = loss_series(mon)
    if len(series) < 5 or len(mon.losses) < 30 or not series[0] > 0:
        return None
    drop = (series[0] - min(series[-2:])) / abs(series[0])
    if drop >= 0.05:
        return None
    updates = late_update_ratios(mon)
    return Finding(
        "slow_convergence", "warning", [],
        {"loss_start": series[0], "loss_end": series[-1], "relative_drop": drop,
         "median_update_ratio": M.median(updates)},
        F.for_slow(ctx), origin="training",
        explanation=f"The loss fell by only {drop:.1%} over {len(mon.losses)} steps.",
    )


def _last_finite(values: Sequence[float]) -> float | None:
    finite = M.finite(values)
    return finite[-1] if finite else None
