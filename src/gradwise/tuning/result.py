"""What ``gradwise tune`` hands back once the search is over.

- the best trial's configuration;
- that configuration trained once more the way ``gradwise train`` trains, tested once and
  saved as a bundle that ``gradwise predict`` loads (:mod:`gradwise.tuning.final`);
- with cross-validation, the untuned defaults unless the best trial beats them fold by
  fold by more than one standard error of the paired differences (:func:`choose_final`):
  among near-ties the search's winner is mostly its luckiest draw;
- every trial as a CSV row (``study.trials_dataframe()``), with why it was pruned or failed;
- the empirical importance of each hyperparameter (Optuna's fANOVA evaluator, PED-ANOVA if
  fANOVA cannot run) next to the document's ranking.

Importance is computed over all completed trials with each trial's *full* configuration:
a parameter that a stage held fixed still has a value in that trial (its default or the
best value so far), so trials from all stages are comparable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import GradwiseError
from ..files import atomic_write
from .final import MODEL_DIR, final_time_limit, retrain_best  # noqa: F401  (MODEL_DIR: part of this module's interface)
from .runner import Counts, count_trials, failed_from_the_start
from .space import SearchSpace, to_raw_value
from .spec import TuneSpec

TRIALS_CSV = "trials.csv"
_CSV_DROP = ("user_attrs_config", "system_attrs_fixed_params")


@dataclass
class TuneResult:
    study_name: str
    metric: str
    direction: str
    counts: Counts
    best: dict[str, Any]
    untuned: float | None
    final: dict[str, Any] = field(default_factory=dict)
    importance: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "study": self.study_name,
            "metric": self.metric,
            "direction": self.direction,
            "trials": {"complete": c.complete, "pruned": c.pruned, "failed": c.failed, "retried": c.retried, "running": c.running, "waiting": c.waiting},
            "untuned_val": self.untuned,
            "best": self.best,
            "final": self.final,
            "importance": self.importance,
            "files": self.files,
        }


def best_trial_summary(study: optuna.Study) -> dict[str, Any]:
    try:
        best = study.best_trial
    except ValueError:
        counts = count_trials(study)
        hint = "the search stopped there, since more trials would fail the same way" if failed_from_the_start(counts) else "give the search more budget (--trials/--timeout) or a narrower --space"
        raise GradwiseError(f"no trial completed ({counts.pruned} pruned, {counts.failed} failed{first_reason(study)}); {hint}") from None
    return {
        "trial": best.number,
        "value": best.value,
        "config": best.user_attrs.get("config"),
        "params": best.params,
        "stage": best.user_attrs.get("stage"),
        "best_epoch": best.user_attrs.get("best_epoch"),
    }


def first_reason(study: optuna.Study) -> str:
    """"; the first failed trial said: ..." (or the first pruned one's reason), so a search that
    never completed a trial tells why without the user opening the study."""
    for state, attr in ((TrialState.FAIL, "fail_reason"), (TrialState.PRUNED, "prune_reason")):
        for trial in study.get_trials(deepcopy=False, states=(state,)):
            reason = trial.user_attrs.get(attr)
            if reason:
                return f"; the first {'failed' if state == TrialState.FAIL else 'pruned'} trial said: {' '.join(str(reason).split())}"
    return ""


def untuned_value(study: optuna.Study) -> float | None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get("untuned"):
            return trial.value
    return None


def choose_final(study: optuna.Study, best: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(trial summary, why) of the configuration to keep: the best trial, or the untuned one.

    Only with cross-validation (trials carry ``fold_values``): the best trial must beat the
    untuned defaults by more than one standard error of the per-fold paired differences,
    else the defaults are kept.
    """
    untuned = next((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("untuned")), None)
    winner = study.best_trial
    if untuned is None or untuned.number == winner.number:
        return best, "best trial"
    mine, base = winner.user_attrs.get("fold_values"), untuned.user_attrs.get("fold_values")
    if not mine or not base or len(mine) != len(base) or len(mine) < 2:
        return best, "best trial"
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    gains = [sign * (b - m) for m, b in zip(mine, base)]
    mean = sum(gains) / len(gains)
    se = math.sqrt(sum((g - mean) ** 2 for g in gains) / (len(gains) - 1) / len(gains))
    if mean > se:
        return best, f"best trial (beats the untuned defaults by {mean:.4g} ± {se:.4g} over {len(gains)} folds)"
    kept = dict(best, trial=untuned.number, value=untuned.value, config=untuned.user_attrs.get("config"), params=untuned.params, stage=untuned.user_attrs.get("stage"), best_epoch=untuned.user_attrs.get("best_epoch"))
    return kept, f"untuned defaults (trial {winner.number}'s gain {mean:.4g} is within one standard error {se:.4g} over {len(gains)} folds)"


def write_trials_csv(study: optuna.Study, path: Path) -> Path:
    frame = study.trials_dataframe()
    frame = frame.drop(columns=[c for c in _CSV_DROP if c in frame.columns])
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))  # complete or absent
    return path


MIN_IMPORTANCE_TRIALS = 10  # complete trials (or trials at one rung) before any empirical importance is reported
# With fewer complete trials, importance is measured at a rung once this many trials have
# finished: a Hyperband study prunes most trials, but each reported its validation metric at
# the rungs it reached, so the highest epoch that at least MIN_IMPORTANCE_TRIALS of them
# reached compares them all on the same budget (BOHB's per-budget analysis).
MIN_RUNG_TRIALS = 20


def _configured(trial: Any) -> dict[str, Any] | None:
    return trial.user_attrs.get("config")


def final_values(study: optuna.Study) -> list[tuple[dict[str, Any], float]]:
    """(config, value) of every complete trial."""
    return [(_configured(t), t.value) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if _configured(t) and math.isfinite(t.value)]


def rung_values(study: optuna.Study) -> tuple[list[tuple[dict[str, Any], float]], int | None]:
    """(config, value at epoch e) of every finished trial that reached e, for the highest epoch e
    that at least MIN_IMPORTANCE_TRIALS reached; a complete trial that stopped early (patience)
    counts with its last value. ([], None) when no epoch has enough."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
              if _configured(t) and t.intermediate_values]
    if len(trials) < MIN_RUNG_TRIALS:
        return [], None
    for epoch in sorted({e for t in trials for e in t.intermediate_values}, reverse=True):
        values = [(_configured(t), v) for t in trials if (v := _value_at(t, epoch)) is not None and math.isfinite(v)]
        if len(values) >= MIN_IMPORTANCE_TRIALS:
            return values, epoch
    return [], None


def _value_at(trial: Any, epoch: int) -> float | None:
    values = trial.intermediate_values
    if epoch in values:
        return values[epoch]
    if trial.state == TrialState.COMPLETE and max(values) < epoch:
        return values[max(values)]
    return None


def importance_table(study: optuna.Study, space: SearchSpace) -> list[dict[str, Any]]:
    """Empirical importance of each searched parameter beside the document's tier, largest first.

    Over the complete trials' final values when there are enough of them; else over every
    finished trial's validation metric at the highest rung enough of them reached (each
    row's ``basis`` says which)."""
    params = [p for p in space.params.values() if p.kind != "categorical"]
    observed = final_values(study)
    basis = f"final values of {len(observed)} complete trials"
    if len(observed) < MIN_IMPORTANCE_TRIALS:
        at_rung, epoch = rung_values(study)
        if at_rung:
            observed, basis = at_rung, f"validation metric at epoch {epoch} of the {len(at_rung)} trials that reached it (complete or pruned)"
    rows_of_values = [({p.name: _clip(p, to_raw_value(p, config.get(p.name, p.default))) for p in params}, value) for config, value in observed]
    # A parameter that never changed explains nothing; leaving it in would hand it a share.
    # Nor do a handful of trials: fANOVA fitted on 4 points hands out shares that are noise.
    enough = len(rows_of_values) >= MIN_IMPORTANCE_TRIALS
    varied = [p for p in params if enough and len({values[p.name] for values, _ in rows_of_values}) > 1]
    scratch = optuna.create_study(direction=study.direction)
    for values, value in rows_of_values:
        scratch.add_trial(optuna.create_trial(params={p.name: values[p.name] for p in varied}, distributions={p.name: p.distribution() for p in varied}, value=value))
    scores, method = _evaluate(scratch) if varied else ({}, None)
    rows = [{"param": p.name, "empirical": scores.get(p.name), "document": p.tier, "searched": p.enabled} for p in params]
    rows.sort(key=lambda r: -(r["empirical"] or 0.0))
    for row in rows:
        row["method"] = method
        row["basis"] = basis if method else None
    return rows


def _clip(param: Any, raw: Any) -> float:
    if raw is None:
        return param.low
    return min(max(raw, param.low), param.high)


def _evaluate(study: optuna.Study) -> tuple[dict[str, float], str | None]:
    if len(study.trials) < 3:
        return {}, None
    evaluators = [("fanova", optuna.importance.FanovaImportanceEvaluator(seed=0)), ("ped_anova", optuna.importance.PedAnovaImportanceEvaluator())]
    for name, evaluator in evaluators:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), name
        except Exception:  # too few or constant trials for this evaluator: try the next
            continue
    return {}, None


def interim_result(study: optuna.Study, spec: TuneSpec, out_dir: str | Path) -> TuneResult:
    """The search so far, without a final model: what an interrupted tune reports. Its best
    is empty while no trial has completed (all finished ones were pruned)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = best_trial_summary(study) if complete else {}
    result = TuneResult(study.study_name, metric_of(study, spec), study.direction.name.lower(), count_trials(study), best, untuned_value(study))
    result.files["trials_csv"] = str(Path(out_dir) / TRIALS_CSV)
    result.importance = importance_table(study, spec.search_space())
    return result


def metric_of(study: optuna.Study, spec: TuneSpec) -> str:
    """The study's metric without its table: the spec's, else the task's default, which the
    study's direction tells apart (accuracy is maximized, RMSE minimized)."""
    from .objective import DEFAULT_METRIC, METRICS

    direction = study.direction.name.lower()
    return spec.metric or next(m for m in DEFAULT_METRIC.values() if METRICS[m] == direction)


def finalize(study: optuna.Study, spec: TuneSpec, splits: Any, out_dir: str | Path, retrain: bool = True, progress: bool = False,
             search_seconds: float | None = None) -> TuneResult:
    """The result of a search that ran ``search_seconds`` (which bounds the final training)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best = best_trial_summary(study)
    metric = spec.metric_for(splits.task)
    result = TuneResult(study.study_name, metric, study.direction.name.lower(), count_trials(study), best, untuned_value(study))
    result.files["trials_csv"] = str(write_trials_csv(study, out_dir / TRIALS_CSV))
    result.importance = importance_table(study, spec.search_space())
    if retrain:
        chosen, why = choose_final(study, best)
        result.final = retrain_best(chosen, splits, out_dir, spec, progress, final_time_limit(search_seconds))
        result.final["chosen"] = why
        result.final["trial"] = chosen["trial"]
        result.files["model"] = result.final["bundle"]
    return result
