"""A tune result's evidence recomputed from an Optuna study alone, for
``gradwise.report.write(study, path)`` on a study that no ``gradwise tune`` result came with."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.trial import TrialState


def _tiers() -> dict[str, str]:
    from ..tuning.space import default_space

    return {name: p.tier for name, p in default_space("momentum").params.items()} | {name: p.tier for name, p in default_space("adam").params.items()}


def importance_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """gradwise's importance table when the study carries its spec, else Optuna's own
    evaluator over the study's parameters, each labelled with the document's tier."""
    from ..tuning.result import importance_table
    from ..tuning.spec import SPEC_ATTR, TuneSpec

    spec = study.user_attrs.get(SPEC_ATTR)
    if spec:
        return importance_table(study, TuneSpec.from_dict(spec).search_space())
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    scores: dict[str, float] = {}
    if len(complete) >= 10:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = dict(optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()))
    tiers = _tiers()
    names = sorted({n for t in complete for n in t.params}, key=lambda n: -scores.get(n, 0.0))
    return [{"param": n, "empirical": scores.get(n), "document": tiers.get(n, "-"), "searched": True, "method": "ped_anova" if scores else None} for n in names]


def summarize(study: optuna.Study) -> dict[str, Any]:
    from ..tuning.spec import SPEC_ATTR

    spec = study.user_attrs.get(SPEC_ATTR) or {}
    try:
        best = study.best_trial
    except ValueError:
        best = None
    untuned = next((t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("untuned")), None)
    return {
        "study": study.study_name,
        "metric": spec.get("metric") or "value",
        "direction": study.direction.name.lower(),
        "untuned_val": untuned,
        "best": {"trial": best.number, "value": best.value, "config": best.user_attrs.get("config") or best.params} if best else {},
        "final": {},
        "importance": importance_rows(study),
    }
