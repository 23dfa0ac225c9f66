"""Importance is measured only for parameters that actually varied across trials."""

import numpy as np
import optuna

from gradwise.tuning import default_space, importance_table


def test_parameters_held_constant_get_no_importance_and_the_driver_ranks_first():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    rng = np.random.default_rng(0)
    for _ in range(24):
        lr, hidden = float(10 ** rng.uniform(-4, -1)), int(rng.integers(8, 512))
        trial = optuna.trial.create_trial(value=(np.log10(lr) + 2.5) ** 2 + 1e-4 * rng.normal(), params={}, distributions={},
                                          user_attrs={"config": {"lr": lr, "hidden": hidden, "batch_size": 64, "layers": 2}})
        study.add_trial(trial)
    rows = {row["param"]: row["empirical"] for row in importance_table(study, default_space("adam"))}
    assert rows["batch_size"] is None and rows["layers"] is None and rows["lr_decay"] is None
    assert rows["lr"] > rows["hidden"]


def test_too_few_complete_trials_get_no_importance_at_all():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    for lr, value in ((1e-3, 1.0), (3e-3, 0.5), (1e-2, 0.7), (3e-2, 2.0)):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}, user_attrs={"config": {"lr": lr, "hidden": 64}}))
    rows = importance_table(study, default_space("adam"))
    assert all(row["empirical"] is None and row["method"] is None for row in rows)
