"""GradwiseClassifier and GradwiseRegressor: gradwise's trainer behind scikit-learn's API."""

from __future__ import annotations

import copy
import dataclasses
import numbers
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_array, check_consistent_length, check_is_fitted, column_or_1d, validate_data

from ..config import TrainConfig
from ..data import Part, Splits, TargetEncoder
from ..errors import ConfigError, DataError
from ..training import fit as train
from .inputs import data_errors, dense_float32, encode_table, fit_table_encoder, hold_out, hold_out_weighted, is_table, numeric_encoder, to_float32

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Below this much work per step (rows per batch x hidden units) a second torch thread costs
# more in hand-offs than it saves, and n_jobs=2 searches would fight over the cores.
SMALL_STEP_WORK = 1 << 16
PREDICT_CHUNK = 65_536  # rows per forward pass at prediction (sparse input densified per chunk)
SPARSE_FORMATS = ("csr", "csc", "coo")


PARAMETERS = """
    Parameters
    ----------
    normalize, layers, hidden, activation, init, batch_norm, dropout, optimizer, lr, beta,
    beta1, beta2, eps, lr_decay, weight_decay, clip_grad, batch_size, epochs, patience, device
        The :class:`~gradwise.TrainConfig` fields, with its defaults: two hidden ReLU layers
        of 64 units (He initialization), inputs (and regression targets) min-max
        normalized, Adam at ``lr=1e-3``, mini-batches of 64 (``"full"`` for batch and 1 for
        stochastic gradient descent), at most 100 epochs, early stopping after 15 epochs
        without a better validation loss (``patience=None`` disables it).
    seed : int, None or numpy.random.RandomState, default 0
        The run's seed (scikit-learn's ``random_state``): an int gives the same network
        every fit; None or a RandomState draws a new seed at each fit.
    extra : dict or None, default None
        Keyword arguments for a ``torch:<Class>`` optimizer (None means ``{}``, the
        config's default; scikit-learn parameters cannot default to a dict).
    validation_fraction : float in [0, 1), default 0.1
        Share of the rows held out (stratified for classes) for early stopping, as
        scikit-learn's MLP has it; 0, or ``patience=None``, trains on every row for
        ``epochs`` epochs.
    threads : int, default 0
        torch CPU threads during fit and predict (restored afterwards). 0 uses one thread
        when a step is small (batch x hidden <= 65,536; faster, and two ``n_jobs`` workers
        do not fight over the cores) and otherwise torch's count, which joblib's worker
        processes already limit to cpu_count // n_jobs.

    Attributes
    ----------
    model_ : gradwise.GradwiseModel
        The trained network with its normalizers (on the CPU).
    config_ : gradwise.TrainConfig
        The configuration it was trained with (the seed resolved to an int).
    history_ : list of gradwise.EpochRecord
        One record per epoch (partial_fit appends); ``n_iter_`` counts them.
    best_epoch_, stop_reason_ : the epoch whose weights were kept, and why training ended.
    n_features_in_, feature_names_in_ : the input columns (names only for DataFrames).
    encoder_ : gradwise.FeatureEncoder
        How the input columns become the network's inputs (pass-through for numbers).

    Input
    -----
    NumPy arrays, DataFrames and SciPy sparse matrices. A DataFrame with string columns is
    encoded by gradwise's own :class:`~gradwise.FeatureEncoder`, learned on the rows given
    to ``fit`` (those of positive weight), gaps and unseen levels included, as
    ``gradwise train`` encodes them. Numeric input (arrays, all-numeric DataFrames) passes
    through unchanged and NaN in it is refused, as in most scikit-learn estimators (put a
    ``SimpleImputer`` in front). Sparse input is densified for training (the loop keeps
    the table as one dense float32 tensor; past 2 GiB it is refused with a message) and
    chunk by chunk for prediction.

    Sample weights
    --------------
    ``fit(X, y, sample_weight=w)`` and ``partial_fit`` weight each row's loss: every
    mini-batch's loss is the weighted mean over its rows, sum(w * loss) / sum(w), as in
    scikit-learn's MLP, and the validation loss for early stopping and the reported metrics
    are weighted the same way. The normalizers use weighted statistics. Rows of weight 0
    are left out before anything is learned from the rows, so a fit with them equals the
    fit without them: the same rows held out, the same mini-batches and steps, batch-norm
    statistics, normalizers and (for a DataFrame) encoder; only their labels still count
    among ``classes_``. Weights must be finite, non-negative and not all 0. On a
    full-batch run (``batch_size="full"``) an integer weight k equals repeating the row k
    times, up to float32 rounding; mini-batches are drawn by row, so there the two differ.

    ``partial_fit`` trains ``epochs`` more epochs on the rows it is given (those of
    positive weight), from the current weights and with the normalizers fitted by the
    first call (no rows held out); the optimizer's moments start afresh each call.

    Pickling (``joblib.dump``) works; the no-pickle way to ship a model is a bundle:
    ``gradwise.save_bundle(est.model_, "model/", est.config_)``.
"""


class _GradwiseEstimator(BaseEstimator):
    """Shared by both estimators: parameters, input checks, training and the forward pass."""

    _task = ""

    def __init__(
        self,
        *,
        normalize="minmax",
        layers=2,
        hidden=64,
        activation="relu",
        init="he",
        batch_norm=False,
        dropout=0.0,
        optimizer="adam",
        lr=1e-3,
        beta=0.9,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        lr_decay=None,
        weight_decay=0.0,
        clip_grad=None,
        batch_size=64,
        epochs=100,
        patience=15,
        seed=0,
        device="auto",
        extra=None,
        validation_fraction=0.1,
        threads=0,
    ):
        self.normalize = normalize
        self.layers = layers
        self.hidden = hidden
        self.activation = activation
        self.init = init
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.beta = beta
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.clip_grad = clip_grad
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.seed = seed
        self.device = device
        self.extra = extra
        self.validation_fraction = validation_fraction
        self.threads = threads

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``X``, ``y``; early stopping on a held-out fraction.

        ``sample_weight`` (one non-negative number per row, None for all ones) weights each
        row's loss: every batch's loss is the weighted mean over its rows; rows of weight 0
        are left out.
        """
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)  # a refit forgets the previous fit entirely
        X, y = self._check_fit_input(X, y, reset=True)
        weights = self._check_sample_weight(sample_weight, X)
        y = self._encode_targets(y, reset=True)  # classes_ from every row, weight 0 or not
        X, y, weights = without_weightless_rows(X, y, weights)
        X = self._training_features(X, reset=True)
        config = self._config()
        train_rows, val_rows = self._hold_out(config, y, weights)
        self._train(config, X, y, weights, train_rows, val_rows, model=None)
        return self

    def _hold_out(self, config: TrainConfig, y: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        labels = y if self._task == "classification" else None
        fraction = self._validation_fraction() if config.patience is not None else 0.0
        if weights is None:
            return hold_out(len(y), fraction, config.seed, labels)
        return hold_out_weighted(weights, fraction, config.seed, labels)

    def _partial_fit(self, X, y, classes=None, sample_weight=None):
        first = not hasattr(self, "model_")
        X, y = self._check_fit_input(X, y, reset=first)
        weights = self._check_sample_weight(sample_weight, X)
        y = self._encode_targets(y, reset=first, classes=classes)
        X, y, weights = without_weightless_rows(X, y, weights)
        X = self._training_features(X, reset=first)
        config = self._config()
        rows = np.arange(len(X))
        self._train(config, X, y, weights, rows, rows[:0], model=None if first else self.model_)
        return self

    def _train(self, config: TrainConfig, X, y, weights, train_rows, val_rows, model) -> None:
        def part(rows):
            return Part(X[rows], y[rows], None if weights is None else weights[rows])

        splits = Splits(part(train_rows), part(val_rows), part(train_rows[:0]), self._task, self.encoder_, self._target_encoder(), type(self).__name__, config.seed)
        with torch_threads(self.threads, config.resolved_batch_size(len(train_rows)) * config.hidden):
            result = train(config, splits, model=model)
        if result.diverged:
            warnings.warn(result.stop_reason, ConvergenceWarning, stacklevel=3)
        self.model_, self.config_ = result.model, config
        self.history_ = getattr(self, "history_", []) + list(result.history)
        self.n_iter_ = len(self.history_)
        self.best_epoch_, self.stop_reason_ = result.best_epoch, result.stop_reason

    def _config(self) -> TrainConfig:
        values = {k: _plain(v) for k, v in self.get_params(deep=False).items() if k in CONFIG_FIELDS}
        values["seed"] = resolve_seed(self.seed)
        values["extra"] = dict(self.extra or {})
        return TrainConfig(**values)

    def _validation_fraction(self) -> float:
        f = _plain(self.validation_fraction)
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}; 0 trains on every row without early stopping")
        return float(f)

    # -- input ----------------------------------------------------------------------------
    @data_errors
    def _check_sample_weight(self, sample_weight, X) -> np.ndarray | None:
        """float32 row weights, or None; scikit-learn's checks (finite, >= 0, not all 0, one per row)."""
        if sample_weight is None:
            return None  # the unweighted path stays exactly the one without weights
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        return to_float32(weights, "sample_weight")

    @data_errors
    def _check_fit_input(self, X, y, reset: bool):
        """Validate features; returns (X, raw y checked for length), X as float32 rows or,
        with string columns, the DataFrame still to encode (:meth:`_training_features`)."""
        if is_table(X):
            X, y = validate_data(self, X, y, skip_check_array=True, reset=reset)
            y = self._check_y(y)
            check_consistent_length(X, y)
            if len(X) == 0:
                raise DataError("X is a DataFrame with 0 rows; fit needs at least one")
            return X, y
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=SPARSE_FORMATS, dtype=(np.float64, np.float32), **self._y_check_params())
        if reset:
            self.encoder_, self._table_input = numeric_encoder(X.shape[1], getattr(self, "feature_names_in_", None)), False
        return dense_float32(X), y

    @data_errors
    def _training_features(self, X, reset: bool) -> np.ndarray:
        """The training rows as float32: a DataFrame is encoded here, on reset by an encoder
        learned from these very rows (the weight-0 rows are gone by then: no level of theirs)."""
        return self._encode_table(X, reset) if isinstance(X, pd.DataFrame) else X

    def _encode_table(self, frame, reset: bool) -> np.ndarray:
        if reset:
            self.encoder_, self._table_input = fit_table_encoder(frame), True
        return to_float32(encode_table(self.encoder_, frame))

    @data_errors
    def _check_features(self, X):
        """Features for prediction: float32 rows, or a CSR matrix densified chunk by chunk."""
        check_is_fitted(self)
        if self._table_input:
            if not hasattr(X, "columns"):
                raise DataError(f"{type(self).__name__} was fitted on a DataFrame with string columns {self.encoder_.columns}; pass a DataFrame with those columns")
            validate_data(self, X, skip_check_array=True, reset=False)
            return to_float32(encode_table(self.encoder_, X))
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=(np.float64, np.float32))
        return X

    @torch.no_grad()
    def _outputs(self, X) -> torch.Tensor:
        """Network outputs (logits or normalized targets) for prediction rows, in float64.

        Prediction runs a float64 copy of the network: in float32 the last digits of a row's
        output depend on how many rows share its matrix product, and a row's prediction
        should not depend on which other rows were passed with it.
        """
        X = self._check_features(X)
        model = copy.deepcopy(self.model_).to("cpu", torch.float64).eval()
        with torch_threads(self.threads, min(X.shape[0], PREDICT_CHUNK) * self.config_.hidden):
            chunks = [model(torch.from_numpy(dense_float32(X[i : i + PREDICT_CHUNK])).double()) for i in range(0, X.shape[0], PREDICT_CHUNK)]
        return torch.cat(chunks)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # Not input_tags.categorical: that tag means integer-coded categories, which these
        # estimators read as numbers; string columns of a DataFrame are what they encode.
        return tags


class GradwiseClassifier(ClassifierMixin, _GradwiseEstimator):
    # The parameter list is shared with GradwiseRegressor, so the docstring is built.
    __doc__ = """A gradwise MLP classifier (softmax over the classes, cross-entropy loss).

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = GradwiseClassifier(hidden=16, lr=0.01, epochs=60).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """ + PARAMETERS

    _task = "classification"

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train ``epochs`` more epochs on ``X``, ``y`` from the current weights.

        ``classes`` stays the third parameter, as before; pass ``sample_weight`` by name.
        """
        return self._partial_fit(X, y, classes, sample_weight)

    def predict_proba(self, X) -> np.ndarray:
        return torch.softmax(self._outputs(X), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        codes = self._outputs(X).argmax(dim=1).numpy()
        return self.classes_[codes]

    def _y_check_params(self) -> dict:
        return {}

    def _check_y(self, y):
        return column_or_1d(y, warn=True)

    @data_errors
    def _encode_targets(self, y, reset: bool, classes=None) -> np.ndarray:
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y if classes is None else classes)
        codes = np.searchsorted(self.classes_, y)
        unseen = (codes >= len(self.classes_)) | (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y)
        if unseen.any():
            raise DataError(f"y holds labels {np.unique(np.asarray(y)[unseen])[:5].tolist()} that are not among classes {self.classes_.tolist()}; pass every label in classes= on the first partial_fit")
        return codes.astype(np.int64)

    def _target_encoder(self) -> TargetEncoder:
        return TargetEncoder("classification", ["y"], self.classes_.tolist())


class GradwiseRegressor(RegressorMixin, _GradwiseEstimator):
    __doc__ = """A gradwise MLP regressor (squared error on normalized targets; several outputs allowed).

    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = GradwiseRegressor(lr=0.01, epochs=60).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """ + PARAMETERS

    _task = "regression"

    def partial_fit(self, X, y, sample_weight=None):
        """Train ``epochs`` more epochs on ``X``, ``y`` from the current weights."""
        return self._partial_fit(X, y, sample_weight=sample_weight)

    def predict(self, X) -> np.ndarray:
        outputs = self._outputs(X)
        values = self.model_.target_normalizer.inverse(outputs).numpy()
        return values.ravel() if self._y_1d else values

    def _y_check_params(self) -> dict:
        return {"multi_output": True, "y_numeric": True}

    def _check_y(self, y):
        return check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")

    def _encode_targets(self, y, reset: bool, classes=None) -> np.ndarray:
        y = np.asarray(y)
        columns = y.reshape(len(y), -1)
        if reset:
            self._y_1d, self.n_outputs_ = y.ndim == 1, columns.shape[1]
        elif columns.shape[1] != self.n_outputs_:
            raise DataError(f"y has {columns.shape[1]} outputs but the model was fitted with {self.n_outputs_}")
        return to_float32(columns, "y")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _target_encoder(self) -> TargetEncoder:
        names = ["y"] if self.n_outputs_ == 1 else [f"y{j}" for j in range(self.n_outputs_)]
        return TargetEncoder("regression", names)


def without_weightless_rows(X, y: np.ndarray, weights: np.ndarray | None):
    """``X``, ``y`` and ``weights`` without the rows of weight 0: they are absent from
    training, which would otherwise give them places in mini-batches, steps per epoch and
    batch-norm statistics while they count nothing in the loss."""
    if weights is None or (weights > 0).all():
        return X, y, weights  # nothing to leave out: the very arrays, no copy
    keep = np.flatnonzero(weights > 0)
    X = X.iloc[keep].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[keep]
    return X, y[keep], weights[keep]


def resolve_seed(seed) -> int:
    """An int seed as given; None or a RandomState draws one (a new one each fit)."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    return int(check_random_state(seed).randint(np.iinfo(np.int32).max))


def _plain(value):
    """NumPy scalars (as RandomizedSearchCV draws them) as Python numbers for TrainConfig."""
    return value.item() if isinstance(value, np.generic) else value


@contextmanager
def torch_threads(threads: int, work_per_step: int):
    """torch's thread count for one call: ``threads``, or 1 for small steps; restored after."""
    before = torch.get_num_threads()
    wanted = threads or (1 if work_per_step <= SMALL_STEP_WORK else before)
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Why weighting by k cannot equal repeating a row k times to the check's rtol=1e-7. (Its
# full-batch form, up to float32 rounding, is tested in tests/test_sklearn.py.)
SAMPLE_WEIGHT_EQUIVALENCE = (
    "mini-batches and the early-stopping hold-out are drawn by row, so repeated rows fall "
    "into other batches and other validation rows than one weighted row; even full-batch "
    "training agrees only to float32 rounding (~1e-6), not the check's rtol=1e-7"
)


def expected_failed_checks(estimator) -> dict[str, str]:
    """scikit-learn checks these estimators are known to fail, with the reason.

    Pass it to ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``.
    """
    return {
        "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_EQUIVALENCE,
        "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHT_EQUIVALENCE,
    }
