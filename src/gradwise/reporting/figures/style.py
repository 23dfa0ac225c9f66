"""Shared look of the report's figures."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

# Figures are built without a template (building plotly's templates costs ~25 ms a figure);
# the page applies PAGE_TEMPLATE to every figure once, in the browser.
TEMPLATE = "none"
PAGE_TEMPLATE = "plotly_white"
MARGIN = {"l": 60, "r": 20, "t": 50, "b": 50}
LEGEND = {"font": {"size": 10}}  # on the right: below the plot it would cover the axis title


def new_figure(title: str, x_title: str = "", y_title: str = "", log_y: bool = False, **layout: Any) -> go.Figure:
    figure = go.Figure(layout={"template": TEMPLATE})
    figure.update_layout(title={"text": title, "x": 0.01}, template=TEMPLATE, margin=MARGIN, legend=LEGEND, **layout)
    figure.update_xaxes(title_text=x_title)
    figure.update_yaxes(title_text=y_title, type="log" if log_y else None)
    return figure


def finite_or_none(values: list[Any]) -> list[Any]:
    """None where a value is missing, NaN or not positive-safe for plotting."""
    return [v if isinstance(v, (int, float)) and v == v and abs(v) != float("inf") else None for v in values]


def positive_or_none(values: list[Any]) -> list[Any]:
    """For log axes: None where a value is not a positive finite number."""
    return [v if v is not None and v > 0 else None for v in finite_or_none(values)]
