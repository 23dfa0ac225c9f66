"""Training throughput: gradwise's loop vs the idiomatic DataLoader loop vs scikit-learn.

All three train the same 3-hidden-layer MLP (ReLU, Adam at 1e-3, mini-batches of 256) on
the same normalized synthetic table, and report examples processed per second of training.
Ratios are printed against gradwise so they can be compared across noisy machines.

    python benchmarks/train_throughput.py [--rows 60000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits
from sklearn.neural_network import MLPClassifier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradwise import TrainConfig, fit
from gradwise.data import FeatureEncoder, Part, Splits, TargetEncoder

LAYERS = 3
HIDDEN = 128  # set from --hidden


def make_splits(rows: int, features: int, classes: int) -> Splits:
    X, y = make_classification(rows, features, n_informative=features // 2, n_classes=classes, random_state=0)
    X = X.astype(np.float32)
    tiny = Part(X[:256], y[:256])  # a small validation split keeps evaluation out of the timing
    encoder = FeatureEncoder([f"x{i}" for i in range(features)], {})
    target = TargetEncoder("classification", ["y"], list(range(classes)))
    return Splits(Part(X, y), tiny, tiny, "classification", encoder, target)


class TrainTimer:
    """Times the training epochs only (from first to last epoch end, minus evaluation)."""

    def on_train_start(self, state):
        self.started = time.perf_counter()

    def on_train_end(self, state):
        self.seconds = time.perf_counter() - self.started


def gradwise_rate(splits: Splits, epochs: int, batch: int, optimizer: str) -> float:
    timer = TrainTimer()
    config = TrainConfig(layers=LAYERS, hidden=HIDDEN, optimizer=optimizer, lr=1e-3, batch_size=batch, epochs=epochs, patience=None, device="cpu")
    fit(config, splits, [timer])
    return epochs * len(splits.train) / timer.seconds


def dataloader_rate(splits: Splits, epochs: int, batch: int) -> float:
    X = torch.from_numpy((splits.train.X - splits.train.X.min(0)) / np.ptp(splits.train.X, 0))
    y = torch.from_numpy(splits.train.y)
    layers: list[nn.Module] = []
    width = X.shape[1]
    for _ in range(LAYERS):
        layers += [nn.Linear(width, HIDDEN), nn.ReLU()]
        width = HIDDEN
    model = nn.Sequential(*layers, nn.Linear(width, splits.n_outputs))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(X, y), batch_size=batch, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
    return epochs * len(X) / (time.perf_counter() - started)


def sklearn_rate(splits: Splits, epochs: int, batch: int) -> float:
    X = (splits.train.X - splits.train.X.min(0)) / np.ptp(splits.train.X, 0)
    model = MLPClassifier((HIDDEN,) * LAYERS, batch_size=batch, max_iter=epochs, learning_rate_init=1e-3, tol=0.0, n_iter_no_change=10**6, shuffle=True, random_state=0)
    started = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge" is expected after a few epochs
        model.fit(X, splits.train.y)
    return model.n_iter_ * len(X) / (time.perf_counter() - started)


def main() -> None:
    global HIDDEN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="units in each of the 3 hidden layers")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per contender")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for torch and for NumPy's BLAS alike")
    args = parser.parse_args()
    HIDDEN = args.hidden
    # The same thread count for everyone: on a busy machine, spinning torch threads can be
    # 10x slower than one thread, which would measure the machine, not the loops.
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    splits = make_splits(args.rows, args.features, args.classes)
    contenders = {
        "gradwise loop + gradwise Adam": lambda: gradwise_rate(splits, args.epochs, args.batch_size, "adam"),
        "gradwise loop + torch.optim.Adam": lambda: gradwise_rate(splits, args.epochs, args.batch_size, "torch:Adam"),
        "torch DataLoader(TensorDataset, shuffle=True)": lambda: dataloader_rate(splits, args.epochs, args.batch_size),
        "scikit-learn MLPClassifier": lambda: sklearn_rate(splits, args.epochs, args.batch_size),
    }
    print(f"{args.rows} rows x {args.features} features, MLP {LAYERS}x{HIDDEN} ReLU, Adam lr 1e-3, batch {args.batch_size}, {args.epochs} epochs, torch threads {torch.get_num_threads()}")
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for name in names:  # warm-up: first-call costs (allocator, lazy imports) are not the loop's
        contenders[name]()
    for repeat in range(args.repeats):  # interleave and rotate so drift hits everyone alike
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            rates[name].append(contenders[name]())
    best = {name: max(values) for name, values in rates.items()}
    reference = best["gradwise loop + gradwise Adam"]
    print(f"{'contender':48s} {'samples/s':>12s} {'gradwise / it':>14s}")
    for name, rate in best.items():
        print(f"{name:48s} {rate:12,.0f} {reference / rate:13.2f}x")


if __name__ == "__main__":
    main()
