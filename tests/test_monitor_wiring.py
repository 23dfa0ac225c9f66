"""The monitor reads how a model is wired: gains combine along the gradient's real path.

Table-driven: each model is run once with the monitor, and once more without it, with
autograd asked directly for ||dJ/d input|| and ||dJ/d output||, the independent reference
for the depth gain the monitor reports.
"""

import math

import pytest
import torch
from torch import nn

from gradwise.diagnosis import GradientMonitor
from gradwise.diagnosis.rules import flow_measures


class Series(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.a0, self.a1 = nn.Tanh(), nn.Tanh()

    def forward(self, x):
        return self.fc2(self.a1(self.fc1(self.a0(self.fc0(x)))))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.fc1, self.fc2, self.head = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.a0, self.a1, self.a2 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        h = self.a0(self.fc0(x))
        return self.head(self.a2(h + self.fc2(self.a1(self.fc1(h)))))


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.fc1 = nn.Linear(6, 16), nn.Linear(16, 16)
        self.a0, self.a1 = nn.ReLU(), nn.ReLU()
        self.main, self.aux = nn.Linear(16, 3), nn.Linear(16, 1)

    def forward(self, x):
        h = self.a1(self.fc1(self.a0(self.fc0(x))))
        return self.main(h), self.aux(h)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(3, 8), nn.Conv1d(1, 2, 3, padding=1)
        self.act, self.head = nn.ReLU(), nn.Linear(8 + 6, 3)

    def forward(self, x):
        a, b = x[:, :3], x[:, 3:].unsqueeze(1)  # a table part and a signal part
        return self.head(torch.cat([self.act(self.left(a)), self.right(b).flatten(1)], dim=1))


class SharedActivation(nn.Module):
    def __init__(self, shared=True):
        super().__init__()
        self.fc0, self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.act = nn.Sigmoid()
        self.a0, self.a1 = (self.act, self.act) if shared else (nn.Sigmoid(), nn.Sigmoid())

    def forward(self, x):
        return self.fc2(self.a1(self.fc1(self.a0(self.fc0(x)))))


class TiedTwice(nn.Module):
    """One hidden layer applied twice (weights tied across depth)."""

    def __init__(self):
        super().__init__()
        self.inp, self.hidden, self.out = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.act = nn.Tanh()

    def forward(self, x):
        h = self.act(self.inp(x))
        h = self.act(self.hidden(h))
        h = self.act(self.hidden(h))
        return self.out(h)


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


def _loss(outs):
    return sum(o.pow(2).mean() * (1.0 if i == 0 else 0.1) for i, o in enumerate(outs))


def _observe(model, x):
    monitor = GradientMonitor(model, every=1)
    loss = _loss(_outputs(model(x)))
    loss.backward()
    monitor.observe(loss)
    model.zero_grad()
    return monitor.observations[0]


def _reference_gain(model, x, columns):
    """||dJ/d (the first layer's input)|| / ||dJ/d outputs|| straight from autograd."""
    x = x.clone().requires_grad_(True)
    outs = _outputs(model(x))
    for o in outs:
        o.retain_grad()
    _loss(outs).backward()
    model.zero_grad()
    top = math.sqrt(sum(o.grad.norm().item() ** 2 for o in outs))
    return x.grad[:, columns].norm().item() / top


CASES = {
    # name: (model, expected wiring (use -> uses feeding it), depth, input columns of the checked source)
    "series": (Series, {"fc0": [], "fc1": ["fc0"], "fc2": ["fc1"]}, 3, slice(None)),
    "residual": (Residual, {"fc0": [], "fc1": ["fc0"], "fc2": ["fc1"], "head": ["fc0", "fc2"]}, 4, slice(None)),
    "two heads": (TwoHeads, {"fc0": [], "fc1": ["fc0"], "main": ["fc1"], "aux": ["fc1"]}, 3, slice(None)),
    "two inputs": (TwoInputs, {"left": [], "right": [], "head": ["left", "right"]}, 2, slice(0, 3)),
    "shared activation": (SharedActivation, {"fc0": [], "fc1": ["fc0"], "fc2": ["fc1"]}, 3, slice(None)),
    "tied layer used twice": (TiedTwice, {"inp": [], "hidden": ["inp"], "hidden#2": ["hidden"], "out": ["hidden#2"]}, 4, slice(None)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_wiring_and_depth_gain_follow_the_gradients_path(case):
    build, wiring, depth, columns = CASES[case]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(32, 6)
    obs = _observe(model, x)
    assert {use: sorted(p) for use, p in obs.wiring.items()} == wiring
    flow = flow_measures(obs)
    assert flow is not None and flow["depth"] == depth
    # The first source's path: the monitor's gain against autograd's.
    source = next(iter(wiring))
    path_gain = obs.uses[source].grad_in / math.sqrt(sum(
        obs.uses[u].grad_out ** 2 for u in obs.uses if not any(u in p for p in obs.wiring.values())))
    assert path_gain == pytest.approx(_reference_gain(model, x, columns), rel=1e-4)
    assert all(math.isfinite(obs.uses[u].grad_in) for u in obs.uses if not obs.wiring.get(u))  # every input branch measured


def test_in_series_the_depth_gain_is_the_product_of_the_block_gains():
    torch.manual_seed(0)
    obs = _observe(Series(), torch.randn(32, 6))
    assert flow_measures(obs)["depth_gain"] == pytest.approx(math.prod(l.gain for l in obs.layers.values()), rel=1e-5)


def test_a_shared_activation_module_measures_what_separate_ones_do():
    x = torch.randn(32, 6)
    torch.manual_seed(0)
    shared = _observe(SharedActivation(shared=True), x)
    torch.manual_seed(0)
    separate = _observe(SharedActivation(shared=False), x)
    for name, layer in separate.layers.items():
        for attr in ("gain", "saturation", "act_rms", "grad_act", "grad_norm"):
            assert getattr(shared.layers[name], attr) == pytest.approx(getattr(layer, attr), rel=1e-6, nan_ok=True), (name, attr)
    assert flow_measures(shared)["depth_gain"] == pytest.approx(flow_measures(separate)["depth_gain"], rel=1e-6)


def test_a_small_auxiliary_head_is_not_multiplied_into_the_depth_gain():
    # The aux head alone has a large block gain (its loss weight is small): a product over
    # every layer would call this healthy network exploding.
    torch.manual_seed(0)
    obs = _observe(TwoHeads(), torch.randn(32, 6))
    assert obs.layers["aux"].gain > 3
    assert flow_measures(obs)["depth_gain"] < 3
