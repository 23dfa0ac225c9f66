"""The acceptance runs of `gradwise tune`, through the command line as a user types them.

1. builtin:breast_cancer, --trials 30: the retrained best model's test accuracy (goal >= 0.95).
2. builtin:diabetes: test RMSE of an untuned `gradwise train` against `gradwise tune --trials 30`.

Run:  python benchmarks/tune_acceptance.py [--trials 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def gradwise(*args: str) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gradwise", *args, "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"gradwise {' '.join(args)} failed:\n{proc.stderr}")
    document = json.loads(proc.stdout)
    document["_seconds"] = time.perf_counter() - started
    return document


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bc = gradwise("tune", "--data", "builtin:breast_cancer", "--trials", str(args.trials), "--out", f"{tmp}/bc")
        accuracy = bc["final"]["test"]["accuracy"]
        print(f"breast_cancer: tune --trials {args.trials}: test accuracy {accuracy:.4f} (goal >= 0.95: {'met' if accuracy >= 0.95 else 'NOT met'}); {bc['_seconds']:.0f}s")

        untuned = gradwise("train", "--data", "builtin:diabetes")
        tuned = gradwise("tune", "--data", "builtin:diabetes", "--trials", str(args.trials), "--out", f"{tmp}/diabetes")
        before, after = untuned["metrics"]["test"]["rmse"], tuned["final"]["test"]["rmse"]
        print(f"diabetes: untuned train test RMSE {before:.2f}; tune --trials {args.trials} test RMSE {after:.2f} ({'beats' if after < before else 'does NOT beat'} untuned); {tuned['_seconds']:.0f}s")
        print(f"diabetes best configuration: {json.dumps({k: tuned['best']['config'][k] for k in ('lr', 'hidden', 'batch_size', 'layers', 'lr_decay')})}")


if __name__ == "__main__":
    main()
