"""scikit-learn's own estimator checks, run on small, fast instances of both estimators."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from gradwise.sklearn import GradwiseClassifier, GradwiseRegressor, expected_failed_checks

# Few epochs, units and steps keep ~100 checks fast; lr 0.05 still reaches the accuracy and R²
# the checks demand of a classifier and a regressor on their small blobs.
FAST = dict(epochs=15, hidden=16, lr=0.05, batch_size=32, device="cpu")


@parametrize_with_checks([GradwiseClassifier(**FAST), GradwiseRegressor(**FAST)], expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_check(estimator, check):
    check(estimator)
