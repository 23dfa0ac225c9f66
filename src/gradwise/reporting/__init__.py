"""Human-readable reports: rich tables for terminals."""

from .tables import metrics_table, render_fit

__all__ = ["metrics_table", "render_fit"]
