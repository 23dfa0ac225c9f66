"""Training throughput with the gradient monitor off, at its default cadence, and every step.

The monitor is used as a user would: created next to the model, ``monitor.observe(loss)``
after ``loss.backward()`` and before ``optimizer.step()``. Three identical models (monitor
off, every 20 steps, every step) train side by side, one step each in turn, so a busy shared
machine slows all three alike. Each step is timed in this process's CPU time (torch on one
thread) and in wall-clock time; a mode's figure is the median over windows of 20
consecutive steps (each window holds exactly one on-cadence step of the default monitor).
An observed step leaves its numbers on the device and ``diagnose()`` reads them back after
training, so its time is printed too, with the overhead of the whole run including it.

    python benchmarks/monitor_overhead.py            # the benchmark MLP and a small MLP
    python benchmarks/monitor_overhead.py --quick    # fewer steps, for a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from gradwise.diagnosis import DEFAULT_EVERY, GradientMonitor
from gradwise.diagnosis import rules as _rules  # noqa: F401  imported now, not inside the first timed diagnose()

# The benchmark MLP: a mid-sized tabular network (64 features, 4 hidden ReLU layers of 256).
SIZES = {
    "benchmark": dict(features=64, hidden=256, layers=4, classes=10, batch=256),
    "small": dict(features=16, hidden=64, layers=2, classes=3, batch=64),
}
MODES = {"off": None, "default": DEFAULT_EVERY, "every": 1}
LABELS = {"off": "monitor off", "default": f"monitor every {DEFAULT_EVERY} (default)", "every": "monitor every step"}


def make_mlp(features: int, hidden: int, layers: int, classes: int, **_: int) -> nn.Module:
    mods: list[nn.Module] = []
    width = features
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, classes))
    return nn.Sequential(*mods)


class Run:
    """One model, its optimizer and (maybe) a monitor, stepping on a fixed batch."""

    def __init__(self, mode: str, size: dict) -> None:
        torch.manual_seed(0)
        self.model = make_mlp(**size)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        every = MODES[mode]
        self.monitor = GradientMonitor(self.model, every=every) if every else None
        self.x = torch.randn(size["batch"], size["features"])
        self.y = torch.randint(0, size["classes"], (size["batch"],))
        self.loss_fn = nn.CrossEntropyLoss()
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def step(self, record: bool) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        loss = self.loss_fn(self.model(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.monitor is not None:
            self.monitor.observe(loss)
        self.optimizer.step()
        if record:
            self.cpu.append(time.process_time() - cpu)
            self.wall.append(time.perf_counter() - wall)


def windows(times: list[float], width: int = DEFAULT_EVERY) -> float:
    """Median time per step over consecutive windows of ``width`` steps."""
    sums = [sum(times[i:i + width]) / width for i in range(0, len(times) - width + 1, width)]
    return statistics.median(sums)


def measure(name: str, steps: int) -> None:
    size = SIZES[name]
    runs = {mode: Run(mode, size) for mode in MODES}
    order = list(runs)
    for i in range(steps + DEFAULT_EVERY):  # the first window warms up and is not recorded
        for mode in order[i % 3:] + order[: i % 3]:  # rotate who goes first
            runs[mode].step(record=i >= DEFAULT_EVERY)
    read_back = {}
    for mode, run in runs.items():
        if run.monitor is not None:
            # The observed steps' numbers are read back here, outside the steps: count it.
            started = time.process_time()
            run.monitor.diagnose()  # the result must be usable, not just collected
            read_back[mode] = time.process_time() - started
    cpu = {mode: windows(run.cpu) for mode, run in runs.items()}
    wall = {mode: windows(run.wall) for mode, run in runs.items()}
    widths = "-".join([str(size["hidden"])] * size["layers"])
    print(f"{name} MLP {size['features']}-{widths}-{size['classes']}, batch {size['batch']}, Adam, "
          f"{steps} steps per mode, torch threads {torch.get_num_threads()}")
    for mode in MODES:
        print(f"  {LABELS[mode]:28s} {size['batch'] / cpu[mode]:10,.0f} examples/CPU-s  "
              f"overhead {(cpu[mode] / cpu['off'] - 1) * 100:+6.1f}%   "
              f"(wall: {size['batch'] / wall[mode]:10,.0f} examples/s, overhead {(wall[mode] / wall['off'] - 1) * 100:+6.1f}%)")
    for mode, seconds in read_back.items():
        # Per step as above (medians), plus the read-back spread over the run's steps.
        with_read_back = (cpu[mode] + seconds / steps) / cpu["off"] - 1
        print(f"  {LABELS[mode]:28s} diagnose() afterwards {seconds * 1e3:7.1f} ms; whole run incl. it: overhead {with_read_back * 100:+6.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time is exact with 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 60 if args.quick else 400
    measure("benchmark", steps)
    measure("small", steps * 2)


if __name__ == "__main__":
    main()
