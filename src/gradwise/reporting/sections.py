"""From a report document (plain JSON) to the page's sections, per kind of run."""

from __future__ import annotations

from typing import Any

from .figures.chain import chain_figure, chain_table
from .figures.compare import compare_figures, compare_table
from .figures.flow import flow_figures
from .figures.quadratic import path_table_rows
from .figures.run import columns_table, config_table, data_table, metrics_table, run_figures
from .page import Section, TableBlock

KIND_TITLES = {"train": "Training run", "diagnose": "Diagnosis", "compare": "Optimizer comparison", "tune": "Tuning study"}


def run_section(document: dict[str, Any]) -> Section | None:
    run = document.get("run")
    if not run:
        return None
    stop = f"{run.get('epochs_run')} epochs, {run.get('updates')} updates, {run.get('seconds', 0):.1f}s; {run.get('stop_reason')}"
    stop += "".join(f". Warning: {w}" for w in run.get("warnings") or [])
    tables = [metrics_table(run), config_table(run.get("config") or {})]
    return Section("Run", stop, run_figures(run), tables)


def data_section(document: dict[str, Any]) -> Section | None:
    data = document.get("data")
    if not data:
        return None
    return Section("Data", "", [], [data_table(data)] + ([columns_table(data)] if data.get("columns") else []))


def finding_view(finding: dict[str, Any]) -> dict[str, Any]:
    from ..diagnosis import report  # the terminal's one-line meanings, shared so both say the same

    meaning = getattr(report, "MEANING", {}).get(finding.get("problem"), "")
    return {**finding, "meaning": meaning, "evidence_text": evidence_text(finding.get("evidence") or {})}


def evidence_text(evidence: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(show(v) for v in value) + "]"
        return str(value)

    return "; ".join(f"{key} {show(value)}" for key, value in evidence.items())


def flow_section(document: dict[str, Any]) -> Section | None:
    flow, diagnosis = document.get("flow"), document.get("diagnosis")
    if not flow and not diagnosis:
        return None
    section = Section("Gradient flow", flow_intro(flow or {}, diagnosis or {}), flow_figures(flow or {}))
    if diagnosis:
        section.findings = [finding_view(f) for f in diagnosis.get("findings") or []]
        if diagnosis.get("layers"):
            columns = ["layer", "activation", "grad_norm", "gain", "saturation", "dead", "update_ratio"]
            section.tables.append(TableBlock("Per layer (medians over observed steps)", columns, [[row.get(c) for c in columns] for row in diagnosis["layers"]]))
    return section


def flow_intro(flow: dict[str, Any], diagnosis: dict[str, Any]) -> str:
    steps = len(flow.get("steps") or [])
    kept = flow.get("kept_every") or 1
    shown = f"{steps} observed steps (every {flow.get('every', '?')}{f'; every {kept}th of them kept' if kept > 1 else ''})" if flow else ""
    verdict = "Healthy: no finding above info." if diagnosis.get("healthy") else "Findings below, the one to act on first at the top, each with its evidence and fixes."
    return f"{shown}. {verdict if diagnosis else ''}".strip(". ") + "."


def chain_section(document: dict[str, Any]) -> Section | None:
    chain = document.get("chain")
    if not chain or not chain.get("rows"):
        return None
    return Section("The chain: w·g'(z) per layer, multiplied", "The document's single-neuron chain with this run's activation.",
                   [chain_figure(chain)], [chain_table(chain)])


def compare_section(document: dict[str, Any]) -> Section | None:
    compare = document.get("compare")
    if not compare:
        return None
    paths = TableBlock("Paths on the quadratic", ["optimizer", "final J", "zig-zag"], path_table_rows())
    return Section("Optimizers side by side", "", compare_figures(compare), [compare_table(compare), paths])


def tune_section(document: dict[str, Any], study: Any) -> Section | None:
    tune = document.get("tune")
    if not tune or study is None:
        return None
    from .figures.tune import importance_table, trials_table, tune_figures

    result = tune.get("result") or {}
    best = result.get("best") or {}
    tables = [trials_table(study), importance_table(result.get("importance") or [])]
    if best.get("config"):
        tables.append(TableBlock(f"Best configuration (trial {best.get('trial')})", ["option", "value"], [[k, v] for k, v in best["config"].items()]))
    return Section("Tuning", tune_intro(tune), tune_figures(study, result), tables)


def tune_intro(tune: dict[str, Any]) -> str:
    """The best trial, the final model's warning, and for an interrupted search what the page
    shows and the command that continues it."""
    result = tune.get("result") or {}
    best = result.get("best") or {}
    value = best.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else "-"
    intro = f"study {result.get('study', '')}: " + (f"best validation {result.get('metric')} {shown} (trial {best.get('trial')})" if best else "no trial has completed yet")
    warning = (result.get("final") or {}).get("warning")
    if warning:
        intro += f". Final model: {warning}"
    interrupted = tune.get("interrupted")
    if interrupted:  # the command goes last, so no full stop sticks to it when it is copied
        intro = (f"Interrupted: the search so far (the trials that finished before the Ctrl-C), with no final model yet. "
                 f"{intro}. Continue it with: {interrupted.get('resume')}")
    return intro


def build_sections(document: dict[str, Any], study: Any = None) -> list[Section]:
    parts = [tune_section(document, study), compare_section(document), run_section(document), flow_section(document),
             chain_section(document), data_section(document)]
    return [s for s in parts if s is not None]
