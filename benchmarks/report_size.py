"""Size and speed of report.html: a tune report of 200 trials and a diagnose report of
5,000 observed steps.

    python benchmarks/report_size.py            # 200 trials, 5,000 observed steps
    python benchmarks/report_size.py --quick    # 40 trials, 500 observed steps (a smoke run)

The study is built in memory with Optuna (no training): trials across the staged search's
three stages, a third of them pruned with a reason, each with per-epoch values. The
monitor is a real GradientMonitor that observed every step of a small MLP trained on
random data; only writing the report is timed. Targets (issue 13): the tune report at most
8 MB and written in at most 2 s; the diagnose report written in at most 2 s.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import optuna
import torch

import gradwise
import gradwise.report

TUNE_MAX_BYTES = 8_000_000
MAX_SECONDS = 2.0
EPOCHS = 30  # per trial, the pruner's resource


def synthetic_study(n_trials: int = 200, seed: int = 0) -> optuna.Study:
    """A maximizing study shaped like a staged ``gradwise tune``: stage 0 varies α, later
    stages more; pruned trials stop early with a reason; per-epoch accuracy curves."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(seed)
    study = optuna.create_study(direction="maximize", study_name=f"synthetic-{n_trials}")
    distributions = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
        "hidden": optuna.distributions.IntDistribution(8, 512, log=True),
        "batch_size": optuna.distributions.IntDistribution(16, 512, log=True),
        "layers": optuna.distributions.IntDistribution(1, 4),
    }
    for number in range(n_trials):
        stage = 0 if number < n_trials * 0.1 else 1 if number < n_trials * 0.4 else 2
        params = {"lr": 10 ** rng.uniform(-4, 0), "hidden": int(2 ** rng.uniform(3, 9)), "batch_size": int(2 ** rng.uniform(4, 9)), "layers": rng.randint(1, 4)}
        quality = 0.95 - 0.08 * abs(math.log10(params["lr"]) + 2.2) - 0.01 * abs(params["layers"] - 2) + rng.gauss(0, 0.01)
        pruned = number > 5 and rng.random() < 0.33
        epochs = rng.randint(2, 8) if pruned else EPOCHS
        curve = {e: quality * (1 - math.exp(-(e + 1) / 5)) for e in range(epochs)}
        attrs = {"stage": stage, "config": dict(params)}
        if pruned:
            attrs["prune_reason"] = rng.choice(["pruner: unpromising validation accuracy", "diverging_loss diagnosed by the gradient monitor"])
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, intermediate_values=curve, user_attrs=attrs,
            state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE,
            value=None if pruned else curve[epochs - 1],
        ))
    return study


def monitored_steps(steps: int = 5000, seed: int = 0) -> gradwise.GradientMonitor:
    """A GradientMonitor that observed every one of ``steps`` steps of a small MLP."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = gradwise.Momentum(net.parameters(), lr=0.05)
    monitor = gradwise.GradientMonitor(net, every=1, optimizer=optimizer)
    x = torch.randn(32, 8)
    y = x.sum(1, keepdim=True)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        monitor.observe(loss)
        optimizer.step()
    monitor.flush()
    return monitor


def timed_write(subject: object, path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    gradwise.report.write(subject, path)
    return time.perf_counter() - start, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 trials and 500 observed steps: checks the script runs")
    args = parser.parse_args()
    trials, steps = (40, 500) if args.quick else (200, 5000)
    torch.set_num_threads(1)
    study, monitor = synthetic_study(trials), monitored_steps(steps)
    with tempfile.TemporaryDirectory() as tmp:
        # The first write pays once per process for imports (optuna.visualization loads
        # matplotlib, optuna.importance scikit-learn) and plotly's first figure.
        cold_seconds, _ = timed_write(study, Path(tmp) / "cold.html")
        tune_seconds, tune_bytes = timed_write(study, Path(tmp) / "tune.html")
        flow_seconds, flow_bytes = timed_write(monitor, Path(tmp) / "diagnose.html")
    print(f"first report in this process (imports included): {cold_seconds:.2f} s")
    print(f"tune report, {trials} trials: {tune_bytes / 1e6:.2f} MB (limit {TUNE_MAX_BYTES / 1e6:.0f} MB), written in {tune_seconds:.2f} s (limit {MAX_SECONDS:.0f} s)")
    print(f"diagnose report, {steps} observed steps: {flow_bytes / 1e6:.2f} MB, written in {flow_seconds:.2f} s (limit {MAX_SECONDS:.0f} s)")


if __name__ == "__main__":
    main()
