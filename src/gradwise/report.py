"""``gradwise.report``: one self-contained HTML report for a run, a study or a monitor.

>>> import gradwise.report
>>> gradwise.report.write(result, "report.html")   # FitResult, optuna Study, GradientMonitor or Diagnosis
"""

from .reporting.api import rebuild, write

__all__ = ["rebuild", "write"]
