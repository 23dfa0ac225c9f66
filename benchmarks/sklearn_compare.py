"""GradwiseClassifier/Regressor vs scikit-learn's MLP vs skorch, through cross_val_score.

Each method trains the same network (2 hidden ReLU layers, Adam, mini-batches of 64, no L2
penalty, no early stopping) for the same number of epochs, on the same folds, at every
point of the same grid of learning rate and hidden units. Every method sees the same
preprocessing: a StandardScaler on the inputs and, for regression, on the target (undone
before scoring, so RMSE is in the target's units). Weight initialization is each library's
own default. Everything runs on one CPU thread, so the wall times compare the libraries,
not their threading.

For each table and method it prints every grid point's mean cross-validated accuracy (or
RMSE) and wall time, then the best point and the total time relative to gradwise.

    python benchmarks/sklearn_compare.py [--epochs 100] [--folds 5] [--quick]

skorch is optional (``pip install -e ".[bench]"``); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from gradwise.sklearn import GradwiseClassifier, GradwiseRegressor

TABLES = {"breast_cancer": load_breast_cancer, "digits": load_digits, "diabetes": load_diabetes}
REGRESSION = {"diabetes"}
BATCH = 64


def gradwise_model(task: str, lr: float, hidden: int, epochs: int):
    cls = GradwiseRegressor if task == "regression" else GradwiseClassifier
    # normalize="none": the pipeline's StandardScaler does it, as for the other methods.
    return cls(layers=2, hidden=hidden, lr=lr, batch_size=BATCH, epochs=epochs, patience=None, validation_fraction=0.0, normalize="none", device="cpu", threads=1)


def mlp_model(task: str, lr: float, hidden: int, epochs: int):
    cls = MLPRegressor if task == "regression" else MLPClassifier
    # n_iter_no_change=epochs: sklearn's loss-plateau stop would otherwise end runs early.
    return cls(hidden_layer_sizes=(hidden, hidden), activation="relu", solver="adam", alpha=0.0, learning_rate_init=lr, batch_size=BATCH, max_iter=epochs, n_iter_no_change=epochs, tol=0.0, random_state=0)


class TwoLayerMLP(nn.Module):
    def __init__(self, n_in: int = 1, n_out: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, X):
        return self.net(X)


def skorch_model(task: str, lr: float, hidden: int, epochs: int, n_in: int, n_out: int):
    from skorch import NeuralNetClassifier, NeuralNetRegressor

    common = dict(module=TwoLayerMLP, module__n_in=n_in, module__n_out=n_out, module__hidden=hidden, optimizer=torch.optim.Adam, lr=lr, max_epochs=epochs, batch_size=BATCH, train_split=None, iterator_train__shuffle=True, verbose=0)
    if task == "regression":
        return ColumnTarget(NeuralNetRegressor(criterion=nn.MSELoss, **common))
    return NeuralNetClassifier(criterion=nn.CrossEntropyLoss, **common)


class ColumnTarget(RegressorMixin, BaseEstimator):
    """skorch's regressor wants float32 targets of shape (n, 1); give it those, return (n,)."""

    def __init__(self, net=None):
        self.net = net

    def fit(self, X, y):
        self.net_ = clone(self.net).fit(X, np.asarray(y, dtype=np.float32).reshape(-1, 1))
        return self

    def predict(self, X):
        return self.net_.predict(X).ravel()


def pipeline(task: str, model):
    """Scaled float32 inputs for every method; a scaled target for regression."""
    steps = make_pipeline(StandardScaler(), FunctionTransformer(lambda X: X.astype(np.float32)), model)
    if task == "regression":
        return TransformedTargetRegressor(regressor=steps, transformer=StandardScaler())
    return steps


def methods(skorch_available: bool):
    out = {"gradwise": gradwise_model, "sklearn MLP": mlp_model}
    if skorch_available:
        out["skorch"] = None  # built per table (it needs the input and output sizes)
    return out


def build(name: str, builder, task: str, lr: float, hidden: int, epochs: int, X, y):
    if name == "skorch":
        n_out = 1 if task == "regression" else len(np.unique(y))
        return pipeline(task, skorch_model(task, lr, hidden, epochs, X.shape[1], n_out))
    return pipeline(task, builder(task, lr, hidden, epochs))


def score_point(model, X, y, task: str, folds) -> tuple[float, float, float]:
    """(mean, std) of the fold scores (accuracy, or RMSE) and the wall seconds."""
    scoring = "neg_root_mean_squared_error" if task == "regression" else "accuracy"
    torch.manual_seed(0)  # skorch takes no seed; it draws its weights and batches from torch's
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=folds, scoring=scoring, n_jobs=1)
    seconds = time.perf_counter() - started
    scores = -scores if task == "regression" else scores
    return float(scores.mean()), float(scores.std()), seconds


def run_table(table: str, args, skorch_available: bool) -> None:
    X, y = TABLES[table](return_X_y=True)
    task = "regression" if table in REGRESSION else "classification"
    splitter = KFold if task == "regression" else StratifiedKFold
    folds = splitter(n_splits=args.folds, shuffle=True, random_state=0)
    metric = "RMSE" if task == "regression" else "accuracy"
    print(f"\n== {table}: {X.shape[0]} rows x {X.shape[1]} features, {task}, {args.folds}-fold {metric}, {args.epochs} epochs ==")
    print(f"{'method':<12} {'lr':>8} {'hidden':>6} {metric:>10} {'± std':>7} {'seconds':>8}")
    totals, bests = {}, {}
    for name, builder in methods(skorch_available).items():
        totals[name] = 0.0
        # One untimed fit first, so one-time costs (lazy imports, compiling an optimizer
        # step) do not land on whichever grid point happens to run first.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            build(name, builder, task, args.lrs[0], args.hiddens[0], 1, X, y).fit(X[:200], y[:200])
        for lr in args.lrs:
            for hidden in args.hiddens:
                mean, std, seconds = score_point(build(name, builder, task, lr, hidden, args.epochs, X, y), X, y, task, folds)
                totals[name] += seconds
                print(f"{name:<12} {lr:>8g} {hidden:>6d} {mean:>10.4f} {std:>7.4f} {seconds:>8.2f}")
                better = mean < bests[name][0] if task == "regression" and name in bests else (name not in bests or mean > bests[name][0])
                if better:
                    bests[name] = (mean, lr, hidden)
    print(f"-- best per method (grid of {len(args.lrs) * len(args.hiddens)} points) --")
    for name, (mean, lr, hidden) in bests.items():
        print(f"{name:<12} best {metric} {mean:.4f} at lr={lr:g}, hidden={hidden}; total {totals[name]:.1f} s ({totals[name] / totals['gradwise']:.2f}x gradwise's time)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-2])
    parser.add_argument("--hiddens", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--quick", action="store_true", help="5 epochs, 2 folds, hidden 16 only: checks that the script works")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.folds, args.hiddens = 5, 2, [16]
    return args


def main() -> None:
    args = parse_args()
    try:
        import skorch  # noqa: F401

        skorch_available = True
    except ImportError:
        skorch_available = False
        print('skorch is not installed (pip install -e ".[bench]"); its rows are skipped')
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for table in args.tables:
            run_table(table, args, skorch_available)


if __name__ == "__main__":
    main()
