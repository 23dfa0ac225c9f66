"""One self-contained HTML page: sections of figures, tables and findings.

plotly.js is embedded once for the whole page, each figure is its JSON spec, and the
template is rendered by jinja2 with autoescape on: column names, file names and study
names come from users, so every string reaches the page as text, never as markup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..errors import GradwiseError
from ..files import atomic_write_text, jsonable

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Figure:
    """A plotly figure and the sentence that says how to read it."""

    name: str  # a short file-system-safe name, also the PNG's name
    figure: Any  # plotly.graph_objects.Figure
    caption: str = ""
    element_id: str = ""  # set when the page is rendered


@dataclass
class TableBlock:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[TableBlock] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle that ships inside the plotly package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Undefined stays lenient: a finding saved by an older gradwise may lack a newer key.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = format_cell
    return env


def format_cell(value: Any) -> str:
    """A table cell as text: floats to 4 significant digits, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_cell(v) for v in value)
    return str(value)


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' as \\u escapes, so a string
    such as '</script>' in a user's column name cannot end the script."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def page_template() -> dict[str, Any]:
    """The look applied in the browser to every figure that has no template of its own."""
    import plotly.io as pio

    from .figures.style import PAGE_TEMPLATE

    return jsonable(pio.templates[PAGE_TEMPLATE].to_plotly_json())


def figure_spec(figure: Any) -> dict[str, Any]:
    """The figure as plain JSON data (plotly's own encoder handles NumPy arrays)."""
    return jsonable(json.loads(figure.to_json()))


def render_page(title: str, kind: str, sections: list[Section], subtitle: str = "") -> str:
    specs = {}
    for index, fig in enumerate(f for s in sections for f in s.figures):
        fig.element_id = f"figure-{index}"
        spec = figure_spec(fig.figure)
        layout = spec.get("layout", {})
        if not any((layout.get("template") or {}).values()):
            layout.pop("template", None)  # the page's template applies
        specs[fig.element_id] = {"data": spec["data"], "layout": layout}
    template = _environment().get_template("report.html.j2")
    return template.render(title=title, kind=kind, subtitle=subtitle, sections=sections,
                           plotly_js=Markup(plotly_js()), specs=Markup(script_json(specs)),
                           template=Markup(script_json(page_template())))


GENERATOR = '<meta name="generator" content="gradwise">'  # marks a page we may replace


def write_page(path: str | Path, html: str) -> Path:
    """Write the page atomically: a reader sees the old report or the new one, never half.
    A file at ``path`` that gradwise did not write is the user's: it is never replaced."""
    path = Path(path)
    if path.is_dir():
        raise GradwiseError(f"'{path}' is a directory; give a file path for the report, such as {path / 'report.html'}")
    if path.exists() and GENERATOR not in _head(path):
        raise GradwiseError(f"'{path}' exists and was not written by gradwise; move it away or choose another path")
    return atomic_write_text(path, html)


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""
