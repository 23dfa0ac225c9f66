"""A diagnosis as an HTML fragment for notebooks (``Diagnosis._repr_html_``): the findings
with their evidence and fixes, and the per-layer table; no script, so it shows anywhere."""

from __future__ import annotations

from typing import Any

from .page import _environment
from .sections import finding_view

COLUMNS = ("layer", "activation", "grad_norm", "gain", "saturation", "dead", "update_ratio")
COLOURS = {"critical": "#c0392b", "warning": "#e6a100", "info": "#7f8c8d"}


def diagnosis_html(diagnosis: Any) -> str:
    data = diagnosis.to_dict()
    return _environment().get_template("diagnosis.html.j2").render(
        healthy=data["healthy"], findings=[finding_view(f) for f in data["findings"]], layers=data["layers"],
        columns=COLUMNS, colours=COLOURS,
    )
