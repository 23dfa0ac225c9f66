"""Training throughput with the gradient monitor off, at its default cadence, and every step.

The monitor is used as a user would: created next to the model, ``monitor.observe(loss)``
after ``loss.backward()`` and before ``optimizer.step()``. Three identical models (monitor
off, every 20 steps, every step) train side by side, one step each in turn, so a busy shared
machine slows all three alike. Each step is timed in this process's CPU time (torch on one
thread) and in wall-clock time; a mode's figure is the median over windows of 20
consecutive steps (each window holds exactly one on-cadence step of the default monitor).
An observed step leaves its numbers on the device and ``diagnose()`` reads them back after
training, so its time is printed too, with the overhead of the whole run including it.

Under ``torch.compile`` (the "compiled" case) the monitor registers its hooks only for
observed steps, as the same hook objects each time, so unobserved steps run the graph
compiled without hooks and observed steps the one compiled with them (compiled once, in the
warm-up window); the goal is at most 5% overhead at the default cadence.

    python benchmarks/monitor_overhead.py            # the benchmark MLP, a small MLP, compiled
    python benchmarks/monitor_overhead.py --quick    # fewer steps, for a smoke test
    python benchmarks/monitor_overhead.py --no-compiled
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

    def __init__(self, mode: str, size: dict, compiled: bool = False) -> None:
        torch.manual_seed(0)
        plain = make_mlp(**size)
        self.model = torch.compile(plain) if compiled else plain
        self.optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3)
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


def measure(name: str, steps: int, compiled: bool = False) -> None:
    size = SIZES[name]
    if compiled:
        import torch._dynamo as dynamo

        dynamo.reset()
        dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 3 * 8)  # three models
    runs = {mode: Run(mode, size, compiled) for mode in MODES}
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
    print(f"{name} MLP {size['features']}-{widths}-{size['classes']}{' under torch.compile' if compiled else ''}, batch {size['batch']}, Adam, "
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
    parser.add_argument("--compiled", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the benchmark MLP under torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 60 if args.quick else 400
    measure("benchmark", steps)
    measure("small", steps * 2)
    if args.compiled:
        measure("benchmark", steps, compiled=True)


if __name__ == "__main__":
    main()
