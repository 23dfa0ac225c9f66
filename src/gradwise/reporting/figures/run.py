"""Every run: loss and metric per epoch with the early-stopping epoch marked, the
configuration, the data summary and the final metrics."""

from __future__ import annotations

from typing import Any

from ..page import Figure, TableBlock
from .style import finite_or_none, new_figure

METRIC_ORDER = ("accuracy", "rmse", "r2")


def _mark_best(figure: Any, run: dict[str, Any]) -> None:
    best = run.get("best_epoch")
    if best:
        early = "early stopping" in (run.get("stop_reason") or "")
        label = f"best epoch {best}" + (" (early stopping kept it)" if early else "")
        figure.add_vline(x=best, line_dash="dash", line_color="#c0392b", annotation_text=label, annotation_position="top right")


def loss_figure(run: dict[str, Any]) -> Figure:
    history = run.get("history") or []
    epochs = [r["epoch"] for r in history]
    figure = new_figure("Loss per epoch", "epoch", "loss", log_y=True)
    figure.add_scatter(x=epochs, y=finite_or_none([r["train_loss"] for r in history]), mode="lines+markers", name="train")
    figure.add_scatter(x=epochs, y=finite_or_none([r["val_loss"] for r in history]), mode="lines+markers", name="validation")
    _mark_best(figure, run)
    return Figure("loss", figure, "Mean training loss and validation loss after each epoch; the dashed line is the epoch whose weights were kept.")


def metric_name(run: dict[str, Any]) -> str | None:
    history = run.get("history") or []
    names = set(history[0].get("val") or history[0].get("train") or {}) if history else set()
    return next((m for m in METRIC_ORDER if m in names), None)


def metric_figure(run: dict[str, Any]) -> Figure | None:
    name = metric_name(run)
    if name is None:
        return None
    history = run["history"]
    epochs = [r["epoch"] for r in history]
    figure = new_figure(f"{name} per epoch", "epoch", name)
    for split, label in (("train", "train"), ("val", "validation")):
        figure.add_scatter(x=epochs, y=finite_or_none([(r.get(split) or {}).get(name) for r in history]), mode="lines+markers", name=label)
    _mark_best(figure, run)
    return Figure("metric", figure, f"{name} on the training and validation rows after each epoch (in the target's units).")


def run_figures(run: dict[str, Any]) -> list[Figure]:
    return [f for f in (loss_figure(run), metric_figure(run)) if f is not None]


def metrics_table(run: dict[str, Any]) -> TableBlock:
    metrics = run.get("metrics") or {}
    names: list[str] = []
    for values in metrics.values():
        names += [n for n in values if n not in names]
    rows = [[split, *(values.get(n) for n in names)] for split, values in metrics.items() if values]
    return TableBlock("Final metrics (best weights)", ["split", *names], rows)


def config_table(config: dict[str, Any], title: str = "Configuration") -> TableBlock:
    return TableBlock(title, ["option", "value"], [[k, v] for k, v in config.items()])


def data_table(data: dict[str, Any]) -> TableBlock:
    rows = data.get("rows")
    entries = [
        ["source", data.get("source")], ["task", data.get("task")],
        ["rows (train / val / test)", f"{rows.get('train')} / {rows.get('val')} / {rows.get('test')}" if rows else None],
        ["columns", len(data["columns"]) if "columns" in data else None], ["features after encoding", data.get("features")],
        ["target", ", ".join(data.get("target") or []) or None], ["classes", data.get("classes")],
        ["input normalization", data.get("normalize")],
    ]
    if data.get("task") == "regression":
        entries.append(["target normalization", data.get("target_normalize")])
    return TableBlock("Data", ["", "value"], [e for e in entries if e[1] is not None])


def columns_table(data: dict[str, Any]) -> TableBlock:
    return TableBlock("Feature columns", ["#", "column"], [[i + 1, c] for i, c in enumerate(data.get("columns") or [])])
