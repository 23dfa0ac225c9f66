"""Plotly figures for each part of a report, one module per idea (run, gradient flow,
optimizer comparison, the chain, tuning). Each function takes a part of the report
document (plain JSON) and returns figures; nothing here trains or reads files."""
