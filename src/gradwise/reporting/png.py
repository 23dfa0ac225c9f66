"""The report's figures as PNG files, drawn by matplotlib (Agg, no browser, no display).

Each plotly figure is redrawn from its JSON spec: the few trace kinds the report uses
(lines and markers, bars, heatmaps, contours, parallel coordinates) and its reference
lines and shaded spans, so the PNG shows the same data as the page.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write
from .page import Figure, Section, figure_spec

DASHES = {"dash": "--", "dot": ":", "dashdot": "-."}
SIZE = (8, 4.5)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text") or "")
    return str(value or "")


def _values(values: Any) -> Any:
    """Plain values of a trace attribute; plotly writes NumPy arrays as base64 typed arrays."""
    if isinstance(values, dict) and "bdata" in values:
        array = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        shape = values.get("shape")
        return array.reshape([int(n) for n in str(shape).split(",")]) if shape else array
    return [np.nan if v is None else v for v in (values or [])]


def _scatter(ax: Any, trace: dict[str, Any]) -> None:
    mode = trace.get("mode", "lines+markers")
    style = DASHES.get((trace.get("line") or {}).get("dash"), "-") if "lines" in mode else "none"
    marker = "o" if "markers" in mode else None
    symbol = (trace.get("marker") or {}).get("symbol")
    marker = {"x": "x", "star": "*"}.get(symbol, marker) if isinstance(symbol, str) else marker
    label = trace.get("name") if trace.get("showlegend", True) is not False else None
    ax.plot(_values(trace.get("x")), _values(trace.get("y")), linestyle=style, marker=marker, markersize=3, label=label,
            alpha=trace.get("opacity", 1.0), linewidth=1.2)


def _bar(ax: Any, trace: dict[str, Any], index: int, count: int) -> None:
    across = trace.get("orientation") == "h"
    labels = [str(v) for v in trace.get("y" if across else "x") or []]
    values = _values(trace.get("x" if across else "y"))
    positions = np.arange(len(labels))
    width = 0.8 / max(count, 1)
    offset = positions + (index - (count - 1) / 2) * width
    if across:
        ax.barh(offset, values, width, label=trace.get("name"))
        ax.set_yticks(positions, labels, fontsize=7)
    else:
        ax.bar(offset, values, width, label=trace.get("name"))
        ax.set_xticks(positions, labels, rotation=30, ha="right", fontsize=7)


def _grid(ax: Any, trace: dict[str, Any], fig: Any) -> None:
    raw = trace.get("z")
    z = np.asarray(_values(raw) if isinstance(raw, dict) else [_values(row) for row in raw or []], dtype=float)
    if trace["type"] == "heatmap":
        image = ax.imshow(z, aspect="auto", interpolation="nearest", cmap="viridis")
        y = trace.get("y") or []
        ax.set_yticks(range(len(y)), [str(v) for v in y], fontsize=7)
        x = trace.get("x") or []
        ticks = np.linspace(0, len(x) - 1, min(6, len(x))).astype(int) if len(x) else []
        ax.set_xticks(ticks, [str(x[t]) for t in ticks])
        fig.colorbar(image, ax=ax)
    else:
        ax.contour(_values(trace.get("x")), _values(trace.get("y")), z, levels=12, colors="grey", linewidths=0.6)


def _parallel(ax: Any, trace: dict[str, Any]) -> None:
    dims = trace.get("dimensions") or []
    columns = []
    for d in dims:
        v = np.array(_values(d.get("values")), dtype=float)
        low, high = d.get("range") or (np.nanmin(v), np.nanmax(v))
        columns.append((v - low) / ((high - low) or 1.0))
    if not columns:
        return
    lines = np.stack(columns, axis=1)
    ax.plot(np.arange(len(dims)), lines.T, color="#4a6fa5", alpha=0.3, linewidth=0.8)
    ax.set_xticks(range(len(dims)), [str(d.get("label")) for d in dims], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("scaled value")


def _colour(text: Any, default: str) -> Any:
    """A CSS colour as matplotlib takes it: 'rgba(74,111,165,0.1)' becomes an RGB tuple."""
    if not isinstance(text, str):
        return default
    if text.startswith("rgb"):
        numbers = [float(v) for v in text[text.index("(") + 1:text.rindex(")")].split(",")]
        return tuple(v / 255 for v in numbers[:3])
    return text


def _shapes(ax: Any, layout: dict[str, Any]) -> None:
    for shape in layout.get("shapes") or []:
        colour = _colour((shape.get("line") or {}).get("color"), "#c0392b")
        if shape.get("type") == "rect":
            ax.axvspan(shape["x0"], shape["x1"], color=_colour(shape.get("fillcolor"), "grey"), alpha=0.15, linewidth=0)
        elif str(shape.get("xref", "")).endswith("domain"):
            ax.axhline(shape["y0"], color=colour, linestyle="--", linewidth=1)
        elif str(shape.get("yref", "")).endswith("domain"):
            ax.axvline(shape["x0"], color=colour, linestyle="--", linewidth=1)


def _axes(ax: Any, layout: dict[str, Any]) -> None:
    x, y = layout.get("xaxis") or {}, layout.get("yaxis") or {}
    ax.set_title(_text(layout.get("title")), fontsize=10, loc="left")
    ax.set_xlabel(_text(x.get("title")))
    ax.set_ylabel(_text(y.get("title")) or ax.get_ylabel())
    if y.get("type") == "log":
        ax.set_yscale("log")
    if y.get("range") and y.get("type") != "log":
        ax.set_ylim(*y["range"])
    if y.get("autorange") == "reversed" and not ax.yaxis_inverted():
        ax.invert_yaxis()


def draw(spec: dict[str, Any]) -> Any:
    """A matplotlib Figure from a plotly figure's JSON spec."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=SIZE, dpi=100)
    ax = fig.add_subplot()
    traces = spec.get("data") or []
    bars = [t for t in traces if t.get("type") == "bar"]
    for trace in traces:
        kind = trace.get("type", "scatter")
        if kind in ("scatter", "scattergl"):
            _scatter(ax, trace)
        elif kind == "bar":
            _bar(ax, trace, bars.index(trace), len(bars))
        elif kind in ("heatmap", "contour"):
            _grid(ax, trace, fig)
        elif kind == "parcoords":
            _parallel(ax, trace)
    layout = spec.get("layout") or {}
    _shapes(ax, layout)
    _axes(ax, layout)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def write_png(figure: Figure, path: Path) -> Path:
    drawn = draw(figure_spec(figure.figure))
    return atomic_write(path, lambda tmp: drawn.savefig(tmp, format="png"))


def write_pngs(sections: list[Section], directory: str | Path) -> list[Path]:
    """One PNG per figure of the report, named after the figure."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_png(f, directory / f"{f.name}.png") for s in sections for f in s.figures]
