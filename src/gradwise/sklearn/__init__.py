"""scikit-learn estimators over gradwise's trainer: :class:`GradwiseClassifier`, :class:`GradwiseRegressor`.

They follow scikit-learn's conventions (``__init__`` only stores parameters, fitted
attributes end in ``_``, ``get_params``/``set_params``/``clone``), pass
``sklearn.utils.estimator_checks.parametrize_with_checks`` except the two sample-weight
equivalence checks that :func:`expected_failed_checks` lists with the reason, and
work inside ``Pipeline``, ``ColumnTransformer``, ``GridSearchCV``, ``RandomizedSearchCV``,
``HalvingRandomSearchCV`` (``n_jobs`` 1 or more), ``cross_val_score``,
``CalibratedClassifierCV`` and ``permutation_importance``.

>>> from sklearn.datasets import load_iris
>>> from sklearn.model_selection import cross_val_score
>>> from gradwise.sklearn import GradwiseClassifier
>>> X, y = load_iris(return_X_y=True)
>>> scores = cross_val_score(GradwiseClassifier(hidden=16, lr=0.01, epochs=60), X, y, cv=3)

Every :class:`~gradwise.TrainConfig` field is a parameter of the same name and default, so
the same network trains with ``gradwise train``, :func:`gradwise.fit` and these estimators.
Pickling (``joblib.dump``) works as scikit-learn users expect; to ship a model without
pickle, save the fitted network as a bundle: ``gradwise.save_bundle(est.model_, "model/",
est.config_)``, which ``gradwise predict`` and :func:`gradwise.load_bundle` read.

Nothing else in gradwise imports this package; it is a thin layer over :func:`gradwise.fit`.
"""

from .estimators import GradwiseClassifier, GradwiseRegressor, expected_failed_checks

__all__ = ["GradwiseClassifier", "GradwiseRegressor", "expected_failed_checks"]
