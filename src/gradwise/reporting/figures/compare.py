"""Comparing optimizers and gradient-descent variants: loss curves on shared axes, the
paths on an elongated quadratic, and the zig-zag share of each run."""

from __future__ import annotations

from typing import Any

from ..page import Figure, TableBlock
from .quadratic import paths_figure
from .style import finite_or_none, new_figure

COLUMNS = ("optimizer", "lr", "variant", "final_train_loss", "final_val_loss", "epochs_to_target", "updates_to_target", "seconds", "oscillation", "zigzag")


def run_label(run: dict[str, Any]) -> str:
    return f"{run['optimizer']} α={run['lr']:g} / {run['variant']}"


def loss_curves(runs: list[dict[str, Any]], target: float | None) -> Figure:
    figure = new_figure("Training loss per epoch, every run", "epoch", "mean training loss", log_y=True)
    for run in runs:
        losses = (run.get("curves") or {}).get("epoch_train_loss") or []
        figure.add_scatter(x=list(range(1, len(losses) + 1)), y=finite_or_none(losses), mode="lines", name=run_label(run))
    if target is not None and target > 0:
        figure.add_hline(y=target, line_dash="dot", annotation_text="target loss")
    return Figure("compare_loss", figure, "Same network, same initial weights, same split and batch order; only the optimizer, its "
                  "rate and the batch size differ. The dotted line is the target loss of the 'to target' columns.")


def zigzag_bar(runs: list[dict[str, Any]]) -> Figure:
    figure = new_figure("Zig-zag: share of consecutive updates pointing against each other", "zig-zag share", "", xaxis_range=[0, 1])
    figure.add_bar(y=[run_label(r) for r in runs], x=[r.get("zigzag") for r in runs], orientation="h", marker_color="#4a6fa5", name="zig-zag")
    figure.update_yaxes(type="category", autorange="reversed", automargin=True)
    return Figure("zigzag", figure, "0 when every update continues the last one; plain GD keeps undoing part of its last step, "
                  "momentum's averaged step keeps going the same way.")


def compare_figures(compare: dict[str, Any]) -> list[Figure]:
    runs = compare.get("runs") or []
    return [loss_curves(runs, compare.get("target_loss")), paths_figure(), zigzag_bar(runs)]


def compare_table(compare: dict[str, Any]) -> TableBlock:
    rows = [[run.get(c) for c in COLUMNS] for run in compare.get("runs") or []]
    headers = ["optimizer", "lr", "variant", "train loss", "val loss", "epochs→target", "updates→target", "seconds", "oscillation", "zig-zag"]
    return TableBlock(f"Runs (target loss {compare.get('target_loss') or '-'})", headers, rows)
