"""The README's default `gradwise tune` (builtin:digits, 120 s), as a user types it, on several seeds.

For each seed and each `--population` setting it prints the trials finished (complete and
pruned), how many hyperparameters got a measured importance (and on what basis), and the
retrained best model's test accuracy. Issue 12's goals: >= 90 trials, >= 30 of them
complete, the importance table filled, test accuracy no worse than one trial at a time.

Run:  python benchmarks/tune_default.py [--seeds 0 1 2] [--timeout 120] [--population auto off] [--workers auto 1] [--threads 0]
(``--threads 0`` and ``--workers auto`` leave gradwise's own choice; each run is a fresh
process, one at a time. ``--population off`` runs once per seed: it is one worker under auto.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time


def tune(seed: int, timeout: int, population: str, workers: str, threads: int, out: str) -> dict:
    command = [sys.executable, "-m", "gradwise", "tune", "--seed", str(seed), "--timeout", str(timeout),
               "--population", population, "--workers", workers, "--out", out, "--json"]
    if threads:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr}")
    document = json.loads(proc.stdout)
    document["_seconds"] = time.perf_counter() - started
    return document


def summary(document: dict) -> tuple[str, float]:
    trials = document["trials"]
    finished = trials["complete"] + trials["pruned"]
    measured = [row for row in document.get("importance", []) if row.get("empirical") is not None]
    basis = measured[0].get("basis", "complete trials") if measured else "-"
    accuracy = document["final"]["test"]["accuracy"]
    best = document.get("best") or {}
    line = (f"{finished:4d} trials ({trials['complete']:3d} complete, {trials['pruned']:3d} pruned), best CV {document.get('metric', 'value')} {best.get('value', float('nan')):.4f}, "
            f"importance for {len(measured)} parameters ({basis}), test accuracy {accuracy:.4f}, {document['_seconds']:.0f} s wall")
    return line, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--population", nargs="+", default=["auto", "off"])
    parser.add_argument("--workers", nargs="+", default=["auto", "1"])
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    settings = [(p, w) for p in args.population for w in (args.workers if p != "off" else ["auto"])]
    for population, workers in settings:
        label = f"--population {population:4s} --workers {workers:4s}"
        accuracies = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                line, accuracy = summary(tune(seed, args.timeout, population, workers, args.threads, f"{tmp}/run"))
            accuracies.append(accuracy)
            print(f"{label} seed {seed}: {line}", flush=True)
        print(f"{label}: mean test accuracy {statistics.mean(accuracies):.4f} over {len(accuracies)} seeds", flush=True)


if __name__ == "__main__":
    main()
