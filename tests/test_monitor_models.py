"""The monitor on the models people train: recurrent, convolutional, attention, embeddings.

Table-driven over model kinds, each with a healthy and a broken set-up: a healthy one gets no
finding at warning level or above; a broken one is named for its problem. Tiny models, a few
steps each, synthetic tasks.
"""

import math
import warnings

import pytest
import torch
from torch import nn

from gradwise.diagnosis import GradientMonitor

# ---- models ----


class Sequence(nn.Module):
    """A recurrent classifier reading the whole sequence, answering from its last step."""

    def __init__(self, cell="rnn", hidden=16, recurrent_gain=None):
        super().__init__()
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](4, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        if recurrent_gain is not None:
            with torch.no_grad():
                nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=recurrent_gain)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def cnn(depth, act, batch_norm=False, he=False):
    mods, channels = [], 1
    for _ in range(depth):
        conv = nn.Conv2d(channels, 6, 3, padding=1)
        if he:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        mods += [conv] + ([nn.BatchNorm2d(6)] if batch_norm else []) + [act()]
        channels = 6
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))


class Transformer(nn.Module):
    def __init__(self, norm_first, layers=4, d=32, vocab=20):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        block = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens)).mean(dim=1))


class Bag(nn.Module):
    """An embedding front (integer inputs) with an output layer tied to the embedding."""

    def __init__(self, vocab=20, d=16):
        super().__init__()
        self.emb, self.fc, self.act = nn.Embedding(vocab, d), nn.Linear(d, d), nn.ReLU()
        self.out = nn.Linear(d, vocab)
        self.out.weight = self.emb.weight

    def forward(self, tokens):
        return self.out(self.act(self.fc(self.emb(tokens).mean(dim=1))))[:, :2]


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.main, self.aux = nn.Linear(32, 2), nn.Linear(32, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.main(h), self.aux(h)


class Sigmoids(nn.Module):
    """Ten sigmoid layers, with one activation module for all (shared) or one each."""

    def __init__(self, shared):
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip([5] + [16] * 9, [16] * 9 + [2]))
        self.act = nn.Sigmoid()
        self.acts = nn.ModuleList(nn.Sigmoid() for _ in range(8))
        self.shared = shared

    def forward(self, x):
        for i, fc in enumerate(self.fcs[:-1]):
            x = (self.act if self.shared else self.acts[i - 1] if i else self.act)(fc(x))
        return self.fcs[-1](x)


# ---- tasks: (batches of inputs, targets) ----


def sequences(steps, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(32, length, 4, generator=g)
        out.append((x, (x[:, 0, 0] + x[:, -1, 0] > 0).long()))
    return out


def images(steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(16, 1, 8, 8, generator=g)
        out.append((x, (x.mean(dim=(1, 2, 3)) > 0).long()))
    return out


def tokens(steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        t = torch.randint(0, 20, (32, 10), generator=g)
        out.append((t, ((t < 10).sum(dim=1) > 5).long()))
    return out


def table(steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 2, generator=g)
    out = []
    for _ in range(steps):
        x = torch.randn(32, 5, generator=g)
        out.append((x, (x @ w).argmax(dim=1)))
    return out


def _loss(out, y):
    if isinstance(out, tuple):  # main head, and a small auxiliary head
        return nn.functional.cross_entropy(out[0], y) + 0.1 * out[1].pow(2).mean()
    return nn.functional.cross_entropy(out, y)


def train(build, batches, optimizer, lr, every=1, autocast=None, monitor=True):
    torch.manual_seed(0)
    model = build()
    opt = optimizer(model.parameters(), lr=lr)
    mon = GradientMonitor(model, every=every) if monitor else None  # no optimizer: it is found
    losses = []
    for x, y in batches:
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            loss = _loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        if mon is not None:
            mon.observe(loss)
        opt.step()
        losses.append(loss.item())
    return mon, losses


Adam, SGD = torch.optim.Adam, torch.optim.SGD

# name: (model, batches, optimizer, lr, expected main problem or None for healthy)
CASES = {
    "rnn vanishing through time": (lambda: Sequence("rnn", recurrent_gain=0.3), lambda: sequences(12, 20), Adam, 1e-2, "vanishing_gradient"),
    "rnn exploding": (lambda: Sequence("rnn", recurrent_gain=3.0), lambda: sequences(12, 20), Adam, 1e-2, "exploding_gradient"),
    "lstm healthy": (lambda: Sequence("lstm"), lambda: sequences(20, 8), Adam, 1e-2, None),
    "gru healthy": (lambda: Sequence("gru"), lambda: sequences(20, 8), Adam, 1e-2, None),
    "deep sigmoid cnn vanishing": (lambda: cnn(16, nn.Sigmoid), lambda: images(8), Adam, 1e-3, "vanishing_gradient"),
    "cnn with batch norm healthy": (lambda: cnn(4, nn.ReLU, batch_norm=True, he=True), lambda: images(20), Adam, 1e-3, None),
    "post-norm transformer collapsed": (lambda: Transformer(norm_first=False), lambda: tokens(24), Adam, 3e-2, "vanishing_gradient"),
    "pre-norm transformer healthy": (lambda: Transformer(norm_first=True, layers=2), lambda: tokens(20), Adam, 1e-3, None),
    "tied embedding model healthy": (Bag, lambda: tokens(20), Adam, 1e-2, None),
    "two heads healthy": (TwoHeads, lambda: table(25), Adam, 1e-2, None),
    "shared sigmoid vanishing": (lambda: Sigmoids(shared=True), lambda: table(8), SGD, 0.1, "vanishing_gradient"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_model_kind_gets_the_verdict_a_person_would_give(case):
    build, batches, optimizer, lr, expected = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no module skipped, nothing else going wrong
        monitor, _ = train(build, batches(), optimizer, lr, every=2)
        diagnosis = monitor.diagnose()
    serious = [f.problem for f in diagnosis.findings if f.severity != "info"]
    if expected is None:
        assert serious == [], diagnosis.to_dict()["findings"]
    else:
        assert expected in serious, diagnosis.to_dict()["findings"]
        finding = next(f for f in diagnosis.findings if f.problem == expected)
        assert finding.fixes and finding.layers


def test_recurrent_cures_and_the_gradient_through_time_are_named():
    case = lambda name: (CASES[name][0], CASES[name][1](), *CASES[name][2:4])
    vanishing = train(*case("rnn vanishing through time"))[0].diagnose().main
    assert vanishing.evidence["gradient_through_time"] < 1e-5 and vanishing.evidence["sequence_length"] == 20
    assert vanishing.layers == ["rnn.ih_l0", "rnn.hh_l0"]
    assert [f.cure for f in vanishing.fixes[:3]] == ["gated_cell", "orthogonal_init", "shorter_sequence"]
    exploding = train(*case("rnn exploding"))[0].diagnose().main
    assert exploding.problem == "exploding_gradient"
    assert [f.cure for f in exploding.fixes[:2]] == ["orthogonal_init", "clip_grad"]


def test_transformer_and_cnn_fixes_are_their_own():
    case = lambda name: (CASES[name][0], CASES[name][1](), *CASES[name][2:4])
    transformer = train(*case("post-norm transformer collapsed"), every=2)[0].diagnose()
    cures = {f.cure for finding in transformer.findings for f in finding.fixes}
    assert {"pre_norm", "warmup"} <= cures and "relu_he" not in cures
    conv = train(*case("deep sigmoid cnn vanishing"))[0].diagnose().main
    assert [f.cure for f in conv.fixes[:3]] == ["relu_he+batch_norm", "relu_he", "batch_norm"]


def test_a_shared_activation_module_gives_the_findings_of_separate_ones():
    shared = train(lambda: Sigmoids(shared=True), table(8), SGD, 0.1)[0].diagnose()
    separate = train(lambda: Sigmoids(shared=False), table(8), SGD, 0.1)[0].diagnose()
    summary = lambda d: [(f.problem, f.severity, f.origin, f.layers) for f in d.findings]
    assert summary(shared) == summary(separate)
    assert shared.findings[0].evidence["hidden_gain"] == pytest.approx(separate.findings[0].evidence["hidden_gain"], rel=1e-6)


AUTOCAST = {
    "linear": (lambda: nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2)), lambda: table(4)),
    "conv": (lambda: cnn(2, nn.ReLU), lambda: images(4)),
    "transformer": (lambda: Transformer(norm_first=True, layers=1), lambda: tokens(4)),
    "lstm": (lambda: Sequence("lstm"), lambda: sequences(4, 6)),
    "embedding": (Bag, lambda: tokens(4)),
}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("kind", list(AUTOCAST))
def test_autocast_training_is_unchanged_by_the_monitor(kind, dtype):
    build, batches = AUTOCAST[kind]
    try:
        _, plain = train(build, batches(), SGD, 0.05, autocast=dtype, monitor=False)
    except RuntimeError as error:  # this CPU cannot run the model in this dtype at all
        pytest.skip(f"{kind} under {dtype} autocast is not supported here: {error}")
    monitor, watched = train(build, batches(), SGD, 0.05, autocast=dtype)
    assert watched == plain
    assert all(math.isfinite(l.grad_norm) for l in monitor.observations[0].layers.values())


def amp_training(init_scale: float, unscale_first: bool, give_scaler: bool = True):
    """fp16 autocast with a GradScaler, the mixed-precision recipe; returns the monitor, its
    diagnosis, each step's true first-layer gradient norm and the steps the scaler skipped."""
    torch.manual_seed(0)
    X = torch.randn(256, 10)
    y = (X[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    monitor = GradientMonitor(model, every=1, optimizer=opt, scaler=scaler if give_scaler else None)
    truth, skipped = {}, 0
    for step, i in enumerate(list(range(0, 256, 32)) * 3):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = _loss(model(X[i:i + 32]), y[i:i + 32])
        opt.zero_grad()
        scaler.scale(loss).backward()
        if unscale_first:  # as for gradient clipping
            scaler.unscale_(opt)
        truth[step] = model[0].weight.grad.norm().item() / (1.0 if unscale_first else scaler.get_scale())
        monitor.observe(loss)
        before = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        skipped += scaler.get_scale() < before  # the scaler lowers its scale after each step it skips
    return monitor, monitor.diagnose(), truth, skipped


@pytest.mark.parametrize("unscale_first", [False, True], ids=["scaled_grads", "after_unscale"])
def test_a_loss_scalers_overflows_are_skipped_steps_not_exploding_gradients(unscale_first):
    # A scale of 2^30 overflows fp16 for the first dozen steps, as 2^16 does on larger models:
    # the scaler skips them and backs off. Without the scaler the monitor called that critical.
    try:
        monitor, diagnosis, truth, skipped = amp_training(2.0 ** 30, unscale_first)
    except RuntimeError as error:
        pytest.skip(f"fp16 autocast is not supported on this CPU: {error}")
    assert skipped >= 5 and monitor.scaler_skipped == skipped
    assert len(monitor.observations) == len(truth) - skipped
    assert diagnosis.summary["skipped_by_loss_scaler"] == skipped
    assert "exploding_gradient" not in [f.problem for f in diagnosis.findings]
    for obs in monitor.observations:  # the true gradient, not 2^k times it
        assert obs.layers["0"].grad_norm == pytest.approx(truth[obs.step], rel=1e-5)
    _, unaware, _, _ = amp_training(2.0 ** 30, unscale_first, give_scaler=False)
    assert [f.problem for f in unaware.findings if f.severity == "critical"] == ["exploding_gradient"]


def test_a_float64_model_is_measured_in_float64():
    build, batches = AUTOCAST["lstm"]
    torch.manual_seed(0)
    model = build().double()
    monitor = GradientMonitor(model, every=1)
    for x, y in batches():
        loss = _loss(model(x.double()), y)
        model.zero_grad()
        loss.backward()
        monitor.observe(loss)
    layer = monitor.observations[0].layers["rnn.ih_l0"]
    assert math.isfinite(layer.gain) and layer.time_steps == 6 and 0 < layer.time_gain


def test_integer_inputs_are_never_an_input_scale():
    monitor, _ = train(Bag, tokens(3), Adam, 1e-2)
    assert all(o.input_scale is None for o in monitor.observations)


def test_batch_first_sequences_are_scaled_per_feature():
    x = torch.randn(32, 7, 4)
    x[..., 2] *= 100  # one feature x100 at every time step
    model = Sequence("gru")
    monitor = GradientMonitor(model, every=1)
    loss = model(x).sum()
    loss.backward()
    monitor.observe(loss)
    scale = monitor.observations[0].input_scale
    assert scale["feature"] == 2 and scale["max"] / scale["median"] > 50


def test_a_module_that_cannot_be_measured_is_skipped_with_one_warning_and_training_goes_on():
    class Odd(nn.Linear):
        """A Linear whose output is not W x + b: the probe's formula for dJ/dx cannot apply."""

        def forward(self, x):
            return super().forward(x)[:, :4]

    model = nn.Sequential(Odd(5, 8), nn.ReLU(), nn.Linear(4, 2))
    monitor = GradientMonitor(model, every=1)
    with pytest.warns(RuntimeWarning, match="skipping module '0'") as caught:
        for x, y in table(3):
            loss = _loss(model(x), y)
            model.zero_grad()
            loss.backward()  # the failing measurement stays inside the monitor
            monitor.observe(loss)
    assert len([w for w in caught if "skipping" in str(w.message)]) == 1
    assert monitor.diagnose().layers


def test_lstm_alone_and_custom_weight_matrices_are_monitored():
    monitor = GradientMonitor(nn.LSTM(4, 8))
    assert [name for name, _ in monitor.entries] == ["ih_l0", "hh_l0"]  # the model itself is the layer

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(torch.randn(5, 3))

        def forward(self, x):
            return x @ self.W

    model = Custom()
    monitor = GradientMonitor(model, every=1)
    loss = model(torch.randn(8, 5)).pow(2).mean()
    loss.backward()
    monitor.observe(loss)
    assert monitor.observations[0].layers["W"].grad_norm == pytest.approx(model.W.grad.norm().item(), rel=1e-5)


def test_a_blow_up_in_the_first_steps_is_named_before_the_saturation_it_leaves():
    def build():
        return nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))

    problems = train(build, table(40), SGD, 3.0)[0].diagnose().problems()
    assert "saturated_activations" in problems
    cause = min(problems.index(p) for p in ("diverging_loss", "exploding_gradient") if p in problems)
    assert cause < problems.index("saturated_activations")
