"""Rules: each turns the monitor's observations into at most one finding.

Rules use relative measures so they hold across data sets and model sizes: backward gains
multiplied over depth (document section 1), first-layer over best-layer relative gradients,
fractions of saturated or dead units, ratios of feature scales, and the loss curve compared
with its own beginning. Gradient-flow rules look at the first observation, which shows the
set-up (initialization, data, architecture), and at the second half of the run, which shows
what training did to it; a problem present from the start is reported as the set-up's.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from . import fixes as F
from . import measures as M
from .findings import Diagnosis, Finding
from .loss_rules import rule_diverging, rule_oscillating, rule_slow
from .monitor import GradientMonitor, LayerObservation, Observation

# A layer is "saturated" when this share of its sigmoid/tanh units sit where g' < 7% of max.
SATURATED_SHARE = 0.2
# A layer is "dead" when this share of its ReLU units were active for no example, plus
# 1/sqrt(units): at He initialization a quarter to a third of a layer's units are dead by
# chance, spread about 0.45/sqrt(units), so a narrow layer (16 units: 0.75) needs more.
DEAD_SHARE = 0.5
# Units with a negative slope still pass gradient when never positive: they cannot die.
LEAKY = ("LeakyReLU", "PReLU", "RReLU")
# The first layer receiving under this share of the gradient signal of the top is vanishing.
VANISHING_RATIO = 0.01
# Gradient amplified over the depth by more than this is exploding. At initialization a
# healthy network stays within ~1-5; trained healthy networks reach ~1.5-2.5 per layer (up
# to ~65 over ten layers), so what training did must amplify far more to count.
EXPLODING_SETUP = 30.0
EXPLODING_TRAINING = 1000.0
# Through time (recurrent layers): the first step's input gradient under this share of the
# last step's is vanishing. A vanilla tanh RNN at PyTorch's initialization gets ~1e-6 over 20
# steps and cannot learn what depends on the first; LSTMs and GRUs there get ~1e-4 to 1e-2
# over 10-20 steps and do; recurrent weights of 0.3 x orthogonal give ~1e-11.
TIME_VANISHING = 1e-5
# Above this share, and growing by over 20% per step, the gradient explodes through time:
# a loss at every step can add up to one share per step without any amplification.
TIME_EXPLODING = 30.0
TIME_EXPLODING_PER_STEP = 1.2
# A feature this many times the median feature scale (or this large outright) is unscaled.
UNSCALED_RATIO = 100.0
UNSCALED_MAX = 50.0

# Findings present from the first step are ordered cause before symptom; those that appeared
# during training usually follow from the step size, so the loss comes first there.
SETUP_PRIORITY = (
    "unscaled_inputs",
    "exploding_gradient",
    "dead_units",
    "saturated_activations",
    "vanishing_gradient",
    "diverging_loss",
    "oscillating_loss",
    "slow_convergence",
)
TRAINING_PRIORITY = (
    "diverging_loss",
    "exploding_gradient",
    "dead_units",
    "saturated_activations",
    "vanishing_gradient",
    "oscillating_loss",
    "slow_convergence",
    "unscaled_inputs",
)


# ---- windows and per-layer summaries ----


def late(observations: Sequence[Observation]) -> list[Observation]:
    """The second half of the run (at least the last observation)."""
    return list(observations[len(observations) // 2:]) or list(observations[-1:])


def layer_values(observations: Sequence[Observation], name: str, attr: str) -> list[float]:
    return [getattr(o.layers[name], attr) for o in observations if name in o.layers]


def layer_median(observations: Sequence[Observation], name: str, attr: str) -> float | None:
    return M.median(layer_values(observations, name, attr))


def layer_order(observations: Sequence[Observation]) -> list[str]:
    return list(observations[-1].layers) if observations else []


def layer_summary(observations: Sequence[Observation]) -> list[dict[str, Any]]:
    """One row per layer: the median of each measure over all observations."""
    rows = []
    for name in layer_order(observations):
        row: dict[str, Any] = {"layer": name, "activation": observations[-1].layers[name].activation}
        for attr in ("grad_norm", "weight_norm", "gain", "saturation", "dead", "update_ratio", "z_rms", "act_rms"):
            row[attr] = layer_median(observations, name, attr)
        rows.append(row)
    return rows


def relative_gradient(layer: LayerObservation) -> float:
    """||dJ/dW|| / ||W||: how fast a layer can change, comparable across layer sizes."""
    if not (layer.weight_norm > 0):
        return math.nan
    return layer.grad_norm / layer.weight_norm


# ---- gradient flow ----


def flow_measures(obs: Observation) -> dict[str, Any] | None:
    """Gain over the depth and relative-gradient ratio for one observation.

    The gains are read along the path the gradient takes, not over the layers' list:
    ``depth_gain`` is ||dJ/d input of a first layer|| over ||dJ/d output of the last layers
    it feeds||, ``hidden_gain`` the same below the last layers. In a series of layers this is
    exactly the product of their block gains (the network's product of factors |w g'(z)|, each
    layer's input gradient being the output gradient of the one below); for parallel heads,
    several inputs and residual sums it is what the gradient really does, where a product of
    every layer's gain would multiply branches as if they were in series.
    ``grad_ratio`` is the first layer's relative gradient over the largest of any layer.
    """
    names = list(obs.layers)
    paths = [p for p in (_path(obs, source) for source in _sources(obs)) if p is not None]
    if len(names) < 2 or not paths:
        return None
    rel = {n: relative_gradient(obs.layers[n]) for n in names}
    best = max(M.finite(rel.values()), default=math.nan)
    first = _first_dense(obs)
    deepest = max(paths, key=lambda p: p["depth"])
    depth_gain = max(p["depth_gain"] for p in paths)  # the most amplified path: exploding
    hidden = [p["hidden_gain"] for p in paths if p["depth"] > 2 and not math.isnan(p["hidden_gain"])]
    per_layer = max((p["depth_gain"] ** (1 / p["depth"]) if math.isfinite(p["depth_gain"]) else math.inf) for p in paths)
    gains = {n: obs.layers[n].gain for n in names if not math.isnan(obs.layers[n].gain)}
    return {
        "depth_gain": depth_gain,  # inf when a gradient overflowed: exploding
        # The hidden stack alone: a large output-layer gain must not hide vanishing below it.
        "hidden_gain": min(hidden) if hidden else math.nan,  # the weakest path: vanishing
        "gain_per_layer": per_layer,
        "depth": deepest["depth"],
        "grad_ratio": rel[first] / best if first and math.isfinite(rel[first]) and best > 0 and math.isfinite(best) else math.nan,
        "gains": gains,
        "relative_gradients": rel,
    }


def _sources(obs: Observation) -> list[str]:
    """Uses fed by the data (no layer use before them), in forward order."""
    return [u for u in obs.uses if not obs.wiring.get(u)]


def _consumers(obs: Observation) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {u: [] for u in obs.uses}
    for use, producers in obs.wiring.items():
        for p in producers:
            out.setdefault(p, []).append(use)
    return out


def _path(obs: Observation, source: str) -> dict[str, float] | None:
    """From one first layer to the last layers it feeds: gains and the longest chain of uses."""
    consumers = _consumers(obs)
    depth: dict[str, int] = {source: 1}
    stack = [source]
    while stack:  # longest chain, relaxed over a DAG (uses come in forward order, no cycles)
        use = stack.pop()
        for c in consumers.get(use, []):
            if c in obs.uses and depth.get(c, 0) < depth[use] + 1 and depth[use] < len(obs.uses):
                depth[c] = depth[use] + 1
                stack.append(c)
    sinks = [u for u in depth if not consumers.get(u)]
    flows = [obs.uses[u] for u in sinks]
    bottom = obs.uses[source].grad_in
    top = math.sqrt(sum(f.grad_out**2 for f in flows if math.isfinite(f.grad_out)))
    below_top = max((f.grad_in for f in flows if math.isfinite(f.grad_in)), default=math.nan)
    longest = max(depth[u] for u in sinks) if sinks else 1
    if longest < 2 or not (top > 0) or not (bottom >= 0):
        return None
    return {
        "depth": longest,
        "depth_gain": bottom / top,
        "hidden_gain": bottom / below_top if below_top > 0 else math.nan,
    }


def _first_dense(obs: Observation) -> str | None:
    """The first layer with a dense weight gradient: an embedding's gradient touches only the
    rows of the batch's tokens, so its relative gradient is small by construction."""
    for name, layer in obs.layers.items():
        if layer.kind not in ("embedding", "parameter") and math.isfinite(relative_gradient(layer)):
            return name
    return None


def _flow_window(observations: Sequence[Observation]) -> list[tuple[str, dict[str, Any]]]:
    """[("setup", measures at the first observation), ("training", median over the late half)]."""
    windows = []
    first = flow_measures(observations[0])
    if first is not None:
        windows.append(("setup", first))
    lates = [m for m in (flow_measures(o) for o in late(observations)) if m is not None]
    if lates:
        merged = {k: _median_with_inf([m[k] for m in lates]) for k in ("depth_gain", "hidden_gain", "gain_per_layer", "grad_ratio")}
        merged["gains"] = lates[-1]["gains"]
        merged["relative_gradients"] = lates[-1]["relative_gradients"]
        windows.append(("training", merged))
    return windows


def _median_with_inf(values: Sequence[float]) -> float:
    """Median ignoring NaN but keeping inf (an overflowed gain is evidence, not noise)."""
    vals = sorted(v for v in values if not math.isnan(v))
    if not vals:
        return math.nan
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def _time_windows(observations: Sequence[Observation]) -> list[tuple[str, dict[str, tuple[float, int]]]]:
    """Per recurrent layer, (gradient through time, sequence length): at set-up, then the
    median over the late half of the run."""
    def gains(obs: Observation) -> dict[str, tuple[float, int]]:
        return {n: (l.time_gain, l.time_steps) for n, l in obs.layers.items() if l.time_steps > 1 and not math.isnan(l.time_gain)}

    windows = []
    first = gains(observations[0]) if observations else {}
    if first:
        windows.append(("setup", first))
    lates = [gains(o) for o in late(observations)]
    merged = {}
    for name in dict.fromkeys(n for g in lates for n in g):
        values = [g[name] for g in lates if name in g]
        merged[name] = (_median_with_inf([v for v, _ in values]), values[-1][1])
    if merged:
        windows.append(("training", merged))
    return windows


def _per_step(gain: float, steps: int) -> float:
    return gain ** (1 / max(steps - 1, 1)) if math.isfinite(gain) and gain >= 0 else math.inf


def _recurrent_layers(mon: GradientMonitor, entry: str) -> list[str]:
    """Every weight entry of the recurrent module whose measured entry is ``entry``."""
    module = entry.rsplit(".", 1)[0] if "." in entry else entry
    names = layer_order(mon.observations)
    return [n for n in names if n.rsplit(".", 1)[0] == module] or [entry]


def _through_time(mon: GradientMonitor, ctx: F.Context, problem: str) -> Finding | None:
    """Vanishing or exploding gradient through time in a recurrent layer."""
    for origin, gains in _time_windows(mon.observations):
        for entry, (gain, steps) in gains.items():
            per_step = _per_step(gain, steps)
            evidence = {"gradient_through_time": gain, "sequence_length": steps, "gain_per_step": per_step}
            layers = _recurrent_layers(mon, entry)
            if problem == "vanishing_gradient" and gain < TIME_VANISHING:
                return Finding(
                    problem, "critical" if gain < TIME_VANISHING**2 else "warning", layers, evidence, F.for_vanishing(ctx),
                    origin=origin,
                    explanation=(
                        f"The gradient reaching the first of {steps} time steps is {gain:.2g} times the one at the "
                        f"last (about {per_step:.2g} per step: section 1's factors w g'(z), unrolled over time): "
                        "what the output owes to early steps is not learned."
                    ),
                )
            if problem == "exploding_gradient" and gain > TIME_EXPLODING and per_step > TIME_EXPLODING_PER_STEP:
                return Finding(
                    problem, "critical" if gain > 100 * TIME_EXPLODING else "warning", layers, evidence, F.for_exploding(ctx),
                    origin=origin,
                    explanation=(
                        f"The gradient grows by about {per_step:.3g} per time step on its way back through {steps} "
                        f"steps (section 1's factors w g'(z) > 1, unrolled over time): the first step gets "
                        f"{gain:.3g} times the gradient of the last, and the recurrent weights' updates blow up."
                    ),
                )
    return None


def rule_vanishing(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    for origin, m in _flow_window(mon.observations):
        # Both: the signal shrinks over the depth and the first layer really learns slower.
        if m["hidden_gain"] < VANISHING_RATIO and m["grad_ratio"] < 0.1:
            gains = m["gains"]
            names = list(gains)
            # The early layers: those whose relative gradient is under 10% of the best layer's.
            rel = m["relative_gradients"]
            best = max(M.finite(rel.values()))
            layers = [n for n in rel if not rel[n] >= 0.1 * best and n in gains] or names[:1]
            severity = "critical" if m["hidden_gain"] < VANISHING_RATIO**2 else "warning"
            evidence = {
                "hidden_gain": m["hidden_gain"],
                "depth_gain": m["depth_gain"],
                "gain_per_layer": m["gain_per_layer"],
                "first_to_best_relative_gradient": m["grad_ratio"],
                "gains": gains,
            }
            return Finding(
                "vanishing_gradient", severity, layers, evidence, F.for_vanishing(ctx), origin=origin,
                explanation=(
                    f"The gradient reaching the first layer is {m['hidden_gain']:.2g} times the one leaving the "
                    "last hidden layer (the product of the measured factors |w g'(z)| of section 1): factors "
                    "below 1 multiply over depth, so the early layers barely learn."
                ),
            )
    return _through_time(mon, ctx, "vanishing_gradient")


def rule_exploding(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    nonfinite = [o for o in mon.observations if math.isfinite(o.loss) and not all(
        math.isfinite(l.grad_norm) for l in o.layers.values())]
    if nonfinite:
        return Finding(
            "exploding_gradient", "critical", list(nonfinite[0].layers)[:1],
            {"first_nonfinite_gradient_step": nonfinite[0].step}, F.for_exploding(ctx), origin="training",
            explanation="Gradients overflowed to inf/NaN while the loss was still finite.",
        )
    for origin, m in _flow_window(mon.observations) + _early_peak(mon.observations):
        limit = EXPLODING_SETUP if origin == "setup" else EXPLODING_TRAINING
        if m["depth_gain"] > limit and m["gain_per_layer"] > 2:
            gains = m["gains"]
            layers = [n for n, g in gains.items() if g > 2]
            severity = "critical" if m["depth_gain"] > 100 * limit else "warning"
            evidence = {"depth_gain": m["depth_gain"], "gain_per_layer": m["gain_per_layer"], "gains": gains}
            return Finding(
                "exploding_gradient", severity, layers, evidence, F.for_exploding(ctx),
                # Blown up by the first steps: training's doing (the step size, usually), so a
                # diverging loss is named first and the saturation it leaves after.
                origin="training" if origin == "early" else origin,
                explanation=(
                    f"Each layer multiplies the gradient by about {m['gain_per_layer']:.3g} on its way down "
                    f"(section 1's |w g'(z)| > 1), so the first layer gets {m['depth_gain']:.3g} times the "
                    "gradient of the top: updates there are far too large."
                ),
            )
    return _through_time(mon, ctx, "exploding_gradient")


def _early_peak(observations: Sequence[Observation]) -> list[tuple[str, dict[str, Any]]]:
    """The most amplified of the first quarter's observations, as "early": a set-up that blows
    up in its first steps and then saturates shows its explosion only there."""
    early = [m for m in (flow_measures(o) for o in observations[1:max(2, len(observations) // 4)]) if m is not None]
    return [("early", max(early, key=lambda m: m["depth_gain"]))] if early else []


# ---- units ----


def _unit_rule(mon: GradientMonitor, attr: str, share: Callable[[str], float], usable: Callable[[LayerObservation], bool]) -> tuple[str, dict[str, float]] | None:
    """Layers whose ``attr`` share is at least ``share(layer)``, at set-up or late in training."""
    obs = mon.observations
    windows = [("setup", obs[:1]), ("training", late(obs))]
    for origin, window in windows:
        values = {}
        for name in layer_order(window):
            vals = [getattr(o.layers[name], attr) for o in window if name in o.layers and usable(o.layers[name])]
            value = M.median(vals)
            if value is not None:
                values[name] = value
        if any(v >= share(name) for name, v in values.items()):
            return origin, values
    return None


def rule_saturation(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    found = _unit_rule(mon, "saturation", lambda name: SATURATED_SHARE, lambda l: True)
    if found is None:
        return None
    origin, values = found
    layers = [n for n, v in values.items() if v >= SATURATED_SHARE]
    worst = max(values[n] for n in layers)
    return Finding(
        "saturated_activations", "critical" if worst >= 0.6 else "warning", layers,
        {"saturated_share": values, "threshold": {"sigmoid": "|z| > 4", "tanh": "|z| > 2"}},
        F.for_saturation(ctx, origin), origin=origin,
        explanation=(
            f"Up to {worst:.0%} of the sigmoid/tanh units sit where g'(z) is nearly 0 (|z| large), so "
            "every factor w g'(z) through them is tiny and the gradient vanishes (section 1)."
        ),
    )


def dead_share_threshold(mon: GradientMonitor) -> Callable[[str], float]:
    """Per layer, the dead share beyond chance: DEAD_SHARE + 1/sqrt(units)."""
    units = getattr(mon, "units", {})
    return lambda name: min(0.9, DEAD_SHARE + 1 / math.sqrt(units[name])) if units.get(name) else DEAD_SHARE


def rule_dead_units(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    enough = lambda l: l.dead_examples >= M.DEAD_MIN_EXAMPLES or l.dead_examples == 0
    can_die = lambda l: l.activation not in LEAKY
    threshold = dead_share_threshold(mon)
    found = _unit_rule(mon, "dead", threshold, lambda l: l.dead_examples > 0 and enough(l) and can_die(l))
    if found is None:
        return None
    origin, values = found
    layers = [n for n, v in values.items() if v >= threshold(n)]
    worst = max(values[n] for n in layers)
    return Finding(
        "dead_units", "critical" if worst >= 0.9 else "warning", layers,
        {"dead_share": values, "threshold": {n: threshold(n) for n in values}, "min_examples": M.DEAD_MIN_EXAMPLES},
        F.for_dead(ctx, origin), origin=origin,
        explanation=(
            f"Up to {worst:.0%} of the ReLU units output 0 for every example: g'(z) = 0 there, so no "
            "gradient flows through them and they never recover."
        ),
    )


def rule_unscaled_inputs(mon: GradientMonitor, ctx: F.Context) -> Finding | None:
    scales = [o.input_scale for o in mon.observations if o.input_scale][:5]  # the first five measured
    if not scales:
        return None
    largest = M.median([s["max"] for s in scales])
    typical = M.median([s["median"] for s in scales])
    if largest is None:
        return None
    ratio = largest / typical if typical else math.inf
    if ratio < UNSCALED_RATIO and largest < UNSCALED_MAX:
        return None
    critical = ratio >= 10 * UNSCALED_RATIO or largest >= 20 * UNSCALED_MAX
    first = layer_order(mon.observations)[:1]
    return Finding(
        "unscaled_inputs", "critical" if critical else "warning", first,
        {"largest_feature_scale": largest, "median_feature_scale": typical, "ratio": ratio,
         "largest_feature_index": int(scales[-1]["feature"])},
        F.for_unscaled(ctx), origin="setup",
        explanation=(
            f"The first layer receives a feature of typical size {largest:.3g} while the median feature "
            f"is {typical:.3g} ({ratio:.3g} times larger): it dominates the first layer because of its unit "
            "of measurement and pushes units to extreme values (section 2: normalize inputs, usually to [0, 1])."
        ),
    )


# The problem each rule reports (a rule reports at most one finding, always of this problem).
RULE_PROBLEMS = {
    rule_unscaled_inputs: "unscaled_inputs",
    rule_exploding: "exploding_gradient",
    rule_dead_units: "dead_units",
    rule_saturation: "saturated_activations",
    rule_vanishing: "vanishing_gradient",
    rule_diverging: "diverging_loss",
    rule_oscillating: "oscillating_loss",
    rule_slow: "slow_convergence",
}
RULES = tuple(RULE_PROBLEMS)  # in the order they run
LOSS_RULES = (rule_diverging, rule_oscillating, rule_slow)  # need no observed layers


def order_findings(findings: list[Finding]) -> list[Finding]:
    """Problems before info; set-up causes before what training caused; then by priority.

    Causal order beats severity: saturated units (critical) caused by exploding weights
    (warning) are fixed by fixing the weights.
    """

    def key(f: Finding) -> tuple:
        priority = SETUP_PRIORITY if f.origin == "setup" else TRAINING_PRIORITY
        return (f.severity == "info", f.origin != "setup", priority.index(f.problem), -f.severity_rank)

    return sorted(findings, key=key)




def diagnose(mon: GradientMonitor, config: Any = None, problems: Sequence[str] | None = None) -> Diagnosis:
    """Run every rule on the monitor's observations, or only those of ``problems``.

    A diagnosis restricted to ``problems`` skips the per-layer table too: it is the check a
    tuner runs between epochs (is this trial diverging?), where only the findings count.
    """
    if not mon.observations and not mon.losses:
        return Diagnosis([], [], {"observations": 0, "steps": mon._steps})
    ctx = F.Context.from_monitor(mon, config)
    rules = RULES if mon.observations else LOSS_RULES
    if problems is not None:
        rules = tuple(rule for rule in rules if RULE_PROBLEMS[rule] in problems)
    findings = _drop_symptoms(order_findings([f for f in (rule(mon, ctx) for rule in rules) if f is not None]))
    summary = {
        "observations": len(mon.observations),
        "steps": mon._steps,
        "every": mon.every,
        "loss_first": mon.losses[0] if mon.losses else None,
        "loss_last": mon.losses[-1] if mon.losses else None,
        "input_scale": mon.observations[0].input_scale if mon.observations else None,
    }
    if mon.scaler is not None:
        summary["skipped_by_loss_scaler"] = mon.scaler_skipped
    if mon.stride > 1:  # a long run: its observations were thinned to stay bounded
        summary["kept_every_steps"] = mon.every * mon.stride
    layers = layer_summary(mon.observations) if problems is None else []
    return Diagnosis(findings, layers, summary)


def _drop_symptoms(findings: list[Finding]) -> list[Finding]:
    """A slow or oscillating loss is a symptom when a gradient or loss problem already explains it."""
    problems = {f.problem for f in findings if f.severity != "info"}
    explained = problems & {"vanishing_gradient", "exploding_gradient", "dead_units", "saturated_activations",
                            "unscaled_inputs", "diverging_loss"}
    kept = []
    for f in findings:
        if f.problem in ("slow_convergence", "oscillating_loss") and explained:
            f.severity = "info"
            f.explanation += f" (likely a consequence of {sorted(explained)[0]})"
        kept.append(f)
    return order_findings(kept)
