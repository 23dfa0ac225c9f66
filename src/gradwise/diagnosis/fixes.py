"""Ordered, concrete fixes for each finding, as words and as TrainConfig changes.

The first fix of a finding is the one most likely to cure it on its own; ``changes`` lets
tests and the tuner apply it automatically (``config.replace(**fix.changes)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from .findings import Fix

ADAPTIVE = ("adam", "rmsprop", "adamw", "adagrad", "adadelta", "adamax", "nadam", "radam")
SATURATING = ("sigmoid", "tanh", "hardsigmoid", "hardtanh")
RELU_LIKE = ("relu", "leaky_relu", "relu6", "prelu", "rrelu", "elu", "selu", "gelu")


@dataclass(frozen=True)
class Context:
    """What the fixes need to know about the run; any field may be unknown (None)."""

    lr: float | None = None
    optimizer: str | None = None
    activation: str | None = None
    init: str | None = None
    normalize: str | None = None
    batch_norm: bool | None = None
    layers: int | None = None
    batch_size: Any = None
    model: str = "mlp"  # "recurrent", "transformer", "cnn" or "mlp": whose cures to name
    vanilla_rnn: bool = False  # a plain nn.RNN (no gates)
    post_norm: bool = False  # Transformer blocks that normalize after the residual sum

    @classmethod
    def from_monitor(cls, monitor: Any, config: Any = None) -> "Context":
        facts = model_facts(getattr(monitor, "model", None))
        if config is not None:
            return cls(
                lr=config.lr, optimizer=config.optimizer.lower(), activation=config.activation, init=config.init,
                normalize=config.normalize, batch_norm=config.batch_norm, layers=config.layers,
                batch_size=config.batch_size, **facts,
            )
        opt = monitor.optimizer
        return cls(lr=monitor.current_lr(), optimizer=type(opt).__name__.lower() if opt is not None else None,
                   activation=_observed_activation(monitor), batch_norm=_has(monitor.model, nn.modules.batchnorm._BatchNorm),
                   **facts)

    @property
    def adaptive(self) -> bool:
        name = (self.optimizer or "").removeprefix("torch:")
        return name in ADAPTIVE

    @property
    def saturating(self) -> bool:
        return self.activation is None or self.activation in SATURATING


def model_facts(model: nn.Module | None) -> dict[str, Any]:
    """What kind of network this is, from its modules: recurrent layers, attention, convolutions."""
    if model is None:
        return {}
    if _has(model, nn.RNNBase):
        kind = "recurrent"
    elif _has(model, nn.MultiheadAttention):
        kind = "transformer"
    elif _has(model, nn.modules.conv._ConvNd):
        kind = "cnn"
    else:
        kind = "mlp"
    blocks = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return {
        "model": kind,
        "vanilla_rnn": any(type(m) is nn.RNN for m in model.modules()),
        "post_norm": any(isinstance(m, blocks) and not m.norm_first for m in model.modules()),
    }


def _has(model: nn.Module | None, kind: type | tuple) -> bool:
    return model is not None and any(isinstance(m, kind) for m in model.modules())


def _observed_activation(monitor: Any) -> str | None:
    for obs in monitor.observations[:1]:
        for layer in obs.layers.values():
            if layer.activation:
                return {"leakyrelu": "leaky_relu"}.get(layer.activation.lower(), layer.activation.lower())
    return None


def fmt(x: float) -> str:
    """1e-3 style with one significant digit: 0.001 -> '1e-3', 0.05 -> '5e-2'."""
    exponent = math.floor(math.log10(x))
    mantissa = round(x / 10**exponent)
    if mantissa == 10:
        mantissa, exponent = 1, exponent + 1
    return f"{mantissa}e{exponent}"


def _round(x: float) -> float:
    return float(fmt(x))


def lower_lr(ctx: Context) -> Fix:
    """A learning rate ten times smaller, capped at a sound value for the optimizer family.

    The caps are rates that train normalized tables stably: 1e-3 for Adam-like optimizers,
    1e-2 for plain and momentum gradient descent (3e-2 still blows up the diabetes
    regression for 2 of 8 initialization seeds; 1e-2 trains all four built-in tables on all 8).
    Without a known rate the advice is relative: a cap could be above the rate in use.
    """
    cap = 1e-3 if ctx.adaptive else 1e-2
    if ctx.lr is None or not math.isfinite(ctx.lr) or ctx.lr <= 0:
        return Fix(f"lower the learning rate about ten times (to at most {fmt(cap)})", {"lr": cap}, cure="lower_lr")
    target = _round(min(ctx.lr / 10, cap))
    return Fix(f"lower the learning rate to about {fmt(target)}", {"lr": target}, cure="lower_lr")


def raise_lr(ctx: Context) -> Fix | None:
    """Ten times larger, and at least a rate that usually trains (1e-3 Adam-like, 1e-2 GD);
    None when that would not be above the rate in use."""
    floor, cap = (1e-3, 1e-2) if ctx.adaptive else (1e-2, 1.0)
    if ctx.lr is None or not math.isfinite(ctx.lr) or ctx.lr <= 0:
        return Fix(f"raise the learning rate about ten times (to at most {fmt(cap)})", {"lr": cap}, cure="raise_lr")
    target = _round(min(max(ctx.lr * 10, floor), cap))
    if target <= ctx.lr:
        return None
    return Fix(f"raise the learning rate to about {fmt(target)}", {"lr": target}, cure="raise_lr")


def relu_he(ctx: Context) -> Fix:
    if ctx.activation in RELU_LIKE:
        return Fix(f"use he initialization (weights ~ N(0, 2/fan_in), zero biases) with {ctx.activation}", {"init": "he"}, cure="he_init")
    return Fix("use relu with he initialization", {"activation": "relu", "init": "he"}, cure="relu_he")


CLIP = Fix("clip gradients at norm 1", {"clip_grad": 1.0}, cure="clip_grad")
ADAM = Fix("switch to adam (learning rate 1e-3)", {"optimizer": "adam", "lr": 1e-3}, cure="adam")
BATCH_NORM = Fix("add batch normalization", {"batch_norm": True}, cure="batch_norm")
CONV_BATCH_NORM = Fix("add batch normalization after each convolution (nn.BatchNorm2d)", {"batch_norm": True}, cure="batch_norm")
MINMAX = Fix("normalize inputs with minmax", {"normalize": "minmax"}, cure="normalize")
STANDARD = Fix("or standardize inputs (subtract the mean, divide by the standard deviation)", {"normalize": "standard"}, cure="standardize")
LEAKY = Fix("use leaky_relu so negative units still pass a small gradient", {"activation": "leaky_relu"}, cure="leaky_relu")
# Cures of recurrent networks and Transformers are made in the model's code: no config change.
GATED = Fix("use an LSTM or GRU instead of the vanilla RNN: their gates carry the gradient through time", cure="gated_cell")
ORTHOGONAL = Fix("initialize the recurrent weights orthogonally (nn.init.orthogonal_ on each weight_hh, gain 1)", cure="orthogonal_init")
SHORTER = Fix("train on shorter sequences (truncated backpropagation through time)", cure="shorter_sequence")
PRE_NORM = Fix("use pre-norm blocks (norm_first=True): the residual path then passes the gradient down unscaled", cure="pre_norm")
WARMUP = Fix("warm the learning rate up from about 0 over the first few hundred steps", cure="warmup")


def _dedupe(fixes: list[Fix | None], ctx: Context) -> list[Fix]:
    """Drop empty fixes, ones already in the configuration or the run, and repeats."""
    current = {"batch_norm": ctx.batch_norm, "normalize": ctx.normalize, "optimizer": ctx.optimizer}
    out, seen = [], set()
    for fix in fixes:
        if fix is None or fix.text in seen:
            continue
        if fix.changes and all(current.get(k) == v for k, v in fix.changes.items() if k != "lr") and "lr" not in fix.changes:
            continue
        if "optimizer" in fix.changes and fix.changes["optimizer"] == (ctx.optimizer or "").removeprefix("torch:"):
            continue  # never "switch to" what the run already uses
        if fix.cure == "gated_cell" and not ctx.vanilla_rnn or fix.cure == "pre_norm" and not ctx.post_norm:
            continue
        seen.add(fix.text)
        out.append(fix)
    return out


def fewer_layers(ctx: Context) -> Fix | None:
    if ctx.layers is None or ctx.layers <= 2:
        return None
    return Fix(f"use fewer layers (about {max(2, ctx.layers // 2)})", {"layers": max(2, ctx.layers // 2)}, cure="fewer_layers")


def normalize_if_raw(ctx: Context) -> Fix | None:
    return MINMAX if ctx.normalize == "none" else None


def adam_unless_adaptive(ctx: Context) -> Fix | None:
    return None if ctx.adaptive else ADAM


def for_vanishing(ctx: Context) -> list[Fix]:
    if ctx.model == "recurrent":
        return _dedupe([GATED, ORTHOGONAL, SHORTER, adam_unless_adaptive(ctx)], ctx)
    if ctx.model == "transformer":
        return _dedupe([PRE_NORM, WARMUP, lower_lr(ctx)], ctx)
    if ctx.model == "cnn":
        # A deep plain CNN with ReLU and He initialization still stalls within a few steps;
        # with batch norm after each convolution as well it trains (diagnosis_variants.py).
        both = None if ctx.batch_norm else Fix(
            "use relu with he initialization and add batch normalization after each convolution (nn.BatchNorm2d)",
            {"activation": "relu", "init": "he", "batch_norm": True}, cure="relu_he+batch_norm")
        return _dedupe([both, relu_he(ctx), CONV_BATCH_NORM, adam_unless_adaptive(ctx)], ctx)
    return _dedupe([relu_he(ctx), BATCH_NORM, fewer_layers(ctx), normalize_if_raw(ctx), adam_unless_adaptive(ctx)], ctx)


def for_exploding(ctx: Context) -> list[Fix]:
    if ctx.model == "recurrent":
        # The recurrent weights' scale is the usual set-up cause; clipping bounds what remains.
        return _dedupe([ORTHOGONAL, CLIP, lower_lr(ctx), GATED], ctx)
    if ctx.model == "transformer":
        return _dedupe([WARMUP, CLIP, lower_lr(ctx), PRE_NORM], ctx)
    if ctx.model == "cnn":
        return _dedupe([relu_he(ctx), CONV_BATCH_NORM, CLIP, lower_lr(ctx)], ctx)
    return _dedupe([relu_he(ctx), CLIP, lower_lr(ctx), BATCH_NORM], ctx)


def for_saturation(ctx: Context, origin: str) -> list[Fix]:
    if origin == "training":
        return _dedupe([lower_lr(ctx), BATCH_NORM, relu_he(ctx)], ctx)
    return _dedupe([relu_he(ctx), normalize_if_raw(ctx), Fix("use xavier initialization", {"init": "xavier"}, cure="xavier_init"), BATCH_NORM], ctx)


def for_dead(ctx: Context, origin: str) -> list[Fix]:
    reinit = Fix("re-initialize with he initialization (zero biases)", {"init": "he"}, cure="he_init")
    if origin == "training":
        return _dedupe([lower_lr(ctx), LEAKY, BATCH_NORM, reinit], ctx)
    return _dedupe([reinit, LEAKY, normalize_if_raw(ctx), lower_lr(ctx)], ctx)


def for_unscaled(ctx: Context) -> list[Fix]:
    return [MINMAX, STANDARD]


def for_diverging(ctx: Context) -> list[Fix]:
    if ctx.model == "transformer":
        return _dedupe([lower_lr(ctx), WARMUP, CLIP, PRE_NORM], ctx)
    if ctx.model == "recurrent":
        return _dedupe([lower_lr(ctx), CLIP, adam_unless_adaptive(ctx)], ctx)
    return _dedupe([lower_lr(ctx), CLIP, adam_unless_adaptive(ctx), normalize_if_raw(ctx)], ctx)


def for_oscillating(ctx: Context) -> list[Fix]:
    bigger = None
    if isinstance(ctx.batch_size, int):
        bigger = Fix(f"increase the batch size to {ctx.batch_size * 4}", {"batch_size": ctx.batch_size * 4}, cure="batch_size")
    return _dedupe([lower_lr(ctx), bigger, adam_unless_adaptive(ctx)], ctx)


def for_slow(ctx: Context) -> list[Fix]:
    first = raise_lr(ctx) if ctx.adaptive else ADAM
    second = raise_lr(ctx) if not ctx.adaptive else None
    return _dedupe([normalize_if_raw(ctx), first, second, relu_he(ctx) if ctx.saturating else None], ctx)
