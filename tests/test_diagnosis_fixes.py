"""Fixes that know the run: its optimizer, its learning rate, its kind of model."""

import torch
from torch import nn

from gradwise.diagnosis import GradientMonitor
from gradwise.diagnosis import fixes as F


def _flat_run(optimizer, lr, pass_optimizer, steps=40):
    """A model whose loss cannot fall (the targets are noise): slow convergence."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = optimizer(model.parameters(), lr=lr)
    monitor = GradientMonitor(model, every=5, optimizer=opt if pass_optimizer else None)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g)
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        monitor.observe(loss)
        opt.step()
    return monitor


def test_without_an_optimizer_passed_the_monitor_finds_it_and_its_rate():
    monitor = _flat_run(torch.optim.Adam, 1e-3, pass_optimizer=False)
    context = F.Context.from_monitor(monitor)
    assert monitor.optimizer is not None and context.optimizer == "adam" and context.lr == 1e-3
    texts = [fix.text for finding in monitor.diagnose().findings for fix in finding.fixes]
    assert not any("switch to adam" in t for t in texts)
    assert "lower the learning rate to about 1e-4" in texts  # ten times the rate in use, not a cap above it
    passed = _flat_run(torch.optim.Adam, 3e-2, pass_optimizer=True).diagnose()
    assert not any(fix.text.startswith("raise") for finding in passed.findings for fix in finding.fixes)


def test_the_found_optimizer_measures_update_ratios_right_after_its_step():
    monitor = _flat_run(torch.optim.SGD, 0.1, pass_optimizer=False, steps=6)
    assert all(layer.update_ratio > 0 for layer in monitor.observations[0].layers.values())
    assert len(monitor.optimizer._optimizer_step_post_hooks) == 1  # torch's global hook traded for the optimizer's
    monitor.detach()
    assert monitor._post_hook is None and not monitor.optimizer._optimizer_step_post_hooks


def test_a_monitor_left_behind_does_not_live_on_in_torchs_global_hooks():
    import gc
    import weakref

    monitor = GradientMonitor(nn.Linear(3, 2))
    ref = weakref.ref(monitor)
    del monitor
    gc.collect()
    assert ref() is None


def test_a_fix_never_raises_to_a_lower_rate_nor_switches_to_the_optimizer_in_use():
    fast_adam = F.Context(lr=3e-2, optimizer="adam")
    assert F.raise_lr(fast_adam) is None
    assert not any("raise" in fix.text for fix in F.for_slow(fast_adam))
    assert all("adam" not in fix.changes.get("optimizer", "") for fix in F.for_diverging(F.Context(lr=1e-3, optimizer="adam")))
    assert F.lower_lr(F.Context(lr=1e-3, optimizer="sgd")).changes["lr"] == 1e-4
    unknown = F.lower_lr(F.Context())
    assert "ten times" in unknown.text  # no known rate: no absolute target that could be above it


def test_each_kind_of_model_gets_its_own_cures():
    cures = lambda fixes: [f.cure for f in fixes]
    rnn = F.Context(model="recurrent", vanilla_rnn=True, optimizer="adam", lr=1e-2)
    assert cures(F.for_vanishing(rnn))[:3] == ["gated_cell", "orthogonal_init", "shorter_sequence"]
    assert {"clip_grad", "orthogonal_init", "gated_cell"} <= set(cures(F.for_exploding(rnn)))
    lstm = F.Context(model="recurrent", vanilla_rnn=False, optimizer="adam")
    assert "gated_cell" not in cures(F.for_vanishing(lstm))  # never "switch to" what they use
    post = F.Context(model="transformer", post_norm=True, optimizer="adam", lr=3e-2)
    assert cures(F.for_vanishing(post))[:2] == ["pre_norm", "warmup"]
    assert "pre_norm" not in cures(F.for_vanishing(F.Context(model="transformer", post_norm=False)))
    assert "warmup" in cures(F.for_diverging(post))
    cnn = F.Context(model="cnn", optimizer="adam")
    assert "batch_norm" in "+".join(cures(F.for_vanishing(cnn))) and "relu_he" in cures(F.for_vanishing(cnn))


def test_the_model_kind_is_read_from_the_modules():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    assert F.model_facts(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)) == {
        "model": "transformer", "vanilla_rnn": False, "post_norm": True}
    assert F.model_facts(nn.Sequential(nn.Conv2d(1, 2, 3)))["model"] == "cnn"
    assert F.model_facts(nn.RNN(3, 4)) == {"model": "recurrent", "vanilla_rnn": True, "post_norm": False}
