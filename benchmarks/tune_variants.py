"""Population settings of the staged search, one variant at a time, on tune_efficiency.py's set-up.

Runs ``staged_pop_1w`` (the staged search with populations in this one process) for
``--seeds`` seeds with one module constant changed, and prints the best validation score
at 20%, 50% and 100% of the budget per seed, then the mean and median over seeds. The
figures in the closing note of issue 12 (stop 21) came from this script.

Variants: ``base`` (as shipped), ``pt1`` (POPULATION_TRIALS = 1: no refills held to a
population's shape), ``free`` (SHAPED_FOLDS = 0: shapes never pinned), ``kN`` (AUTO_TRIALS =
N trials per population), ``capN`` (strategies.STAGE_TRIALS = N: a stage ends after N
trials per parameter it opens; a large N is the share-only rule from before).

Run:  python benchmarks/tune_variants.py breast_cancer 30 6 free
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).parent))
import tune_efficiency as te  # noqa: E402 - the benchmark beside this one

from gradwise import load_table, split_table  # noqa: E402
from gradwise.tuning import populations  # noqa: E402

FRACTIONS = (0.2, 0.5, 1.0)


def apply(variant: str) -> None:
    if variant == "pt1":
        populations.POPULATION_TRIALS = 1
    elif variant == "free":
        populations.SHAPED_FOLDS = 0
    elif variant.startswith("k"):
        populations.AUTO_TRIALS = int(variant[1:])
    elif variant.startswith("cap"):
        from gradwise.tuning import strategies
        strategies.STAGE_TRIALS = int(variant[3:])
    elif variant != "base":
        raise SystemExit(f"unknown variant {variant!r}: base, pt1, free or kN")


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dataset, budget, seeds, variant = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    metric = te.DATASETS[dataset]
    apply(variant)
    te.warm_up()
    splits = split_table(load_table(f"builtin:{dataset}"), seed=0)
    rows = []
    for seed in range(seeds):
        started = time.time()
        study = te.run_gradwise("staged_pop_1w", dataset, splits, metric, seed, budget)
        points = te.curve(study, started)
        rows.append([te.best_at(points, budget * f) for f in FRACTIONS])
        print(variant, seed, ["%.4f" % v for v in rows[-1]], len(study.trials), flush=True)
    columns = list(zip(*rows))
    print(dataset, variant, "MEAN", ["%.4f" % statistics.fmean(c) for c in columns], "MEDIAN", ["%.4f" % statistics.median(c) for c in columns])


if __name__ == "__main__":
    main()
