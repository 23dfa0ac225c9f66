"""The CUDA checks: skipped without an NVIDIA GPU, so CI (CPU only) never runs them.

On a machine with a GPU, ``bash benchmarks/gpu_check.sh`` runs them and then the population
benchmark on ``--device cuda``. They ask what issue 12 asks of the GPU: the population's
equality contract holds there (member k trains what ``fit`` trains on the same device), the
tuner's populations run end to end on ``--device cuda``, and the monitor reads a
mixed-precision loop with its GradScaler (the recipe on a GPU) as healthy.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradwise import GradientMonitor, TrainConfig
from gradwise.training.population import Member

from test_population import OPTIMIZERS, VARIANTS, assert_same_training, iris, member_configs, row_sets  # noqa: F401 (iris: a fixture)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA_CASES = [("adam", "mini_batch"), ("gd", "full"), ("momentum", "stochastic"), ("rmsprop", "mini_batch")]


@pytest.mark.parametrize("optimizer,variant", CUDA_CASES)
def test_member_k_trains_on_cuda_what_fit_trains_there(iris, optimizer, variant):
    epochs = 2 if variant == "stochastic" else 6
    base = TrainConfig(layers=2, hidden=8, batch_size=VARIANTS[variant], epochs=epochs, patience=None, device="cuda", **OPTIMIZERS[optimizer])
    results = assert_same_training([Member(c, f) for c, f in zip(member_configs(base), row_sets(iris, 3))])
    assert all(p.device.type == "cuda" for r in results for p in r.model.net.parameters())


def test_tune_trains_its_populations_on_cuda(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("tune", "--data", "builtin:iris", "--device", "cuda", "--trials", 8, "--population", 4, "--cv", 0,
                 "--epochs", 5, "--out", out, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["trials"]["complete"] >= 1 and document["final"]["test"]["accuracy"] > 0.5
    predicted = cli("predict", "--model", out / "model", "--data", "builtin:iris", "--out", tmp_path / "p.csv")
    assert predicted.code == 0, predicted.stderr


def test_a_cuda_mixed_precision_loop_with_its_scaler_is_healthy_and_measured_unscaled():
    torch.manual_seed(0)
    device = torch.device("cuda")
    X, y = torch.randn(512, 16, device=device), torch.randint(0, 3, (512,), device=device)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 30)  # overflows fp16 at first, on purpose
    monitor = GradientMonitor(model, every=1, optimizer=opt, scaler=scaler)
    truth, skipped = {}, 0
    for step, i in enumerate(list(range(0, 512, 64)) * 4):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(X[i:i + 64]), y[i:i + 64])
        opt.zero_grad()
        scaler.scale(loss).backward()
        truth[step] = model[0].weight.grad.float().norm().item() / scaler.get_scale()
        monitor.observe(loss)
        before = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        skipped += scaler.get_scale() < before
    diagnosis = monitor.diagnose()
    assert skipped > 0 and monitor.scaler_skipped == skipped
    assert "exploding_gradient" not in [f.problem for f in diagnosis.findings]
    for obs in monitor.observations:
        assert obs.layers["0"].grad_norm == pytest.approx(truth[obs.step], rel=1e-4)
