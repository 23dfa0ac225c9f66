"""Probe the diagnosis on variants of issue #4's broken and healthy set-ups.

tests/test_diagnosis.py holds the exact cases of the acceptance; this script varies them the
way a reviewer would (depth, width, batch size, data set, scale, learning rate, optimizer,
seed, epochs) and checks, for each variant:

- a broken set-up's main finding names the expected problem (and, for vanishing gradients,
  points at the early layers), and applying its first fix yields a healthy diagnosis;
- a healthy set-up has nothing above ``info``;
- a "not" variant (leaky ReLU with negative biases, a large feature that *is* normalized)
  is not called the named problem.

One line per variant: expected problem, main finding (severity, origin, layers), cured, and
MISS with the reasons; then the count of misses. A few variants list a second answer that the
measurements support against the expectation (tanh with N(0, 1) weights amplifies the gradient
layer by layer, see TANH_AMPLIFIES): they print DISPUTED and are counted apart. The CLI path
(``gradwise diagnose --json``) is exercised once per problem. About 45 s on one core.

    flock /tmp/bench.lock python benchmarks/diagnosis_variants.py            # everything
    flock /tmp/bench.lock python benchmarks/diagnosis_variants.py --only dead
    python benchmarks/diagnosis_variants.py --quick     # the model variants of one seed

The "models" group trains models written as a user would (a tanh RNN, LSTM, GRU, deep
sigmoid and batch-normalized CNNs, post- and pre-norm Transformers, an embedding-and-table
model with two heads) in a plain loop with the monitor, and applies a first fix by its
``cure`` (orthogonal recurrent weights, an LSTM, pre-norm, ReLU with He initialization...).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Callable

import torch
from click.testing import CliRunner
from torch import nn

from gradwise import TrainConfig
from gradwise.cli import main as cli_main
from gradwise.data import load_table, split_table
from gradwise.diagnosis import GradientMonitor
from gradwise.diagnosis.sabotage import Sabotage, hidden_biases, large_weights_zero_z, scaled_weights
from gradwise.training import fit

EPOCHS = 5  # as in tests/test_diagnosis.py
DATASETS = ("digits", "wine", "breast_cancer", "diabetes")
VANISHING = ("vanishing_gradient", "saturated_activations")
# tanh with N(0, 1) weights on 32-64 units is in the chaotic regime: each layer measurably
# *amplifies* the gradient (gain about 2.1-2.3 per hidden layer), first layer learns fastest.
TANH_AMPLIFIES = ("exploding_gradient", "measured gains > 1 per layer: N(0,1) tanh on wide layers amplifies")
# tanh with weights of 100 saturates every unit so fully that the gradient below is exactly 0.
TANH_ZEROED = ("saturated_activations", "100% saturated tanh: the gradient reaching the lower layers is exactly 0")
HEALTHY = "healthy"


# ---- data ----

_SPLITS: dict[tuple, object] = {}


def splits(name: str, column: int | None = None, scale: float = 1.0):
    """The built-in table ``name`` split with seed 0; optionally feature ``column`` times ``scale``."""
    key = (name, column, scale)
    if key not in _SPLITS:
        table = load_table(f"builtin:{name}")
        if column is not None:
            features = table.features.copy()
            features.iloc[:, column] = features.iloc[:, column].astype(float) * scale
            table.features = features
        _SPLITS[key] = split_table(table, seed=0)
    return _SPLITS[key]


# ---- variants ----


@dataclass
class Variant:
    group: str
    name: str
    expect: tuple[str, ...]  # accepted main problems; (HEALTHY,) for a healthy set-up
    config: TrainConfig
    data: tuple  # arguments of splits()
    sabotage: Callable[[nn.Module], None] | None = None
    early: bool = False  # the main finding's first layer must be in the first half
    forbid: tuple[str, ...] = ()  # problems the diagnosis must not name above info
    every: int = 1  # the monitor's cadence (1 as in the tests and the CLI)
    # A main finding other than expected that the measurements support, and why: counted apart.
    disputed: tuple[str, str] | None = None


def diagnose(config: TrainConfig, data, sabotage=None, every: int = 1):
    monitor = GradientMonitor(every=every)
    callbacks = ([Sabotage(sabotage)] if sabotage else []) + [monitor]
    fit(config, data, callbacks=callbacks)
    return monitor.diagnose(config)


def cure(variant: Variant, diagnosis):
    """Apply the first fix of the main finding (a re-initializing fix replaces the sabotage)."""
    fix = diagnosis.main.fixes[0] if diagnosis.main.fixes else None
    if fix is None or not fix.changes:
        return None, fix
    sabotage = None if {"init", "activation"} & set(fix.changes) else variant.sabotage
    return diagnose(variant.config.replace(**fix.changes), splits(*variant.data), sabotage, variant.every), fix


def vanishing_variants() -> list[Variant]:
    out = []
    for act in ("sigmoid", "tanh"):
        for depth in (8, 10, 15):
            for data in DATASETS:
                config = TrainConfig(layers=depth, activation=act, init="normal", epochs=EPOCHS)
                disputed = TANH_AMPLIFIES if act == "tanh" else None
                out.append(Variant("vanishing", f"{act} L={depth} {data}", VANISHING, config, (data,), early=True, disputed=disputed))
        for hidden in (16, 32):
            for batch in (32, "full"):
                config = TrainConfig(layers=10, hidden=hidden, batch_size=batch, activation=act, init="normal", epochs=EPOCHS)
                disputed = TANH_AMPLIFIES if act == "tanh" else None
                for data in ("digits", "breast_cancer"):
                    out.append(Variant("vanishing", f"{act} L=10 h={hidden} b={batch} {data}", VANISHING, config, (data,), early=True, disputed=disputed))
    sigmoid = TrainConfig(layers=10, activation="sigmoid", init="normal", epochs=EPOCHS)
    for seed in (1, 2, 3):
        out.append(Variant("vanishing", f"sigmoid L=10 seed={seed} digits", VANISHING, sigmoid.replace(seed=seed), ("digits",), early=True))
    for layers in (6, 12, 20):
        out.append(Variant("vanishing", f"sigmoid L={layers} iris", VANISHING, sigmoid.replace(layers=layers), ("iris",), early=True))
    for optimizer, lr in (("gd", 0.1), ("momentum", 0.01), ("rmsprop", 1e-3)):
        out.append(Variant("vanishing", f"sigmoid L=10 {optimizer} lr={lr:g} digits", VANISHING, sigmoid.replace(optimizer=optimizer, lr=lr), ("digits",), early=True))
    out.append(Variant("vanishing", "sigmoid L=10 every=20 20 epochs digits", VANISHING, sigmoid.replace(epochs=20), ("digits",), early=True, every=20))
    out.append(Variant("vanishing", "sigmoid L=10 every=20 20 epochs wine", VANISHING, sigmoid.replace(epochs=20), ("wine",), early=True, every=20))
    return out


def exploding_variants() -> list[Variant]:
    out = []
    for act in ("sigmoid", "tanh", "relu"):
        for scale in (3.0, 10.0, 100.0):
            for depth in (3, 6):
                config = TrainConfig(layers=depth, activation=act, init="normal", epochs=EPOCHS)
                data = "breast_cancer" if depth == 3 else "wine"
                disputed = TANH_ZEROED if act == "tanh" and scale >= 100 else None
                out.append(Variant("exploding", f"{act} w~N(0,{scale:g}²) z=0 L={depth} {data}", ("exploding_gradient",), config, (data,), large_weights_zero_z(scale), disputed=disputed))
    for depth in (3, 6):
        for data in ("wine", "digits", "diabetes"):
            config = TrainConfig(layers=depth, epochs=EPOCHS)
            out.append(Variant("exploding", f"relu 10x he L={depth} {data}", ("exploding_gradient",), config, (data,), scaled_weights(10.0)))
    for data in ("digits", "diabetes"):
        out.append(Variant("exploding", f"relu 10x he L=10 {data}", ("exploding_gradient",), TrainConfig(layers=10, epochs=EPOCHS), (data,), scaled_weights(10.0)))
        out.append(Variant("exploding", f"sigmoid w~N(0,5²) z=0 L=10 {data}", ("exploding_gradient",), TrainConfig(layers=10, activation="sigmoid", init="normal", epochs=EPOCHS), (data,), large_weights_zero_z(5.0)))
    sigmoid = TrainConfig(layers=3, activation="sigmoid", init="normal", epochs=EPOCHS)
    for seed in (1, 2):
        for data in ("breast_cancer", "digits", "diabetes"):
            out.append(Variant("exploding", f"sigmoid w~N(0,5²) z=0 seed={seed} {data}", ("exploding_gradient",), sigmoid.replace(seed=seed), (data,), large_weights_zero_z(5.0)))
    for optimizer, lr in (("gd", 0.01), ("momentum", 0.01)):
        out.append(Variant("exploding", f"sigmoid w~N(0,5²) z=0 {optimizer} lr={lr:g} breast_cancer", ("exploding_gradient",), sigmoid.replace(optimizer=optimizer, lr=lr), ("breast_cancer",), large_weights_zero_z(5.0)))
    out.append(Variant("exploding", "sigmoid w~N(0,5²) z=0 every=20 20 epochs breast_cancer", ("exploding_gradient",), sigmoid.replace(epochs=20), ("breast_cancer",), large_weights_zero_z(5.0), every=20))
    return out


def unscaled_variants() -> list[Variant]:
    out = []
    for data, column in (("wine", 0), ("wine", 7), ("diabetes", 2), ("diabetes", 9), ("breast_cancer", 5), ("digits", 20)):
        for scale in (1e3, 1e4, 1e5):
            config = TrainConfig(layers=3, normalize="none", epochs=EPOCHS)
            out.append(Variant("unscaled", f"col {column} x{scale:g} {data} none", ("unscaled_inputs",), config, (data, column, scale)))
        for normalize in ("standard", "minmax"):
            config = TrainConfig(layers=3, normalize=normalize, epochs=EPOCHS)
            out.append(Variant("unscaled", f"col {column} x1e4 {data} {normalize}", (HEALTHY,), config, (data, column, 1e4), forbid=("unscaled_inputs",)))
    return out


def diverging_variants() -> list[Variant]:
    out = []
    for data in DATASETS:
        for optimizer, lr in (("gd", 5.0), ("gd", 10.0), ("gd", 50.0), ("momentum", 10.0), ("adam", 1.0), ("adam", 10.0)):
            for seed in (0, 1, 2):
                config = TrainConfig(layers=3, optimizer=optimizer, lr=lr, seed=seed, epochs=EPOCHS)
                out.append(Variant("diverging", f"{optimizer} lr={lr:g} seed={seed} {data}", ("diverging_loss",), config, (data,)))
    for data in ("wine", "diabetes"):
        for batch in (32, "full"):
            config = TrainConfig(layers=3, optimizer="gd", lr=10.0, batch_size=batch, epochs=EPOCHS)
            out.append(Variant("diverging", f"gd lr=10 b={batch} {data}", ("diverging_loss",), config, (data,)))
        out.append(Variant("diverging", f"rmsprop lr=1 {data}", ("diverging_loss",), TrainConfig(layers=3, optimizer="rmsprop", lr=1.0, epochs=EPOCHS), (data,)))
        out.append(Variant("diverging", f"gd lr=10 layers=2 {data}", ("diverging_loss",), TrainConfig(optimizer="gd", lr=10.0, epochs=EPOCHS), (data,)))
        out.append(Variant("diverging", f"gd lr=10 every=20 20 epochs {data}", ("diverging_loss",), TrainConfig(layers=3, optimizer="gd", lr=10.0, epochs=20), (data,), every=20))
    out.append(Variant("diverging", "gd lr=10 iris", ("diverging_loss",), TrainConfig(layers=3, optimizer="gd", lr=10.0, epochs=EPOCHS), ("iris",)))
    return out


def dead_variants() -> list[Variant]:
    out = []
    for bias in (-5.0, -10.0, -20.0):
        for data in ("wine", "digits", "breast_cancer", "diabetes"):
            config = TrainConfig(layers=3, epochs=EPOCHS)
            out.append(Variant("dead", f"relu bias={bias:g} {data}", ("dead_units",), config, (data,), hidden_biases(bias)))
        for data in ("wine", "digits"):
            config = TrainConfig(layers=3, activation="leaky_relu", epochs=EPOCHS)
            out.append(Variant("dead", f"leaky_relu bias={bias:g} {data}", (), config, (data,), hidden_biases(bias), forbid=("dead_units",)))
    for layers in (2, 5):
        for data in ("wine", "digits"):
            out.append(Variant("dead", f"relu bias=-10 L={layers} {data}", ("dead_units",), TrainConfig(layers=layers, epochs=EPOCHS), (data,), hidden_biases(-10.0)))
    for optimizer, lr in (("gd", 0.01), ("momentum", 0.01)):
        out.append(Variant("dead", f"relu bias=-10 {optimizer} lr={lr:g} wine", ("dead_units",), TrainConfig(layers=3, optimizer=optimizer, lr=lr, epochs=EPOCHS), ("wine",), hidden_biases(-10.0)))
    out.append(Variant("dead", "relu bias=-10 b=full digits", ("dead_units",), TrainConfig(layers=3, batch_size="full", epochs=EPOCHS), ("digits",), hidden_biases(-10.0)))
    out.append(Variant("dead", "relu bias=-10 every=20 20 epochs digits", ("dead_units",), TrainConfig(layers=3, epochs=20), ("digits",), hidden_biases(-10.0), every=20))
    return out


def healthy_variants() -> list[Variant]:
    out = []
    recipe = TrainConfig(layers=3, activation="relu", init="he", normalize="minmax", optimizer="adam")
    for data in DATASETS:
        for seed in range(5):
            out.append(Variant("healthy", f"relu he adam seed={seed} {data}", (HEALTHY,), recipe.replace(seed=seed, epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"relu he adam 20 epochs {data}", (HEALTHY,), recipe.replace(epochs=20), (data,)))
        for seed in range(5):
            out.append(Variant("healthy", f"relu he momentum lr=1e-2 seed={seed} {data}", (HEALTHY,), recipe.replace(optimizer="momentum", lr=1e-2, seed=seed, epochs=EPOCHS), (data,)))
            out.append(Variant("healthy", f"relu he rmsprop lr=1e-3 seed={seed} {data}", (HEALTHY,), recipe.replace(optimizer="rmsprop", lr=1e-3, seed=seed, epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"tanh xavier adam {data}", (HEALTHY,), recipe.replace(activation="tanh", init="xavier", epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"tanh xavier adam 20 epochs {data}", (HEALTHY,), recipe.replace(activation="tanh", init="xavier", epochs=20), (data,)))
        out.append(Variant("healthy", f"relu he adam b=32 {data}", (HEALTHY,), recipe.replace(batch_size=32, epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"relu he adam b=full {data}", (HEALTHY,), recipe.replace(batch_size="full", epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"relu he adam standard {data}", (HEALTHY,), recipe.replace(normalize="standard", epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"relu he adam L=2 (defaults) {data}", (HEALTHY,), TrainConfig(epochs=EPOCHS), (data,)))
        out.append(Variant("healthy", f"relu he adam every=20 20 epochs {data}", (HEALTHY,), recipe.replace(epochs=20), (data,), every=20))
    out.append(Variant("healthy", "relu he adam iris", (HEALTHY,), recipe.replace(epochs=EPOCHS), ("iris",)))
    for hidden in (16, 32):
        for data in DATASETS:
            for seed in range(3):
                out.append(Variant("healthy", f"relu he adam h={hidden} seed={seed} {data}", (HEALTHY,), recipe.replace(hidden=hidden, seed=seed, epochs=EPOCHS), (data,)))
        for layers in (8, 15):
            for data in ("breast_cancer", "diabetes"):
                out.append(Variant("healthy", f"relu he adam L={layers} h={hidden} b=full {data}", (HEALTHY,), recipe.replace(layers=layers, hidden=hidden, batch_size="full", epochs=EPOCHS), (data,)))
    return out


def seed_variants() -> list[Variant]:
    """The issue's own cases and the healthy recipe over other initialization seeds."""
    out = []
    recipe = TrainConfig(layers=3, activation="relu", init="he", normalize="minmax", optimizer="adam")
    for seed in (1, 2, 3, 4):
        for data in DATASETS:
            out.append(Variant("seeds", f"sigmoid L=10 N(0,1) seed={seed} {data}", VANISHING, TrainConfig(layers=10, activation="sigmoid", init="normal", seed=seed, epochs=EPOCHS), (data,), early=True))
            out.append(Variant("seeds", f"gd lr=10 seed={seed} {data}", ("diverging_loss",), TrainConfig(layers=3, optimizer="gd", lr=10.0, seed=seed, epochs=EPOCHS), (data,)))
            out.append(Variant("seeds", f"relu bias=-10 seed={seed} {data}", ("dead_units",), TrainConfig(layers=3, seed=seed, epochs=EPOCHS), (data,), hidden_biases(-10.0)))
            out.append(Variant("seeds", f"relu 10x he seed={seed} {data}", ("exploding_gradient",), TrainConfig(layers=3, seed=seed, epochs=EPOCHS), (data,), scaled_weights(10.0)))
            out.append(Variant("seeds", f"relu he adam 20 epochs seed={seed} {data}", (HEALTHY,), recipe.replace(seed=seed, epochs=20), (data,)))
            out.append(Variant("seeds", f"tanh xavier adam seed={seed} {data}", (HEALTHY,), recipe.replace(activation="tanh", init="xavier", seed=seed, epochs=EPOCHS), (data,)))
            out.append(Variant("seeds", f"relu he rmsprop seed={seed} {data}", (HEALTHY,), recipe.replace(optimizer="rmsprop", seed=seed, epochs=EPOCHS), (data,)))
        out.append(Variant("seeds", f"sigmoid w~N(0,5²) z=0 seed={seed} breast_cancer", ("exploding_gradient",), TrainConfig(layers=3, activation="sigmoid", init="normal", seed=seed, epochs=EPOCHS), ("breast_cancer",), large_weights_zero_z(5.0)))
        out.append(Variant("seeds", f"wine alcohol x1e4 none seed={seed}", ("unscaled_inputs",), TrainConfig(layers=3, normalize="none", seed=seed, epochs=EPOCHS), ("wine", 0, 1e4)))
    return out


# ---- models beyond the MLP: recurrent, convolutional, attention, embeddings, branches ----


@dataclass
class ModelVariant:
    """A model written as a user would, trained in a plain loop with the monitor attached.

    ``build(cures)`` makes the model with the named cures applied (a Fix's ``cure``); the loop
    applies the cures that live there (clipping, warmup, a rate from a fix's changes)."""

    group: str
    name: str
    expect: tuple[str, ...]
    build: Callable[[frozenset], nn.Module]
    batches: Callable[[frozenset], list]
    lr: float
    steps: int = 30


class _Recurrent(nn.Module):
    def __init__(self, cell: str, recurrent_gain: float | None, cures: frozenset, hidden: int = 16):
        super().__init__()
        if "gated_cell" in cures and cell == "rnn":
            cell, recurrent_gain = "lstm", None  # a new LSTM layer, with PyTorch's initialization
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](4, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        gain = 1.0 if "orthogonal_init" in cures else recurrent_gain
        if gain is not None:
            with torch.no_grad():
                nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=gain)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


class _Transformer(nn.Module):
    def __init__(self, norm_first: bool, layers: int, cures: frozenset, d: int = 32):
        super().__init__()
        self.emb = nn.Embedding(20, d)
        block = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True,
                                           norm_first=norm_first or "pre_norm" in cures)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens)).mean(dim=1))


class _Branched(nn.Module):
    """An embedding front and a table input, joined, then a main and a small auxiliary head."""

    def __init__(self, act: type, depth: int, cures: frozenset):
        super().__init__()
        act = nn.ReLU if {"relu_he", "he_init"} & cures else act
        self.emb, self.table = nn.Embedding(20, 8), nn.Linear(5, 8)
        layers = []
        for _ in range(depth):
            fc = nn.Linear(16, 16)
            if act is nn.ReLU:
                nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
                nn.init.zeros_(fc.bias)
            else:
                nn.init.normal_(fc.weight)
            layers += [fc, act()]
        self.trunk = nn.Sequential(*layers)
        self.main, self.aux = nn.Linear(16, 2), nn.Linear(16, 1)

    def forward(self, x):
        tokens, table = x
        h = self.trunk(torch.cat([self.emb(tokens).mean(dim=1), self.table(table)], dim=1))
        return self.main(h), self.aux(h)


def _cnn(depth: int, act: type, cures: frozenset, batch_norm: bool = False) -> nn.Module:
    act = nn.ReLU if {"relu_he", "he_init"} & cures else act
    batch_norm = batch_norm or "batch_norm" in cures
    mods, channels = [], 1
    for _ in range(depth):
        conv = nn.Conv2d(channels, 6, 3, padding=1)
        if act is nn.ReLU:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        mods += [conv] + ([nn.BatchNorm2d(6)] if batch_norm else []) + [act()]
        channels = 6
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))


def _sequences(length: int, seed: int = 0):
    def make(cures: frozenset) -> list:
        steps = max(2, length // 4) if "shorter_sequence" in cures else length
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(40):
            x = torch.randn(32, steps, 4, generator=g)
            out.append((x, (x[:, 0, 0] + x[:, -1, 0] > 0).long()))
        return out
    return make


def _images(seed: int = 0):
    def make(cures: frozenset) -> list:
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(30):
            x = torch.randn(16, 1, 8, 8, generator=g)
            out.append((x, (x.mean(dim=(1, 2, 3)) > 0).long()))
        return out
    return make


def _tokens(seed: int = 0, table: bool = False):
    def make(cures: frozenset) -> list:
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(30):
            t = torch.randint(0, 20, (32, 10), generator=g)
            y = ((t < 10).sum(dim=1) > 5).long()
            out.append(((t, torch.randn(32, 5, generator=g)) if table else t, y))
        return out
    return make


def model_variants() -> list[ModelVariant]:
    out = []
    for seed in (0, 1):
        out += [
            ModelVariant("rnn", f"tanh RNN, recurrent 0.3 x orthogonal, T=20, seed {seed}", ("vanishing_gradient",),
                         lambda c, s=seed: (torch.manual_seed(s), _Recurrent("rnn", 0.3, c))[1], _sequences(20, seed), 1e-2),
            ModelVariant("rnn", f"tanh RNN, recurrent 3 x orthogonal, T=20, seed {seed}", ("exploding_gradient",),
                         lambda c, s=seed: (torch.manual_seed(s), _Recurrent("rnn", 3.0, c))[1], _sequences(20, seed), 1e-2),
            ModelVariant("rnn", f"LSTM, T=8, seed {seed}", (HEALTHY,),
                         lambda c, s=seed: (torch.manual_seed(s), _Recurrent("lstm", None, c))[1], _sequences(8, seed), 1e-2),
            ModelVariant("rnn", f"GRU, T=8, seed {seed}", (HEALTHY,),
                         lambda c, s=seed: (torch.manual_seed(s), _Recurrent("gru", None, c))[1], _sequences(8, seed), 1e-2),
            ModelVariant("cnn", f"16 sigmoid convolutions, seed {seed}", ("vanishing_gradient", "saturated_activations"),
                         lambda c, s=seed: (torch.manual_seed(s), _cnn(16, nn.Sigmoid, c))[1], _images(seed), 1e-2),
            ModelVariant("cnn", f"4 ReLU convolutions with batch norm, seed {seed}", (HEALTHY,),
                         lambda c, s=seed: (torch.manual_seed(s), _cnn(4, nn.ReLU, c, batch_norm=True))[1], _images(seed), 1e-2),
            ModelVariant("attention", f"4 post-norm blocks, Adam 3e-2, seed {seed}", ("vanishing_gradient", "diverging_loss"),
                         lambda c, s=seed: (torch.manual_seed(s), _Transformer(False, 4, c))[1], _tokens(seed), 3e-2),
            ModelVariant("attention", f"2 pre-norm blocks, Adam 1e-3, seed {seed}", (HEALTHY,),
                         lambda c, s=seed: (torch.manual_seed(s), _Transformer(True, 2, c))[1], _tokens(seed), 1e-3),
            ModelVariant("branched", f"embedding + table, two heads, ReLU, seed {seed}", (HEALTHY,),
                         lambda c, s=seed: (torch.manual_seed(s), _Branched(nn.ReLU, 2, c))[1], _tokens(seed, table=True), 1e-2),
            ModelVariant("branched", f"embedding + table, two heads, 8 sigmoid N(0,1), seed {seed}", VANISHING,
                         lambda c, s=seed: (torch.manual_seed(s), _Branched(nn.Sigmoid, 8, c))[1], _tokens(seed, table=True), 1e-2),
        ]
    return out


def _model_loss(out, y):
    if isinstance(out, tuple):
        return nn.functional.cross_entropy(out[0], y) + 0.1 * out[1].pow(2).mean()
    return nn.functional.cross_entropy(out, y)


def diagnose_model(variant: ModelVariant, cures: frozenset = frozenset(), lr: float | None = None):
    """Train the variant in a plain loop with the monitor (no optimizer passed: it is found)."""
    model = variant.build(cures)
    lr = lr or variant.lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    monitor = GradientMonitor(model, every=2)
    warmup = 10 if "warmup" in cures else 0
    for step, (x, y) in enumerate(variant.batches(cures)[: variant.steps]):
        if warmup:
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup)
        loss = _model_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        monitor.observe(loss)
        if "clip_grad" in cures:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return monitor.diagnose()


def judge_model(variant: ModelVariant) -> tuple[str, str]:
    d = diagnose_model(variant)
    problems, cured = [], "-"
    if variant.expect == (HEALTHY,):
        if not d.healthy:
            problems.append("not healthy")
    else:
        if d.main is None or d.main.problem not in variant.expect:
            problems.append("wrong main")
        if d.main is not None and d.main.fixes:
            fix = d.main.fixes[0]
            after = diagnose_model(variant, frozenset((fix.cure or "").split("+")), fix.changes.get("lr"))
            cured = "yes" if after.healthy else f"no ({describe(after)} after '{fix}')"
            if not after.healthy:
                problems.append("not cured")
        elif d.main is not None:
            problems.append("no applicable fix")
    line = f"{variant.group:9s} {variant.name:52s} expect {'/'.join(variant.expect):42s} got {describe(d):55s} cured {cured}"
    return ("miss", line + f"  MISS: {', '.join(problems)}") if problems else ("ok", line)


GROUPS = {
    "vanishing": vanishing_variants,
    "exploding": exploding_variants,
    "unscaled": unscaled_variants,
    "diverging": diverging_variants,
    "dead": dead_variants,
    "healthy": healthy_variants,
    "seeds": seed_variants,
}


# ---- judging ----


def early_half(diagnosis) -> bool:
    """The main finding's first layer is in the first half of the network."""
    names = [row["layer"] for row in diagnosis.layers]
    first = diagnosis.main.layers[0] if diagnosis.main.layers else None
    return first in names[: max(1, (len(names) + 1) // 2)]


def describe(diagnosis) -> str:
    main = diagnosis.main
    if main is None:
        return "healthy"
    where = f" @{','.join(main.layers[:3])}" if main.layers else ""
    return f"{main.problem} ({main.severity}, {main.origin}){where}"


def judge(variant: Variant) -> tuple[str, str]:
    """("ok" | "disputed" | "miss", the variant's line)."""
    d = diagnose(variant.config, splits(*variant.data), variant.sabotage, variant.every)
    serious = {f.problem for f in d.findings if f.severity != "info"}
    problems, disputed = [], None
    if variant.expect == (HEALTHY,):
        if not d.healthy:
            problems.append("not healthy")
    elif variant.expect and (d.main is None or d.main.problem not in variant.expect):
        if variant.disputed and d.main is not None and d.main.problem == variant.disputed[0]:
            disputed = variant.disputed[1]
        else:
            problems.append("wrong main")
    if variant.forbid and serious & set(variant.forbid):
        problems.append(f"named {sorted(serious & set(variant.forbid))}")
    if variant.early and d.main is not None and not early_half(d):
        problems.append("not early layers")
    cured = "-"
    if variant.expect != (HEALTHY,) and d.main is not None:
        after, fix = cure(variant, d)
        if after is None:
            cured = "no fix"
            problems.append("no applicable fix")
        else:
            cured = "yes" if after.healthy else f"no ({describe(after)} after '{fix}')"
            if not after.healthy:
                problems.append("not cured")
    expected = "/".join(variant.expect) or f"not {'/'.join(variant.forbid)}"
    line = f"{variant.group:9s} {variant.name:42s} expect {expected:42s} got {describe(d):55s} cured {cured}"
    if problems:
        return "miss", line + f"  MISS: {', '.join(problems)}"
    if disputed:
        return "disputed", line + f"  DISPUTED: {disputed}"
    return "ok", line


# ---- the CLI path, once per problem ----

CLI_CASES = [
    ("vanishing", ("vanishing_gradient", "saturated_activations"), ["--data", "builtin:digits", "--layers", "10", "--activation", "sigmoid", "--init", "normal"]),
    ("diverging", ("diverging_loss",), ["--optimizer", "gd", "--lr", "10"]),
    ("diverging", ("diverging_loss",), ["--data", "builtin:diabetes", "--optimizer", "adam", "--lr", "1"]),
    ("unscaled", ("unscaled_inputs",), ["--data", "builtin:wine", "--layers", "3", "--normalize", "none"]),
    ("healthy", (HEALTHY,), ["--data", "builtin:breast_cancer", "--layers", "3"]),
    ("healthy", (HEALTHY,), ["--data", "builtin:diabetes", "--layers", "3"]),
    ("healthy", (HEALTHY,), ["--data", "builtin:digits"]),
    ("healthy", (HEALTHY,), ["--data", "builtin:wine", "--activation", "tanh", "--init", "xavier"]),
]


def judge_cli(group: str, expect: tuple[str, ...], args: list[str]) -> tuple[str, str]:
    result = CliRunner().invoke(cli_main, ["diagnose", *args, "--json"])
    if result.exit_code != 0:
        return "miss", f"cli       {' '.join(args)}  exit {result.exit_code}: {result.output[-200:]}  MISS"
    doc = json.loads(result.output)
    serious = [f for f in doc["findings"] if f["severity"] != "info"]
    got = "healthy" if doc["healthy"] else f"{serious[0]['problem']} ({serious[0]['severity']})"
    ok = doc["healthy"] if expect == (HEALTHY,) else (bool(serious) and serious[0]["problem"] in expect)
    line = f"cli       {' '.join(args):70s} expect {'/'.join(expect):42s} got {got}"
    return ("ok", line) if ok else ("miss", line + "  MISS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=[*GROUPS, "models", "cli"], help="run only these groups")
    parser.add_argument("--quick", action="store_true", help="only the model variants of one seed")
    parser.add_argument("--misses", action="store_true", help="print only the misses")
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = ["models"] if args.quick else args.only or [*GROUPS, "models", "cli"]
    started = time.perf_counter()
    total, misses, disputed = 0, {}, 0
    for group in chosen:
        if group == "cli":
            results = (judge_cli(*case) for case in CLI_CASES)
        elif group == "models":
            variants = model_variants()
            results = (judge_model(v) for v in (variants[: len(variants) // 2] if args.quick else variants))
        else:
            results = (judge(v) for v in GROUPS[group]())
        for verdict, line in results:
            total += 1
            misses[group] = misses.get(group, 0) + (verdict == "miss")
            disputed += verdict == "disputed"
            if verdict != "ok" or not args.misses:
                print(line, flush=True)
    per_group = ", ".join(f"{g} {misses.get(g, 0)}" for g in chosen)
    print(f"misses: {sum(misses.values())} of {total} variants ({per_group}); "
          f"disputed: {disputed}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
