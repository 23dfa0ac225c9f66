"""Tuning evidence: the search's history with the staged search's three stages shaded,
the per-epoch values that the pruner judged (which trials it stopped and why), each
hyperparameter's measured importance next to the document's ranking, the parallel
coordinates of the searched parameters, and the untuned baseline against the final model.
History and parallel coordinates come from ``optuna.visualization``."""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import optuna
from optuna.trial import TrialState

from ..page import Figure, TableBlock
from .style import LEGEND, MARGIN, TEMPLATE, new_figure

STAGES = {0: "stage 1: α", 1: "stage 2: medium", 2: "stage 3: low"}
STAGE_COLOURS = {0: "rgba(74,111,165,0.10)", 1: "rgba(230,161,0,0.10)", 2: "rgba(39,174,96,0.10)"}
TIER_COLOURS = {"high": "#c0392b", "medium": "#e6a100", "low": "#27ae60", "never": "#7f8c8d"}


def _styled(figure: Any, title: str) -> Any:
    figure.update_layout(title={"text": title, "x": 0.01}, template=TEMPLATE, margin=MARGIN, legend=LEGEND)
    return figure


def stage_spans(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[int, int, int]]:
    """(stage, first trial number, last trial number) for each run of consecutive trials."""
    spans: list[list[int]] = []
    for trial in sorted(trials, key=lambda t: t.number):
        stage = trial.user_attrs.get("stage")
        if stage is None:
            continue
        if spans and spans[-1][0] == stage:
            spans[-1][2] = trial.number
        else:
            spans.append([stage, trial.number, trial.number])
    return [tuple(s) for s in spans]  # type: ignore[misc]


def history_figure(study: optuna.Study, metric: str) -> Figure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its plots experimental
        figure = optuna.visualization.plot_optimization_history(study, target_name=f"validation {metric}")
    labelled: set[int] = set()
    for stage, first, last in stage_spans(study.get_trials(deepcopy=False)):
        figure.add_vrect(x0=first - 0.5, x1=last + 0.5, fillcolor=STAGE_COLOURS.get(stage, "rgba(0,0,0,0.05)"), line_width=0, layer="below")
        if stage not in labelled:  # one label per stage, one line each, so short stages' labels do not overlap
            figure.add_annotation(text=STAGES.get(stage, f"stage {stage}"), x=first - 0.5, xanchor="left", yref="paper",
                                  y=1.0 - 0.07 * len(labelled), yanchor="top", showarrow=False, font={"size": 10})
            labelled.add(stage)
    return Figure("tune_history", _styled(figure, "Optimization history"), "Each completed trial's validation value and the best so far. "
                  "Shaded: the staged search's stages, α alone first, then the medium tier around it, then the low tier.")


def intermediate_figure(study: optuna.Study, metric: str) -> Figure:
    figure = new_figure("Per-epoch validation values and what the pruner stopped", "epoch", f"validation {metric}")
    shown = {"complete": False, "pruned": False}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if not trial.intermediate_values:
            continue
        state = "pruned" if trial.state == TrialState.PRUNED else "complete"
        steps = sorted(trial.intermediate_values)
        reason = trial.user_attrs.get("prune_reason") or ("pruned by the pruner" if state == "pruned" else "complete")
        figure.add_scatter(x=steps, y=[trial.intermediate_values[s] for s in steps], mode="lines", name=state, legendgroup=state,
                           showlegend=not shown[state], hovertext=f"trial {trial.number}: {reason}", hoverinfo="text+y",
                           line={"color": "#c0392b" if state == "pruned" else "#4a6fa5", "width": 1}, opacity=0.6)
        shown[state] = True
    return Figure("tune_intermediate", figure, "Each line is a trial's validation value per epoch; red ones were pruned "
                  "(the reason is in the hover text and in the table below).")


def importance_figure(rows: list[dict[str, Any]]) -> Figure:
    rows = [r for r in rows if r.get("searched", True)]
    figure = new_figure("Measured importance next to the document's ranking", "hyperparameter", "empirical importance (share)")
    figure.add_bar(x=[r["param"] for r in rows], y=[r.get("empirical") for r in rows], name="measured",
                   marker_color=[TIER_COLOURS.get(r.get("document"), "#4a6fa5") for r in rows],
                   text=[f"document: {r.get('document')}" for r in rows], textposition="outside")
    figure.update_xaxes(type="category")
    if not any(r.get("empirical") for r in rows):
        figure.update_yaxes(range=[0, 1])
        figure.add_annotation(text="not measured: too few complete trials", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.6)
    method = next((r.get("method") for r in rows if r.get("method")), None)
    caption = f"Bars: each parameter's share of the explained variance ({method or 'not enough complete trials'}); " \
              "colour and label: the document's ranking (high, medium, low, never)."
    return Figure("tune_importance", figure, caption)


def parallel_figure(study: optuna.Study) -> Figure | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure = optuna.visualization.plot_parallel_coordinate(study)
    return Figure("tune_parallel", _styled(figure, "Parallel coordinates of the searched parameters"),
                  "One line per completed trial across its parameter values, coloured by its validation value.")


def baseline_figure(result: dict[str, Any]) -> Figure:
    metric = result.get("metric", "value")
    final = result.get("final") or {}
    bars = [("untuned defaults (validation)", result.get("untuned_val")), ("best trial (validation)", (result.get("best") or {}).get("value"))]
    if final:  # an interrupted search has none: no empty bar for it
        bars.append(("final model (test)", (final.get("test") or {}).get(metric)))
    figure = new_figure(f"Untuned baseline against the tuned model ({metric})", "", metric)
    figure.add_bar(x=[b[0] for b in bars], y=[b[1] for b in bars], marker_color=["#7f8c8d", "#4a6fa5", "#27ae60"][: len(bars)],
                   text=[f"{b[1]:.4g}" if isinstance(b[1], float) else "-" for b in bars], textposition="outside")
    about = (f"the final model on the test rows, measured once. Final: {final.get('chosen', '-')}." if final
             else "no final model yet: the search was interrupted (--resume trains it).")
    return Figure("tune_baseline", figure, "The untuned defaults and the best trial on the validation rows (with --cv, the mean over "
                  f"folds); {about}")


def tune_figures(study: optuna.Study, result: dict[str, Any]) -> list[Figure]:
    metric = result.get("metric", "value")
    figures = [history_figure(study, metric), intermediate_figure(study, metric), importance_figure(result.get("importance") or []),
               parallel_figure(study), baseline_figure(result)]
    return [f for f in figures if f is not None]


def trials_table(study: optuna.Study) -> TableBlock:
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    reasons = Counter(t.user_attrs.get("prune_reason") or "pruned by the pruner (below the rung's cut)"
                      for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    rows = [[state, n] for state, n in counts.most_common()] + [[f"pruned: {why}", n] for why, n in reasons.most_common(8)]
    return TableBlock("Trials", ["state", "count"], rows)


def importance_table(rows: list[dict[str, Any]]) -> TableBlock:
    body = [[r["param"], r.get("document"), r.get("empirical"), "yes" if r.get("searched", True) else "no"] for r in rows]
    return TableBlock("Importance", ["hyperparameter", "document", "measured", "searched"], body)
