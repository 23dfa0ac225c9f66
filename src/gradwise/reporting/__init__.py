"""Human-readable reports: rich tables for terminals, and one self-contained HTML page per run.

- :func:`metrics_table`, :func:`render_fit`: tables printed by the commands.
- :func:`write` (``gradwise.report.write``): report.html for a FitResult, an Optuna study, a
  GradientMonitor or a Diagnosis; :func:`rebuild`: a run's page again from its report.json.
  Loaded on first use, since plotly and jinja2 cost every command's start-up otherwise.
"""

from .tables import metrics_table, render_fit

_PAGE_NAMES = ("write", "rebuild")


def __getattr__(name: str):
    if name in _PAGE_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'gradwise.reporting' has no attribute {name!r}")


__all__ = ["metrics_table", "rebuild", "render_fit", "write"]
