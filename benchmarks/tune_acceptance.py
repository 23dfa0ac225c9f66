"""The acceptance runs of `gradwise tune`, through the command line as a user types them.

1. builtin:breast_cancer, --trials 30: the retrained best model's test accuracy (goal >= 0.95).
2. builtin:diabetes: test RMSE of an untuned `gradwise train` against `gradwise tune --trials 30`,
   on three split seeds (the test split has 66 rows).

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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds for diabetes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bc = gradwise("tune", "--data", "builtin:breast_cancer", "--trials", str(args.trials), "--out", f"{tmp}/bc")
        accuracy = bc["final"]["test"]["accuracy"]
        print(f"breast_cancer: tune --trials {args.trials}: test accuracy {accuracy:.4f} (goal >= 0.95: {'met' if accuracy >= 0.95 else 'NOT met'}); {bc['_seconds']:.0f}s")

        # Diabetes has 66 test rows, so one split decides little: report three splits.
        rows = []
        for seed in args.seeds:
            untuned = gradwise("train", "--data", "builtin:diabetes", "--seed", str(seed))
            tuned = gradwise("tune", "--data", "builtin:diabetes", "--seed", str(seed), "--trials", str(args.trials), "--out", f"{tmp}/diabetes{seed}")
            before, after = untuned["metrics"]["test"]["rmse"], tuned["final"]["test"]["rmse"]
            rows.append((before, after))
            best = {k: tuned["best"]["config"][k] for k in ("lr", "hidden", "batch_size", "layers", "lr_decay")}
            print(f"diabetes --seed {seed}: untuned train test RMSE {before:.2f}; tune --trials {args.trials} test RMSE {after:.2f} ({'beats' if after < before else 'does NOT beat'} untuned; val {tuned['untuned_val']:.2f} -> {tuned['best']['value']:.2f}); best {json.dumps(best)}; kept: {tuned['final'].get('chosen')}")
        mean_before, mean_after = (sum(r[i] for r in rows) / len(rows) for i in (0, 1))
        print(f"diabetes mean over seeds {args.seeds}: untuned {mean_before:.2f}, tuned {mean_after:.2f} ({'beats' if mean_after < mean_before else 'does NOT beat'} untuned)")

if __name__ == "__main__":
    main()
