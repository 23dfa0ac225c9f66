"""scikit-learn estimators over gradwise's trainer (placeholder docstring)."""

from .estimators import GradwiseClassifier, GradwiseRegressor, expected_failed_checks

__all__ = ["GradwiseClassifier", "GradwiseRegressor", "expected_failed_checks"]
