"""GradientMonitor: what it measures, against quantities computed independently here."""

import math

import pytest
import torch
from torch import nn

from gradwise.diagnosis import GradientMonitor
from gradwise.diagnosis.chain import ACTIVATIONS


def _mlp(seed=0, act=nn.ReLU, widths=(5, 16, 16, 3)):
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            mods.append(act())
    return nn.Sequential(*mods)


def _batches(n=12, size=32, seed=1, features=5, classes=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, features, generator=g), torch.randint(0, classes, (size,), generator=g)) for _ in range(n)]


def _train(model, optimizer, batches, monitor=None):
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if monitor is not None:
            monitor.observe(loss)
        optimizer.step()


def test_monitor_changes_neither_the_model_nor_the_training():
    batches = _batches()
    plain, watched = _mlp(), _mlp()
    _train(plain, torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9), batches)
    opt = torch.optim.SGD(watched.parameters(), lr=0.1, momentum=0.9)
    _train(watched, opt, batches, GradientMonitor(watched, every=1))
    for p, q in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(p, q)


def test_hooks_exist_only_for_on_cadence_steps_and_detach_removes_all():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, every=4, optimizer=opt)
    hooked = lambda: sum(len(m._forward_hooks) for m in model.modules())
    assert hooked() > 0  # step 0 is on cadence
    loss_fn = nn.CrossEntropyLoss()
    armed = []
    for step, (x, y) in enumerate(_batches(8)):
        armed.append(hooked() > 0)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        monitor.observe(loss)
        opt.step()
    assert armed == [s % 4 == 0 for s in range(8)]
    monitor.detach()
    assert hooked() == 0 and not opt._optimizer_step_post_hooks


def test_observes_every_nth_step_and_keeps_every_loss():
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    monitor = GradientMonitor(model, every=5)
    batches = _batches(12)
    losses = []
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        monitor.observe(loss)
        opt.step()
    monitor.flush()
    assert [o.step for o in monitor.observations] == [0, 5, 10]
    assert monitor.losses == pytest.approx(losses)


def test_a_long_run_keeps_a_bounded_evenly_spread_set_of_observations(monkeypatch):
    # A 10M-step run observed every 20 steps would keep 500,000 observations (about 2 GB); at the cap
    # every other one goes and the spacing doubles, so they stay spread over the whole run.
    from gradwise.diagnosis import monitor as monitor_module

    monkeypatch.setattr(monitor_module, "MAX_OBSERVATIONS", 16)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = GradientMonitor(model, every=3, optimizer=opt)
    _train(model, opt, _batches(300, size=8), monitor)
    monitor.flush()
    steps = [o.step for o in monitor.observations]
    assert 8 <= len(steps) < 16 and monitor.stride >= 4 and steps[0] == 0  # 100 observed steps
    assert {b - a for a, b in zip(steps, steps[1:])} == {3 * monitor.stride}  # evenly spaced
    assert steps[-1] > 300 - 2 * 3 * monitor.stride  # reaching the run's end
    assert len(monitor.losses) == 300  # the loss of every step is still kept
    assert monitor.diagnose().summary["kept_every_steps"] == 3 * monitor.stride
    from gradwise.reporting.document import flow_part

    flow = flow_part(monitor)  # the page says one observed step in this many was kept
    assert flow["steps"] == steps and flow["kept_every"] == monitor.stride


def test_thinning_keeps_the_first_non_finite_gradient_as_evidence(monkeypatch):
    from gradwise.diagnosis import monitor as monitor_module

    monkeypatch.setattr(monitor_module, "MAX_OBSERVATIONS", 16)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = GradientMonitor(model, every=1, optimizer=opt)
    batches = _batches(200, size=8)
    _train(model, opt, batches[:101], monitor)
    model[0].weight.register_hook(lambda g: torch.full_like(g, math.inf) if monitor._steps == 101 else g)
    for x, y in batches[101:]:  # no optimizer step from here on: the inf of step 101 never lands
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        monitor.observe(loss)
    kept = [o.step for o in monitor.observations if not math.isfinite(o.layers["0"].grad_norm)]
    assert kept == [101] and len(monitor.observations) < 16 and 101 % monitor.stride != 0
    finding = next(f for f in monitor.diagnose().findings if f.problem == "exploding_gradient")
    assert finding.evidence["first_nonfinite_gradient_step"] == 101


def test_gradient_and_weight_norms_and_update_ratio_match_manual_values():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = GradientMonitor(model, every=1)
    (x, y), = _batches(1)
    loss = nn.CrossEntropyLoss()(model(x), y)
    opt.zero_grad()
    loss.backward()
    expected_grad = {n: torch.linalg.norm(m.weight.grad).item() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    before = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    monitor.observe(loss)
    opt.step()
    monitor.flush()
    obs = monitor.observations[0]
    for name, layer in obs.layers.items():
        assert layer.grad_norm == pytest.approx(expected_grad[name], rel=1e-5)
        w0 = before[name]
        w1 = dict(model.named_modules())[name].weight.detach()
        assert layer.weight_norm == pytest.approx(torch.linalg.norm(w0).item(), rel=1e-5)
        assert layer.update_ratio == pytest.approx((torch.linalg.norm(w1 - w0) / torch.linalg.norm(w0)).item(), rel=1e-4)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "elu", "gelu"])
def test_block_gain_of_a_one_unit_chain_is_the_documents_factor_w_times_g_prime(activation):
    # Section 1: for one neuron per layer, ||dJ/da_(l-1)|| / ||dJ/da_l|| = |w_l g'(z_l)| exactly.
    torch.manual_seed(0)
    act = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}[activation]
    layers = []
    for _ in range(4):
        layers += [nn.Linear(1, 1), act()]
    model = nn.Sequential(*layers).double()
    monitor = GradientMonitor(model, every=1)
    a0 = torch.tensor([[0.7]], dtype=torch.float64)
    loss = 0.5 * (model(a0) - 1.0).pow(2).sum()
    loss.backward()
    monitor.observe(loss)
    obs = monitor.observations[0]
    g_prime = ACTIVATIONS[activation][1]
    a = 0.7
    for name, module in [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]:
        w, b = module.weight.item(), module.bias.item()
        z = w * a + b
        assert obs.layers[name].gain == pytest.approx(abs(w * g_prime(z)), rel=1e-5)
        a = ACTIVATIONS[activation][0](z)


def test_saturation_and_dead_fractions_match_direct_counts():
    torch.manual_seed(0)
    sig = nn.Sequential(nn.Linear(4, 50), nn.Sigmoid(), nn.Linear(50, 1))
    with torch.no_grad():
        sig[0].weight.mul_(6)
    x = torch.randn(80, 4)
    monitor = GradientMonitor(sig, every=1)
    loss = sig(x).pow(2).mean()
    loss.backward()
    monitor.observe(loss)
    z = sig[0](x)
    assert monitor.observations[0].layers["0"].saturation == pytest.approx((z.abs() > 4).float().mean().item())

    relu = nn.Sequential(nn.Linear(4, 50), nn.ReLU(inplace=True), nn.Linear(50, 1))
    with torch.no_grad():
        relu[0].bias[:20] = -100.0  # 20 of 50 units can never fire
    monitor = GradientMonitor(relu, every=1)
    loss = relu(x).pow(2).mean()
    loss.backward()
    monitor.observe(loss)
    dead = 1 - (relu[0](x) > 0).any(dim=0).float().mean().item()
    assert dead >= 0.39
    assert monitor.observations[0].layers["0"].dead == pytest.approx(dead)


def test_input_scale_is_what_the_first_layer_receives():
    model = _mlp()
    x = torch.randn(64, 5)
    x[:, 2] = x[:, 2] * 1e4
    monitor = GradientMonitor(model, every=1)
    loss = model(x).sum()
    loss.backward()
    monitor.observe(loss)
    scale = monitor.observations[0].input_scale
    assert scale["feature"] == 2
    assert scale["max"] == pytest.approx(x[:, 2].pow(2).mean().sqrt().item(), rel=1e-5)
    assert scale["max"] / scale["median"] > 1e3


def test_evaluation_passes_without_grad_are_not_recorded():
    model = _mlp()
    monitor = GradientMonitor(model, every=1)
    (x, y), = _batches(1)
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    with torch.no_grad():
        model(x * 1000)  # a validation pass on wildly different data
    monitor.observe(loss)
    assert monitor.observations[0].input_scale["max"] < 10


def test_works_on_a_convolutional_model_with_inplace_relu():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)
    )
    opt = torch.optim.Adam(model.parameters())
    monitor = GradientMonitor(model, every=2, optimizer=opt)
    for _ in range(4):
        x = torch.randn(8, 1, 8, 8)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        monitor.observe(loss)
        opt.step()
    diagnosis = monitor.diagnose()
    assert [row["layer"] for row in diagnosis.layers] == ["0", "2", "5"]
    obs = monitor.observations[-1]
    assert all(math.isfinite(obs.layers[n].grad_norm) and obs.layers[n].update_ratio > 0 for n in ("0", "2", "5"))
    assert 0 <= obs.layers["2"].saturation <= 1
    assert 0 <= monitor.observations[0].layers["0"].dead <= 1  # dead units: measured on full steps


def test_lean_steps_measure_what_full_steps_measure_and_full_steps_come_every_default_cadence():
    # With the weights and the batch held fixed, every observed step must see the same flow:
    # the lean steps (interior layers' hooks off, wiring reused) included.
    from gradwise.diagnosis import DEFAULT_EVERY

    model = _mlp(widths=(5, 16, 16, 16, 3))
    monitor = GradientMonitor(model, every=1)
    (x, y), = _batches(1)
    for _ in range(DEFAULT_EVERY + 2):
        model.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        monitor.observe(loss)
    observations = monitor.observations
    full = [o.step for o in observations if math.isfinite(o.layers["0"].dead)]
    assert full == [0, DEFAULT_EVERY]
    assert observations[3].input_scale is None and observations[DEFAULT_EVERY].input_scale is not None
    first = observations[0]
    for obs in observations[1:]:
        for name, layer in first.layers.items():
            other = obs.layers[name]
            for attr in ("grad_norm", "weight_norm", "gain", "grad_in", "act_rms", "grad_act"):
                expected = getattr(layer, attr)
                assert getattr(other, attr) == pytest.approx(expected, rel=1e-5, nan_ok=True), (obs.step, name, attr)
            assert other.activation == layer.activation
    assert all(math.isfinite(layer.gain) for layer in observations[5].layers.values())


def test_rejects_a_bad_cadence_and_a_model_without_layers():
    from gradwise.errors import ConfigError

    with pytest.raises(ConfigError, match="every"):
        GradientMonitor(_mlp(), every=0)
    with pytest.raises(ConfigError, match="no layer"):
        GradientMonitor(nn.ReLU())
    with pytest.raises(ConfigError, match="GradScaler, got float"):
        GradientMonitor(_mlp(), scaler=65536.0)  # the scale, not the scaler


def test_monitor_as_fit_callback_observes_the_network_and_stops_on_nan():
    from gradwise import TrainConfig
    from gradwise.data import load_table, split_table
    from gradwise.training import fit

    splits = split_table(load_table("builtin:diabetes"), seed=0)
    monitor = GradientMonitor(every=1)
    result = fit(TrainConfig(optimizer="gd", lr=1e4, epochs=3), splits, callbacks=[monitor])
    assert result.stop_reason.startswith("non-finite")
    assert result.updates < len(splits.train.X) // 64  # stopped inside the first epoch
    assert monitor.observations and not math.isfinite(monitor.losses[-1])
    assert "diverging_loss" == monitor.diagnose().main.problem
