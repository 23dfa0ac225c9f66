"""Render a diagnosis for people: a per-layer table and each finding in the document's terms."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from .findings import Diagnosis, Finding

SEVERITY_STYLE = {"info": "dim", "warning": "yellow", "critical": "bold red"}
MEANING = {
    "vanishing_gradient": "gradients shrink layer by layer towards the input (factors |w g'(z)| < 1)",
    "exploding_gradient": "gradients grow layer by layer towards the input (factors |w g'(z)| > 1)",
    "saturated_activations": "sigmoid/tanh units stuck where g'(z) is close to 0",
    "dead_units": "ReLU units that output 0 for every example and no longer learn",
    "diverging_loss": "the loss grows or becomes NaN/inf",
    "oscillating_loss": "the loss swings up and down instead of descending",
    "slow_convergence": "the loss barely decreases",
    "unscaled_inputs": "input features on very different scales (not normalized)",
}


def _num(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if pct:
        return f"{value:.0%}"
    return f"{value:.3g}"


def layer_table(diagnosis: Diagnosis) -> Table:
    """Per layer: gradient norm, backward gain, saturation, dead units, update/weight, scale."""
    table = Table(title="Gradient flow per layer (medians over observed steps)", title_justify="left")
    # gain: ||dJ/d input|| / ||dJ/d output|| of the layer and its activation (section 1's |w g'(z)|);
    # sat: sigmoid/tanh units with g' nearly 0; dead: ReLU units never active; rms: output scale.
    for column in ("layer", "act", "|dJ/dW|", "gain", "sat", "dead", "update/W", "rms"):
        table.add_column(column, justify="left" if column in ("layer", "act") else "right")
    for row in diagnosis.layers:
        table.add_row(
            row["layer"], row.get("activation") or "-", _num(row["grad_norm"]), _num(row["gain"]),
            _num(row["saturation"], pct=True), _num(row["dead"], pct=True), _num(row["update_ratio"]),
            _num(row["act_rms"] if row["act_rms"] is not None else row["z_rms"]),
        )
    return table


def _evidence_text(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}: {_num(v) if isinstance(v, float) else v}" for k, v in list(value.items())[:6])
            parts.append(f"{key} {{{inner}}}")
        else:
            parts.append(f"{key} {_num(value) if isinstance(value, float) else value}")
    return "; ".join(parts)


def render_finding(finding: Finding, console: Console, index: int) -> None:
    style = SEVERITY_STYLE[finding.severity]
    where = f" in {', '.join(finding.layers)}" if finding.layers else ""
    console.print(f"[{style}]{index}. {finding.severity.upper()} {finding.problem}[/]{where}: {MEANING[finding.problem]}")
    if finding.explanation:
        console.print(f"   {finding.explanation}", highlight=False)
    console.print(f"   evidence: {_evidence_text(finding.evidence)}", style="dim", highlight=False)
    for k, fix in enumerate(finding.fixes, 1):
        console.print(f"   fix {k}: {fix.text}", highlight=False)


def render_diagnosis(diagnosis: Diagnosis, console: Console | None = None) -> None:
    """Print the per-layer table and every finding, most important first."""
    console = console or Console()
    summary = diagnosis.summary
    if summary:
        console.print(
            f"Diagnosis from {summary.get('observations', 0)} observed steps of {summary.get('steps', 0)} "
            f"(every {summary.get('every', '?')}); loss {_num(summary.get('loss_first'))} -> {_num(summary.get('loss_last'))}"
            + (f"; {summary['skipped_by_loss_scaler']} more overflowed and were skipped by the loss scaler" if summary.get("skipped_by_loss_scaler") else ""),
            highlight=False,
        )
    if diagnosis.layers:
        console.print(layer_table(diagnosis))
        console.print("gain = ||dJ/d input|| / ||dJ/d output|| per layer (the measured |w·g'(z)|); "
                      "sat = sigmoid/tanh units with g' near 0; dead = ReLU units active for no example", style="dim")
    if diagnosis.healthy:
        console.print("[green]Healthy:[/] no finding above info.")
    else:
        console.print("[bold]Findings[/] (act on the first one first):")
    for i, finding in enumerate(diagnosis.findings, 1):
        render_finding(finding, console, i)
