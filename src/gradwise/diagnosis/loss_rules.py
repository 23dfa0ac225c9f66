"""Rules on the loss curve: divergence, oscillation, slow convergence.

Each compares the loss with its own beginning (the loss at initialization, or the first
stretch of a smoothed curve), so no threshold depends on the data set's loss scale. A step
far too large that leaves the loss bouncing near its start is told by the update-to-weight
ratio instead, which is scale-free too.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from . import fixes as F
from . import measures as M
from .findings import Finding
from .monitor import GradientMonitor

# Losses this many times the starting loss mean training blew up, even if it recovered.
SPIKE_WARNING = 3.0  # sustained over three steps
# In a single step. RMSprop's first steps (before its average of g² fills) can briefly
# reach ~5.5x a lucky low starting loss of a regression and recover; a too-large step that
# does not spike this far shows in the update ratio instead.
SPIKE_SINGLE = 8.0
SPIKE = 10.0  # sustained: critical
# Steps that change the weights by this share of their norm, over several steps, are far too
# large: healthy runs of the built-in tables stay under ~0.015 (Adam 1e-3 to 3e-3, GD 0.1),
# aggressive ones that still train under ~0.05 (GD 0.3, Adam 1e-2); momentum with a rate of
# 10 that leaves a classifier at chance reaches 0.1-0.8.
UPDATE_TOO_LARGE = 0.1


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
    start, end, best = (series[0], series[-1], min(series)) if len(series) >= 3 else (math.nan,) * 3
    if not (end > 2 * start and end > 2 * best):
        return _too_large_updates(mon, ctx)
    return Finding(
        "diverging_loss", "critical" if end > 10 * start else "warning", [],
        {"loss_start": start, "loss_end": end, "loss_best": best}, F.for_diverging(ctx), origin="training",
        explanation=f"The loss grew from {start:.3g} to {end:.3g} (best {best:.3g}): the learning rate overshoots.",
    )


def peak_update_ratio(mon: GradientMonitor, window: int = 5) -> float | None:
    """The median layer's ||ΔW|| / ||W||, at its highest over ``window`` consecutive observed steps.

    A window, not the single largest step: a first step of RMSprop may be large alone. Not
    the whole run: steps that kill every ReLU unit leave later updates near zero.
    """
    per_step = [M.median(M.finite(l.update_ratio for l in o.layers.values())) for o in mon.observations]
    ratios = [r for r in per_step if r is not None]
    if not ratios:
        return None
    window = min(window, len(ratios))
    return max(M.median(ratios[i:i + window]) for i in range(len(ratios) - window + 1))


def _too_large_updates(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    """Steps so large that the loss cannot settle, though it neither blew up nor grew.

    A far too large step can leave the loss bouncing near its start (a classifier thrown to
    chance level): the loss curve alone then looks flat, the update ratio does not.
    """
    ratio = peak_update_ratio(mon)
    if ratio is None or ratio < UPDATE_TOO_LARGE:
        return None
    losses = M.finite(mon.losses)
    return Finding(
        "diverging_loss", "critical" if ratio >= 10 * UPDATE_TOO_LARGE else "warning", [],
        {"peak_update_ratio": ratio, "healthy_update_ratio": "< 0.01", "loss_start": losses[0] if losses else None,
         "loss_end": losses[-1] if losses else None, "loss_peak": max(losses) if losses else None},
        F.for_diverging(ctx), origin="training",
        explanation=(
            f"Each step changes the weights by about {ratio:.0%} of their size (healthy training: under 1%): "
            "the learning rate is so large that every step overshoots and the loss cannot settle."
        ),
    )


def _loss_spike(losses: Sequence[float]) -> dict[str, float] | None:
    """Evidence of a blow-up: the loss rising far over its value at initialization.

    Either three consecutive steps (their median) reach SPIKE_WARNING times the starting
    loss, or one step reaches SPIKE_SINGLE times it; one unlucky batch of an outlier-heavy
    regression does neither.
    """
    if len(losses) < 2:
        return None
    values = np.asarray(losses, dtype=np.float64)  # all finite: rule_diverging checked first
    start = float(values[0])  # the loss at initialization, before any update could overshoot
    if not start > 0:
        return None
    rest = values[1:]
    # Vectorised: this runs at each of a trial's fatal-finding checks, over every step so far.
    sustained = float((_medians_of_three(rest) if len(values) >= 6 else rest).max())
    single = float(rest.max())
    if sustained < SPIKE_WARNING * start and single < SPIKE_SINGLE * start:
        return None
    return {"loss_start": start, "loss_peak": single, "sustained_peak": sustained,
            "peak_step": int(np.flatnonzero(values == single)[0]), "loss_end": float(values[-1])}


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
    epochs = mon.epoch_losses
    if len(epochs) >= 3 and all(b < a for a, b in zip(epochs, epochs[1:])):
        return None  # descending epoch after epoch: the swings are mini-batch noise, not overshooting
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


def _medians_of_three(x: np.ndarray) -> np.ndarray:
    """The median of each three consecutive values (exact: min and max only)."""
    a, b, c = x[:-2], x[1:-1], x[2:]
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _last_finite(values: Sequence[float]) -> float | None:
    finite = M.finite(values)
    return finite[-1] if finite else None
