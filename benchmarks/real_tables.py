"""Real-table shapes: gaps, a 4,000-level string column, date-time strings, millions of rows.

    python benchmarks/real_tables.py            # the issue's sizes (300k and 3M rows; minutes)
    python benchmarks/real_tables.py --quick    # a tenth of the rows, one epoch: a smoke test

Every training runs as ``gradwise train`` in a child process, which reports its own peak
RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), so one case's memory never hides in
another's. Cases:

1. **flights**: a flights-like table (a 4,000-level tail number, a date-time string column,
   10% gaps in three numeric columns, gaps in the carrier column, a row counter). Goal: peak
   RSS <= 2 GB at 300,000 rows.
2. **flights x10**: the same with 3,000,000 rows under ``--max-memory 2G``: it trains within
   the budget or stops at once with one line.
3. **cardinality**: the flights table with ``--max-categories`` 16, 100 and 400, the choice
   between a tighter and a looser frequency cap (the default is 100).
4. **missing not at random**: the gap itself predicts the target; ``--missing impute`` (the
   default, median plus indicator) against ``--missing drop``, both scored by ``predict`` on
   the same held-out table (gaps included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GOAL_RSS_GB = 2.0


def flights(n: int, seed: int = 0) -> pd.DataFrame:
    """A table shaped like the 336,776-row flights table the issue tried."""
    rng = np.random.default_rng(seed)
    tails = np.array([f"N{i:05d}" for i in range(4000)])
    popularity = 1.0 / np.arange(1, 4001) ** 0.8
    tail = rng.choice(4000, n, p=popularity / popularity.sum())
    carriers = np.array(list("ABCDEFGHIJKLMNOP"))
    carrier = rng.integers(0, 16, n)
    when = pd.Timestamp("2013-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h")
    distance = rng.gamma(4.0, 300.0, n)
    dep_delay = rng.exponential(12.0, n) - 5
    air_time = distance / 8 + rng.normal(0, 10, n)
    arr_delay = dep_delay + 0.002 * distance + 3 * np.sin(when.hour.to_numpy() / 24 * 2 * np.pi) + (carrier - 8) * 0.8 + (tail % 7 - 3) * 0.5 + rng.normal(0, 5, n)
    frame = pd.DataFrame({
        "id": np.arange(1, n + 1), "tail": tails[tail], "carrier": carriers[carrier].astype(object),
        "time_hour": when.strftime("%Y-%m-%d %H:%M:%S"), "distance": distance, "dep_delay": dep_delay, "air_time": air_time,
        "arr_delay": arr_delay,
    })
    for name in ("distance", "dep_delay", "air_time"):
        frame.loc[rng.random(n) < 0.10, name] = np.nan
    frame.loc[rng.random(n) < 0.03, "carrier"] = None
    return frame


def not_at_random(n: int, seed: int = 0) -> pd.DataFrame:
    """A 'budget' column missing in most rows, and missing mostly where the label is 'flop'."""
    rng = np.random.default_rng(seed)
    budget = rng.lognormal(3, 1, n)
    votes = rng.normal(size=n)
    hit = (votes + 0.5 * np.log(budget) + rng.normal(0, 0.7, n)) > 1.5
    gap = rng.random(n) < np.where(hit, 0.5, 0.95)
    return pd.DataFrame({"budget": np.where(gap, np.nan, budget), "votes": votes, "label": np.where(hit, "hit", "flop")})


# -- child processes ------------------------------------------------------------------------
def run_gradwise(args: list[str], limit_gb: float | None = None) -> dict:
    """``gradwise ARGS`` in a child; its exit code, last stderr line, JSON output, peak RSS and time."""
    code = (
        "import json, resource, sys\n"
        "from gradwise.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print(json.dumps({'rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'code': code}), file=sys.stderr)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, preexec_fn=_limit(limit_gb))
    wall = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"rss_kb": 0, "code": done.returncode}
    messages = [line for line in lines[:-1] if line.startswith("gradwise:")]
    try:
        output = json.loads(done.stdout)
    except json.JSONDecodeError:
        output = None
    return {"code": report["code"], "rss_gb": report["rss_kb"] / 2**20, "wall_s": wall, "json": output, "messages": messages}


def _limit(limit_gb: float | None):
    """An address-space cap for the child, so a regression cannot take the machine down."""
    if limit_gb is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30), resource.RLIM_INFINITY))


def test_metric(result: dict) -> str:
    if not result["json"]:
        return "-"
    test = result["json"].get("metrics", {}).get("test", {}) or result["json"].get("score") or {}
    return ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k in ("rmse", "accuracy"))


def row(name: str, n_rows: int, n_columns: int, result: dict) -> None:
    print(f"{name:<28} {n_rows:>10,} {n_columns:>7} {result['wall_s']:>8.1f} {result['rss_gb']:>7.2f}  exit {result['code']}  {test_metric(result)}")
    for message in result["messages"]:
        print(f"{'':<28} {message}")


# -- cases ----------------------------------------------------------------------------------
def flights_case(work: Path, n: int, epochs: int, label: str, extra: list[str] = (), limit_gb: float | None = 6.0) -> dict:
    path = work / f"flights_{n}.csv"
    if not path.exists():
        flights(n).to_csv(path, index=False)
    result = run_gradwise(["train", "--data", str(path), "--target", "arr_delay", "--epochs", str(epochs), "--batch-size", "512", "--json", *extra], limit_gb)
    row(label, n, 8, result)
    return result


def mnar_case(work: Path, n: int, epochs: int) -> dict[str, dict]:
    train, held_out = work / "mnar.csv", work / "mnar_test.csv"
    not_at_random(n, 0).to_csv(train, index=False)
    not_at_random(max(2000, n // 4), 1).to_csv(held_out, index=False)
    scores = {}
    for missing in ("impute", "drop"):
        model = work / f"mnar_{missing}"
        trained = run_gradwise(["train", "--data", str(train), "--missing", missing, "--epochs", str(epochs), "--out", str(model), "--json"])
        scored = run_gradwise(["predict", "--model", str(model), "--data", str(held_out), "--json"])
        scored["wall_s"], scored["rss_gb"], scored["messages"] = trained["wall_s"], trained["rss_gb"], trained["messages"]
        row(f"MNAR --missing {missing}", n, 2, scored)
        scores[missing] = (scored["json"] or {}).get("score", {}).get("accuracy", float("nan"))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows and one epoch")
    args = parser.parse_args()
    scale, epochs = (10, 1) if args.quick else (1, 3)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"{'case':<28} {'rows':>10} {'columns':>7} {'wall s':>8} {'peak GB':>7}  exit  test metric")
        big = flights_case(work, 300_000 // scale, epochs, "flights")
        # Same budget ratio in --quick: a tenth of the rows against a tenth of the memory.
        budget = "2G" if not args.quick else "200MB"
        huge = flights_case(work, 3_000_000 // scale, epochs, f"flights x10, --max-memory {budget}", ["--max-memory", budget], limit_gb=12.0)
        for cap in (16, 100, 400):
            flights_case(work, 300_000 // scale, epochs, f"flights --max-categories {cap}", ["--max-categories", str(cap)])
        scores = mnar_case(work, 20_000 // scale * 2, max(epochs, 20 if args.quick else 40))
    print()
    print(f"flights peak RSS {big['rss_gb']:.2f} GB (goal <= {GOAL_RSS_GB} GB): {'met' if big['rss_gb'] <= GOAL_RSS_GB and big['code'] == 0 else 'NOT met'}")
    print(f"flights x10: exit {huge['code']} after {huge['wall_s']:.1f} s: {'trained' if huge['code'] == 0 else 'stopped with one line' if len(huge['messages']) and huge['code'] == 2 else 'FAILED'}")
    print(f"missing not at random: impute {scores['impute']:.4f} vs drop {scores['drop']:.4f} test accuracy: {'impute wins' if scores['impute'] > scores['drop'] else 'impute does NOT win'}")


if __name__ == "__main__":
    main()
