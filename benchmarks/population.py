"""Configurations trained per second: a population of K against gradwise.fit one at a time.

Each configuration trains 20 epochs (no early stopping) with its own α and seed. Two set-ups:

  (a) builtin:digits, 2 hidden layers of 64, batch 64 (goal: >= 8x on a 2-core CPU);
  (b) a synthetic 50,000 x 32 classification table, 3 hidden layers of 128, batch 256 (goal: >= 2x).

Populations of K = 8, 32 and 128 each train K configurations at once (PopulationTrainer);
the baseline trains a few configurations with gradwise.fit, one at a time, and reports its
rate. Each side runs on its fastest thread count: gradwise.fit on the faster of one thread
and all the cores (measured), populations on ``--threads`` (default 0: the cores the last
other processes leave idle, as `gradwise tune --threads 0` does; on a busy machine a second
thread made populations 2-5x slower). On a CUDA GPU pass ``--device cuda``.

Each line also gives the rate in GFLOP/s of the training's matrix products (forward, weight
and input gradients), under the machine's float32 matmul peak printed first: batching can
only win what one-at-a-time training leaves below that peak, so (b), whose matrices are
already large, is bounded by peak / fit's rate.

On the CPU it then trains one population per idle core, each in its own process on one
thread, as `gradwise tune --workers auto` does, and gives their combined rate (timed from
the moment every process has loaded its data and warmed up).

Run:  python benchmarks/population.py [--quick] [--device cpu|cuda] [--threads N] [--setups a,b]
``--quick`` runs 2 epochs, K = 8 and 32, (b) on 5,000 rows: a check that the script works.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import pandas as pd
import torch

from gradwise import TrainConfig, fit, load_table, split_table
from gradwise.data.loading import Table
from gradwise.training.population import Member, PopulationTrainer
from gradwise.tuning.runner import free_cores


def synthetic_table(rows: int, features: int = 32, classes: int = 4, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    w = rng.normal(size=(features, classes))
    y = (np.tanh(X @ w) + 0.3 * rng.normal(size=(rows, classes))).argmax(axis=1)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(features)])
    return Table(frame, pd.DataFrame({"y": y}), "classification", "synthetic")


def configs(base: TrainConfig, k: int) -> list[TrainConfig]:
    lrs = np.exp(np.linspace(np.log(1e-4), np.log(3e-2), k))
    return [base.replace(lr=float(lr), seed=i) for i, lr in enumerate(lrs)]


def training_flops(base: TrainConfig, splits) -> float:
    """Multiply-adds of one configuration's training, counted as 2 FLOPs each: per row, the
    forward pass, the weight gradients and the input gradients (none for the first layer)."""
    rows, features = splits.train.X.shape
    outputs = int(splits.train.y.max()) + 1 if splits.task == "classification" else 1
    widths = [features] + [base.hidden] * base.layers + [outputs]
    forward = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return 2.0 * rows * (3 * forward - widths[0] * widths[1]) * base.epochs


def matmul_peak(threads: int, n: int = 1024) -> float:
    """The GFLOP/s of a large float32 matmul on ``threads``: the ceiling both sides work under."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(20):
        a @ b
    return 2 * n**3 * 20 / (time.perf_counter() - started) / 1e9


def fit_rate(base: TrainConfig, splits, n: int) -> float:
    fit(base.replace(epochs=1), splits)  # warm-up: the first step imports and allocates
    started = time.perf_counter()
    for config in configs(base, n):
        fit(config, splits)
    return n / (time.perf_counter() - started)


def population_rate(base: TrainConfig, splits, k: int) -> float:
    started = time.perf_counter()
    PopulationTrainer([Member(c, splits) for c in configs(base, k)]).run()
    return k / (time.perf_counter() - started)


def dataset(name: str, quick: bool):
    """The splits of set-up (a) or (b), built the same way in every process."""
    if name == "a":
        return split_table(load_table("builtin:digits"), seed=0)
    return split_table(synthetic_table(5_000 if quick else 50_000), seed=0)


def _process_population(config: dict, name: str, quick: bool, k: int, offset: int, ready, go, ends) -> None:
    """One process's population, on one thread, timed from the moment every process is ready."""
    torch.set_num_threads(1)
    splits = dataset(name, quick)
    base = TrainConfig.from_dict(config)
    members = [Member(c.replace(seed=c.seed + offset), splits) for c in configs(base, k)]
    PopulationTrainer([Member(base.replace(epochs=1), splits)]).run()  # warm-up, as fit_rate's
    ready.put(True)
    go.wait()
    PopulationTrainer(members).run()
    ends.put(time.perf_counter())  # CLOCK_MONOTONIC: comparable across processes on Linux


def processes_rate(base: TrainConfig, name: str, quick: bool, k: int, processes: int) -> float:
    """Configurations/s of ``processes`` populations of ``k``, each in its own process on one
    thread, as `gradwise tune --workers auto` trains them (one worker per idle core)."""
    context = mp.get_context("spawn")  # a fork of a process that ran OpenMP threads may hang
    ready, go, ends = context.Queue(), context.Event(), context.Queue()
    children = [context.Process(target=_process_population, args=(base.to_dict(), name, quick, k, i * k, ready, go, ends)) for i in range(processes)]
    for child in children:
        child.start()
    for _ in children:
        ready.get()
    started = time.perf_counter()
    go.set()
    finished = max(ends.get() for _ in children)
    for child in children:
        child.join()
    return processes * k / (finished - started)


def run(name: str, base: TrainConfig, splits, sizes: list[int], fit_runs: int, threads: int, setup: str = "", quick: bool = False) -> None:
    rates, flops = {}, training_flops(base, splits) / 1e9
    for fit_threads in sorted({1, len(os.sched_getaffinity(0))}):
        torch.set_num_threads(fit_threads)
        rates[fit_threads] = fit_rate(base, splits, fit_runs)
        print(f"{name}: gradwise.fit one at a time, {fit_threads} thread(s): {rates[fit_threads]:.2f} configurations/s, {rates[fit_threads] * flops:.1f} GFLOP/s ({fit_runs} runs)")
    baseline = max(rates.values())
    torch.set_num_threads(threads)
    for k in sizes:
        rate = population_rate(base, splits, k)
        print(f"{name}: population K={k:4d}, {threads} thread(s): {rate:.2f} configurations/s, {rate * flops:.1f} GFLOP/s, {rate / baseline:.1f}x gradwise.fit's best")
    processes = free_cores()
    if setup and processes > 1 and base.device == "cpu":
        for k in sizes:
            rate = processes_rate(base, setup, quick, k, processes)
            print(f"{name}: {processes} populations of K={k:4d}, one process and thread each: {rate:.2f} configurations/s, {rate * flops:.1f} GFLOP/s, {rate / baseline:.1f}x gradwise.fit's best")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for populations (0: the free cores)")
    parser.add_argument("--setups", default="a,b", help="which set-ups to run, comma-separated (a: digits, b: the 50,000-row table)")
    args = parser.parse_args()
    threads = args.threads or free_cores()
    epochs = 2 if args.quick else 20
    sizes = [8, 32] if args.quick else [8, 32, 128]
    print(f"device {args.device}, population torch threads {threads}, {epochs} epochs per configuration"
          + (" (--quick: a check that the script runs, not a measurement)" if args.quick else ""))
    if args.device == "cpu":
        peaks = ", ".join(f"{t} thread(s) {matmul_peak(t):.0f}" for t in sorted({1, threads}))
        print(f"float32 matmul peak (1024 x 1024) in GFLOP/s: {peaks}")
    setups = set(args.setups.split(","))
    if "a" in setups:
        digits = dataset("a", args.quick)
        base_a = TrainConfig(layers=2, hidden=64, batch_size=64, epochs=epochs, patience=None, device=args.device)
        run("(a) digits 2x64 batch 64", base_a, digits, sizes, 2 if args.quick else 8, threads, "a", args.quick)
    if "b" not in setups:
        return
    table = dataset("b", args.quick)
    base_b = TrainConfig(layers=3, hidden=128, batch_size=256, epochs=epochs, patience=None, device=args.device)
    run(f"(b) {table.train.X.shape[0] + table.val.X.shape[0] + table.test.X.shape[0]:,} x 32, 3x128 batch 256", base_b, table, sizes, 2 if args.quick else 4, threads, "b", args.quick)


if __name__ == "__main__":
    main()
