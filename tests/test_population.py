"""The population trainer's equality contract: member k trains what gradwise.fit(config_k, splits_k) trains.

Tolerance (float32): the batched network regroups the same arithmetic (baddbmm for addmm,
masked sums for means), so per-epoch losses agree to rtol 1e-4 and final weights to
atol 1e-4 after a few hundred updates on these tiny tables; bit equality is not promised.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from gradwise import TrainConfig, fit, load_table, split_table
from gradwise.data.splitting import Part
from gradwise.training.population import Member, PopulationTrainer

LOSS_TOL = {"rtol": 1e-4, "atol": 1e-5}
WEIGHT_TOL = {"rtol": 1e-3, "atol": 1e-4}


def shrink(splits, rows: int):
    part = lambda p, n: Part(p.X[:n], p.y[:n])  # noqa: E731
    return replace(splits, train=part(splits.train, rows), val=part(splits.val, rows // 2), test=part(splits.test, 10))


@pytest.fixture(scope="module")
def iris():
    return shrink(split_table(load_table("builtin:iris"), seed=0), 36)


@pytest.fixture(scope="module")
def diabetes():
    return shrink(split_table(load_table("builtin:diabetes"), seed=0), 30)


def row_sets(splits, k: int):
    """k Splits that each leave out a different share of the training rows (unequal sizes)."""
    n = len(splits.train)
    keep = [[i for i in range(n) if i % (k + 1) != j] for j in range(k)]
    keep[0] = keep[0][:-1]
    return [replace(splits, train=Part(splits.train.X[rows], splits.train.y[rows])) for rows in keep]


def member_configs(base: TrainConfig, lrs=(0.01, 0.003, 0.03)) -> list[TrainConfig]:
    return [base.replace(lr=lr, seed=i) for i, lr in enumerate(lrs)]


def assert_same_training(members: list[Member], noisy: tuple[str, ...] = ()):
    """``noisy``: state_dict keys compared only to NOISE_TOL (see BN_OPTIMIZERS)."""
    results = PopulationTrainer(members).run()
    for member, got in zip(members, results):
        want = fit(member.config, member.splits)
        assert got.stop_reason == want.stop_reason
        assert got.best_epoch == want.best_epoch
        assert got.updates == want.updates
        torch.testing.assert_close(torch.tensor([r.train_loss for r in got.history]), torch.tensor([r.train_loss for r in want.history]), **LOSS_TOL)
        torch.testing.assert_close(torch.tensor([r.val_loss for r in got.history]), torch.tensor([r.val_loss for r in want.history]), **LOSS_TOL)
        for (key, a), b in zip(got.model.net.state_dict().items(), want.model.net.state_dict().values()):
            torch.testing.assert_close(a, b, **(NOISE_TOL if key in noisy else WEIGHT_TOL))
    return results


OPTIMIZERS = {
    "gd": dict(optimizer="gd"),
    "momentum": dict(optimizer="momentum", beta=0.8),
    "rmsprop": dict(optimizer="rmsprop", beta=0.95),
    "adam": dict(optimizer="adam"),
    "adam_document": dict(optimizer="adam", extra={"bias_correction": False, "eps_inside_sqrt": True}),
}
VARIANTS = {"full": "full", "stochastic": 1, "mini_batch": 8}
CASES = [(o, v) for o in OPTIMIZERS for v in VARIANTS]


@pytest.mark.parametrize("optimizer,variant", CASES)
def test_member_k_trains_what_fit_trains(iris, optimizer, variant):
    epochs = 2 if variant == "stochastic" else 6
    base = TrainConfig(layers=2, hidden=8, batch_size=VARIANTS[variant], epochs=epochs, patience=None, device="cpu", **OPTIMIZERS[optimizer])
    folds = row_sets(iris, 3)  # three members, three different row sets of unequal size
    assert_same_training([Member(c, f) for c, f in zip(member_configs(base), folds)])


# Under batch norm a Linear layer's bias has a zero gradient up to float32 rounding (the batch
# mean subtracts it), and Adam divides that ~1e-9 noise by its own size: with eps 1e-8 the bias
# takes steps of about lr in directions the rounding picks, in fit as here, so the two runs'
# biases (and running means) drift apart by 1e-2. A larger eps keeps those steps small, and
# those biases (values of ~1e-4 made of rounding) are compared to NOISE_TOL.
NOISE_TOL = {"rtol": 0.0, "atol": 1e-3}
BN_OPTIMIZERS = {"gd": OPTIMIZERS["gd"], "momentum": OPTIMIZERS["momentum"], "adam": dict(optimizer="adam", eps=1e-3)}
BN_VARIANTS = {"full": "full", "mini_batch": 8}


def bn_folds(splits):
    """Three row sets of 25, 27 and 26 rows: with batches of 8 the first ends on a 1-row batch,
    which fit skips under batch norm, and the sets' lengths differ, so batches carry padding rows."""
    folds = row_sets(splits, 3)
    first = folds[0].train
    folds[0] = replace(folds[0], train=Part(first.X[:25], first.y[:25]))
    return folds


def biases_before_batch_norm(member: Member) -> tuple[str, ...]:
    """state_dict keys of the Linear biases that a BatchNorm1d follows."""
    from gradwise.models.mlp import build_mlp

    config = member.config
    modules = list(build_mlp(1, 1, config.layers, 2, batch_norm=config.batch_norm, dropout=config.dropout).named_children())
    return tuple(f"{name}.bias" for (name, m), (_, after) in zip(modules, modules[1:])
                 if isinstance(m, torch.nn.Linear) and isinstance(after, torch.nn.BatchNorm1d))


def assert_same_batch_norm_training(members: list[Member]):
    """The contract, plus what batch norm adds: running statistics and eval-mode predictions."""
    results = assert_same_training(members, biases_before_batch_norm(members[0]) if members[0].config.optimizer == "adam" else ())
    for member, got in zip(members, results):
        want = fit(member.config, member.splits)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            got_stats = [t for key, t in got.model.net.state_dict().items() if key.endswith(name)]
            want_stats = [t for key, t in want.model.net.state_dict().items() if key.endswith(name)]
            assert len(got_stats) == member.config.layers
            for a, b in zip(got_stats, want_stats):
                torch.testing.assert_close(a, b, **WEIGHT_TOL)
        X = member.splits.test.X
        torch.testing.assert_close(torch.as_tensor(got.model.predict_array(X)), torch.as_tensor(want.model.predict_array(X)), **WEIGHT_TOL)
    return results


@pytest.mark.parametrize("optimizer,variant", [(o, v) for o in BN_OPTIMIZERS for v in BN_VARIANTS])
def test_batch_norm_members_train_what_fit_trains(iris, optimizer, variant):
    """Per-member batch statistics over real rows only, running statistics, gamma and beta,
    members of different widths (padded units), and fit's skipped 1-row batch."""
    base = TrainConfig(layers=2, batch_size=BN_VARIANTS[variant], epochs=6, patience=None, device="cpu", batch_norm=True,
                       weight_decay=0.001, **BN_OPTIMIZERS[optimizer])
    configs = [c.replace(hidden=h) for c, h in zip(member_configs(base), (8, 5, 11))]
    members = [Member(c, f) for c, f in zip(configs, bn_folds(iris))]
    results = assert_same_batch_norm_training(members)
    if variant == "mini_batch":  # 25 rows in batches of 8: three updates an epoch, the 1-row batch skipped
        assert [r.updates for r in results] == [18, 24, 24]


def test_batch_norm_regression_with_patience_batch_sizes_and_groups(diabetes, monkeypatch):
    """Best-weights snapshots carry the running statistics (patience restores an earlier epoch),
    members of other batch sizes sit steps out, and groups of one member each."""
    from gradwise.training.population import network

    monkeypatch.setattr(network, "GROUP_BYTES", 1)
    base = TrainConfig(layers=2, epochs=12, patience=2, device="cpu", batch_norm=True, clip_grad=1.0, **BN_OPTIMIZERS["adam"])
    configs = [base.replace(hidden=h, lr=lr, seed=i, batch_size=b) for i, (h, lr, b) in enumerate([(4, 0.05, 7), (9, 0.01, 8), (6, 0.2, 5)])]
    results = assert_same_batch_norm_training([Member(c, diabetes) for c in configs])
    assert any(r.best_epoch is not None and r.best_epoch < len(r.history) for r in results)


def test_batch_norm_members_that_join_and_survive_compaction(iris):
    """extend() and select() carry gamma, beta and the running statistics."""
    base = TrainConfig(hidden=8, batch_size=8, epochs=4, patience=None, device="cpu", lr=0.05, batch_norm=True, **BN_OPTIMIZERS["momentum"])
    # Not seed 4: that member's run turns on a float32 rounding (its weights matched fit's to
    # 1e-7 after epoch 1 everywhere, then on an Intel Xeon, not on an AMD EPYC, moved 3e-3
    # away in epoch 2 whether or not the population compacted), a trajectory, not the state
    # this test is about.
    first = [Member(base.replace(seed=0), iris), Member(base.replace(seed=1, hidden=5), iris), Member(base.replace(seed=3, lr=0.02), iris)]
    later = [Member(base.replace(seed=2, hidden=12, lr=0.02), bn_folds(iris)[0])]
    trainer = PopulationTrainer(first, shapes=[(4, 16), (16, 16), (16, 3)])
    widths = []

    def refill(trainer):
        widths.append(trainer.net.K)
        if len(trainer.members) == 3 and trainer.epochs_done[1] == 2:
            trainer.add(later)

    def prune(records, trainer):
        return {0: "pruned"} if 0 in records else {}

    results = trainer.run(prune, refill=refill)
    assert widths[:3] == [2, 2, 3]  # the pruned member compacted away after epoch 1, one joining after epoch 2
    hidden = [trainer.members[m].config.hidden for m in trainer.ids]
    for i in range(trainer.net.depth - 1):  # padded units: gamma, beta and weights still exactly 0
        for slot, h in enumerate(hidden):
            assert not trainer.net.gammas[i][slot, 0, h:].any() and not trainer.net.betas[i][slot, 0, h:].any()
            assert not trainer.net.weights[i][slot, :, h:].any()
    for member, got in list(zip(first + later, results))[1:]:
        want = fit(member.config, member.splits)
        torch.testing.assert_close(torch.tensor([r.val_loss for r in got.history]), torch.tensor([r.val_loss for r in want.history]), **LOSS_TOL)
        for a, b in zip(got.model.net.state_dict().values(), want.model.net.state_dict().values()):
            torch.testing.assert_close(a, b, **WEIGHT_TOL)


def test_batch_norm_with_batches_of_one_is_left_to_fit():
    from gradwise.training.population import can_batch

    assert can_batch(TrainConfig(batch_norm=True, batch_size=1)) is not None
    assert can_batch(TrainConfig(batch_norm=True, batch_size=8)) is None


def test_regression_widths_decay_weight_decay_clipping_and_patience(diabetes):
    """Per-member hidden width (padded and masked), α decay, λ, clipping and early stopping."""
    base = TrainConfig(layers=2, batch_size=8, epochs=12, patience=2, device="cpu", clip_grad=1.0, lr_decay="inverse_time:0.1")
    configs = [base.replace(hidden=h, lr=lr, seed=i, weight_decay=wd, clip_grad=c, activation="tanh")
               for i, (h, lr, wd, c) in enumerate([(4, 0.05, 0.0, 1.0), (9, 0.01, 0.01, 0.5), (6, 0.2, 0.001, 2.0)])]
    assert_same_training([Member(c, diabetes) for c in configs])


def test_members_with_different_batch_sizes_share_a_population(iris):
    """Each member takes its own number of steps an epoch (sitting out the rest)."""
    base = TrainConfig(hidden=8, epochs=3, patience=None, device="cpu", optimizer="adam")
    configs = [base.replace(batch_size=b, seed=i, lr=0.01) for i, b in enumerate((4, 7, 16))]
    results = assert_same_training([Member(c, f) for c, f in zip(configs, row_sets(iris, 3))])
    assert len({r.updates for r in results}) == 3


def test_members_in_groups_of_one_still_train_what_fit_trains(iris, diabetes, monkeypatch):
    """Forward and backward by groups of members (here one each): masks, padding, batch sizes."""
    from gradwise.training.population import network

    monkeypatch.setattr(network, "GROUP_BYTES", 1)
    base = TrainConfig(layers=2, batch_size=8, epochs=6, patience=2, device="cpu", clip_grad=1.0)
    widths = [base.replace(hidden=h, lr=lr, seed=i) for i, (h, lr) in enumerate([(4, 0.05), (9, 0.01), (6, 0.2)])]
    members = [Member(c, diabetes) for c in widths]
    assert len(PopulationTrainer(members).net.member_groups(8)) == 3
    assert_same_training(members)
    sizes = [TrainConfig(hidden=8, epochs=3, patience=None, device="cpu", batch_size=b, seed=i, lr=0.01) for i, b in enumerate((4, 7, 16))]
    assert_same_training([Member(c, f) for c, f in zip(sizes, row_sets(iris, 3))])


def test_members_whose_inputs_differ_in_width_train_what_fit_trains(iris):
    """CV folds fit their own encoders, so a string column can encode to other widths per fold:
    the narrower members' inputs and first-layer weights are zero-padded, exactly."""
    import numpy as np

    def widened(splits, extra: int):
        pad = lambda p: Part(np.hstack([p.X, np.linspace(-1, 1, len(p) * extra, dtype=np.float32).reshape(len(p), extra)]), p.y)  # noqa: E731
        return replace(splits, train=pad(splits.train), val=pad(splits.val), test=pad(splits.test))

    base = TrainConfig(layers=2, hidden=8, batch_size=8, epochs=4, patience=None, device="cpu")
    folds = [iris, widened(iris, 3), widened(iris, 1)]
    assert len({f.n_features for f in folds}) == 3
    assert_same_training([Member(c, f) for c, f in zip(member_configs(base), folds)])


def test_one_diverging_member_leaves_the_others_unchanged(iris):
    base = TrainConfig(hidden=8, batch_size=8, epochs=5, patience=None, device="cpu", optimizer="gd", activation="tanh")
    calm = [base.replace(lr=0.05, seed=1), base.replace(lr=0.02, seed=2)]
    wild = base.replace(lr=1e38, seed=3)  # weights overflow: NaN in the first epoch
    alone = PopulationTrainer([Member(c, iris) for c in calm]).run()
    together = PopulationTrainer([Member(calm[0], iris), Member(wild, iris), Member(calm[1], iris)]).run()
    assert together[1].stop_reason.startswith("non-finite loss")
    for a, b in zip(alone, [together[0], together[2]]):
        assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
        assert [r.val_loss for r in a.history] == [r.val_loss for r in b.history]
        for x, y in zip(a.model.net.state_dict().values(), b.model.net.state_dict().values()):
            assert torch.equal(x, y)


def test_members_end_one_by_one_and_the_population_compacts(iris):
    base = TrainConfig(hidden=8, batch_size=8, epochs=6, patience=None, device="cpu")
    members = [Member(base.replace(seed=i, lr=0.01 * (i + 1)), iris) for i in range(4)]
    widths = []

    def prune(records, trainer):
        widths.append(trainer.net.K)
        epoch = next(iter(records.values())).epoch
        return {m: "pruned by the test" for m in records if epoch == 2 and m in (0, 2)}

    results = PopulationTrainer(members).run(prune)
    assert [len(r.history) for r in results] == [2, 6, 2, 6]
    assert results[0].stop_reason == "pruned by the test"
    assert widths == [4, 4, 2, 2, 2, 2]  # two of four ended: the stacks shrank to two
    solo = fit(members[3].config, iris)
    torch.testing.assert_close(torch.tensor([r.val_loss for r in results[3].history]), torch.tensor([r.val_loss for r in solo.history]), **LOSS_TOL)


def test_a_member_ended_before_compaction_leaves_the_others_as_fit_trains_them(iris):
    """One of five ending (below the compaction share) keeps its slot; the others are unaffected."""
    base = TrainConfig(hidden=8, batch_size=8, epochs=4, patience=None, device="cpu")
    members = [Member(base.replace(seed=i, lr=0.01 * (i + 1)), iris) for i in range(5)]
    results = PopulationTrainer(members).run(lambda records, trainer: {1: "pruned"} if 1 in records else {})
    assert [len(r.history) for r in results] == [4, 1, 4, 4, 4]
    for member, got in zip(members, results):
        if member is members[1]:
            continue
        want = fit(member.config, member.splits)
        torch.testing.assert_close(torch.tensor([r.val_loss for r in got.history]), torch.tensor([r.val_loss for r in want.history]), **LOSS_TOL)


def test_members_that_join_a_running_population_train_as_fit_trains_them(iris):
    """The tuner's refill: new members start at their own epoch 1 in a network padded wider."""
    base = TrainConfig(hidden=8, batch_size=8, epochs=4, patience=None, device="cpu", lr=0.01)
    first = [Member(base.replace(seed=0), iris), Member(base.replace(seed=1, hidden=5), iris)]
    later = [Member(base.replace(seed=2, hidden=12, lr=0.02), iris), Member(base.replace(seed=3, epochs=2), row_sets(iris, 2)[1])]
    trainer = PopulationTrainer(first, shapes=[(4, 16), (16, 16), (16, 3)])
    assert all(trainer.fits(m) for m in later) and not trainer.fits(Member(base.replace(hidden=17), iris))

    def refill(trainer):
        if len(trainer.members) == 2 and trainer.epochs_done[0] == 2:
            trainer.add(later)

    results = trainer.run(refill=refill)
    assert [len(r.history) for r in results] == [4, 4, 4, 2]
    for member, got in zip(first + later, results):
        want = fit(member.config, member.splits)
        torch.testing.assert_close(torch.tensor([r.val_loss for r in got.history]), torch.tensor([r.val_loss for r in want.history]), **LOSS_TOL)
        for a, b in zip(got.model.net.state_dict().values(), want.model.net.state_dict().values()):
            torch.testing.assert_close(a, b, **WEIGHT_TOL)


class LayerNorms:
    """Reference: each Linear layer's mean weight-gradient norm per epoch, from fit's own callbacks."""

    def __init__(self):
        self.epochs, self.steps = [], []

    def on_after_backward(self, state, loss):
        layers = [m for m in state.model.modules() if isinstance(m, torch.nn.Linear)]
        self.steps.append([float(m.weight.grad.norm()) for m in layers])

    def on_epoch_end(self, state, record):
        self.epochs.append([sum(col) / len(col) for col in zip(*self.steps)])
        self.steps = []


def test_monitor_reports_each_members_gradient_norms_as_a_single_run_measures_them(iris):
    base = TrainConfig(hidden=8, batch_size=8, epochs=3, patience=None, device="cpu", optimizer="gd")
    members = [Member(base.replace(lr=0.01, seed=0), iris), Member(base.replace(lr=0.5, hidden=5, seed=1), iris)]
    trainer = PopulationTrainer(members, monitor=True)
    trainer.run()
    for k, member in enumerate(members):
        reference = LayerNorms()
        fit(member.config, member.splits, callbacks=[reference])
        got = [r["grad_norms"] for r in trainer.watch.reports[k]]
        torch.testing.assert_close(torch.tensor(got), torch.tensor(reference.epochs), rtol=1e-3, atol=1e-6)
        assert all(len(r["gains"]) == 3 and all(g > 0 for g in r["gains"]) for r in trainer.watch.reports[k])
    assert trainer.watch.fatal(0) is None


def test_fatal_rules_on_a_members_measures():
    from gradwise.training.population.watch import diverging, exploding

    assert exploding([10.0, 10.0, 10.0], setup=True)  # 1000 over the depth, 10 a layer
    assert not exploding([10.0, 10.0, 10.0], setup=False)  # trained networks may amplify up to 1000
    assert not exploding([2.0, 2.0], setup=True)
    assert diverging([1.0, 0.5, 2.5])
    assert not diverging([1.0, 0.5, 0.9])


def weighted(splits, seed: int, zeros: float = 0.3):
    """The splits with row weights on train and val: a share ``zeros`` of 0s, the rest in (0.05, 3)."""
    rng = np.random.default_rng(seed)

    def part(p):
        w = rng.uniform(0.05, 3.0, len(p)).astype(np.float32)
        w[rng.random(len(p)) < zeros] = 0.0
        return Part(p.X, p.y, w)

    return replace(splits, train=part(splits.train), val=part(splits.val))


def assert_same_metrics(members: list[Member], results):
    """Each epoch's weighted train and validation metrics (accuracy, RMSE, R²) are fit's."""
    for member, got in zip(members, results):
        want = fit(member.config, member.splits)
        for a, b in zip(got.history, want.history):
            assert a.train_metrics.keys() == b.train_metrics.keys() and a.val_metrics.keys() == b.val_metrics.keys()
            for key in a.train_metrics:
                assert a.train_metrics[key] == pytest.approx(b.train_metrics[key], rel=1e-4, abs=1e-5)
            for key in a.val_metrics:
                assert a.val_metrics[key] == pytest.approx(b.val_metrics[key], rel=1e-4, abs=1e-5)


def unweighted_updates(member: Member, epochs: int) -> int:
    """The updates an unweighted run of ``epochs`` epochs takes: one per batch."""
    return epochs * math.ceil(len(member.splits.train) / member.config.resolved_batch_size(len(member.splits.train)))


WEIGHTED_OPTIMIZERS = ("gd", "momentum", "adam")


@pytest.mark.parametrize("optimizer,variant", [(o, v) for o in WEIGHTED_OPTIMIZERS for v in VARIANTS])
def test_weighted_members_train_what_fit_trains(iris, optimizer, variant):
    """Each batch's loss is sum(w·loss)/sum(w) over the member's real rows, the validation loss
    and metrics weighted as fit weights them; a batch of only weight-0 rows (batches of one
    here: every weight-0 row) makes no update, so the update counts are fit's."""
    epochs = 2 if variant == "stochastic" else 6
    base = TrainConfig(layers=2, hidden=8, batch_size=VARIANTS[variant], epochs=epochs, patience=None, device="cpu", **OPTIMIZERS[optimizer])
    folds = [weighted(f, seed=k) for k, f in enumerate(row_sets(iris, 3))]
    members = [Member(c, f) for c, f in zip(member_configs(base), folds)]
    results = assert_same_training(members)
    assert_same_metrics(members, results)
    if variant == "stochastic":
        assert all(r.updates < unweighted_updates(m, epochs) for m, r in zip(members, results))


class EndEveryEpochAt:
    """For fit: each epoch ends after ``steps`` steps (EndEpoch), as cut_epoch ends a population's."""

    def __init__(self, steps: int) -> None:
        self.steps, self.taken = steps, 0

    def on_step_end(self, state):
        self.taken += 1
        if self.taken % self.steps == 0:
            from gradwise import EndEpoch

            raise EndEpoch()

    def on_epoch_end(self, state, record):
        self.taken = 0


@pytest.mark.parametrize("weights", [False, True])
def test_an_epoch_cut_short_trains_what_fit_trains_when_its_epoch_ends_there(iris, weights):
    """cut_epoch() true after a step ends every member's epoch there: each member then matches
    fit with EndEpoch raised after the same step (its update count, losses and weights), also
    with batch sizes that differ, so one member's epoch holds more steps than another's."""
    base = TrainConfig(layers=2, hidden=8, epochs=3, patience=None, device="cpu", optimizer="adam")
    configs = [base.replace(batch_size=b, lr=lr, seed=i) for i, (b, lr) in enumerate(((2, 0.01), (3, 0.003), (4, 0.03)))]
    folds = row_sets(iris, 3)
    if weights:
        folds = [weighted(f, seed=k) for k, f in enumerate(folds)]
    members = [Member(c, f) for c, f in zip(configs, folds)]
    steps = {"n": 0}

    def cut() -> bool:  # after the 2nd step of every epoch
        steps["n"] += 1
        return steps["n"] % 2 == 0

    results = PopulationTrainer(members).run(on_epoch=lambda records, trainer: steps.update(n=0), cut_epoch=cut)
    for member, got in zip(members, results):
        want = fit(member.config, member.splits, callbacks=[EndEveryEpochAt(2)])
        assert got.updates == want.updates and len(got.history) == len(want.history) == 3
        assert want.updates <= 6 and (weights or want.updates == 6)
        torch.testing.assert_close(torch.tensor([r.train_loss for r in got.history]), torch.tensor([r.train_loss for r in want.history]), **LOSS_TOL)
        torch.testing.assert_close(torch.tensor([r.val_loss for r in got.history]), torch.tensor([r.val_loss for r in want.history]), **LOSS_TOL)
        for a, b in zip(got.model.net.state_dict().values(), want.model.net.state_dict().values()):
            torch.testing.assert_close(a, b, **WEIGHT_TOL)


def test_weighted_regression_with_batch_sizes_patience_and_weightless_batches(diabetes):
    """Members of other batch sizes (each batch laid out per member), early stopping on the
    weighted validation loss, weighted RMSE and R², and batches of only weight-0 rows sat out."""
    base = TrainConfig(layers=2, hidden=8, epochs=10, patience=2, device="cpu", optimizer="adam", lr=0.02)
    configs = [base.replace(batch_size=b, seed=i) for i, b in enumerate((3, 4, 7))]
    members = [Member(c, weighted(diabetes, seed=10 + i, zeros=0.6)) for i, c in enumerate(configs)]
    results = assert_same_training(members)
    assert_same_metrics(members, results)
    assert any(r.updates < unweighted_updates(m, len(r.history)) for m, r in zip(members, results))


def test_weighted_and_unweighted_members_share_a_population(iris):
    """An unweighted member among weighted ones counts each row once; a weighted member joins a
    population that started unweighted, and the stacks compact with the weights in them."""
    base = TrainConfig(hidden=8, batch_size=4, epochs=4, patience=None, device="cpu", optimizer="momentum", beta=0.8, lr=0.02)
    first = [Member(base.replace(seed=0), iris), Member(base.replace(seed=1), iris), Member(base.replace(seed=2), iris)]
    later = [Member(base.replace(seed=3), weighted(iris, seed=3, zeros=0.5)), Member(base.replace(seed=4, epochs=3), iris)]
    trainer = PopulationTrainer(first, shapes=[(4, 8), (8, 8), (8, 3)])
    assert trainer.train.w is None  # no member weighted: the unweighted path, no weights stacked

    stacks = []

    def refill(trainer):
        stacks.append((trainer.net.K, trainer.train.w is not None))
        if len(trainer.members) == 3 and trainer.epochs_done[0] == 1:
            trainer.add(later)

    def prune(records, trainer):
        return {m: "pruned" for m in (0, 1) if m in records and records[m].epoch == 2}

    results = trainer.run(prune, refill=refill)
    assert stacks[:3] == [(3, False), (3, True), (3, True)]  # 5 members after the join, 2 pruned: compacted, weights kept
    kept = [m for i, m in enumerate(first + later) if i not in (0, 1)]
    for member, got in zip(kept, [results[i] for i in (2, 3, 4)]):
        want = fit(member.config, member.splits)
        assert got.updates == want.updates
        torch.testing.assert_close(torch.tensor([r.train_loss for r in got.history]), torch.tensor([r.train_loss for r in want.history]), **LOSS_TOL)
        torch.testing.assert_close(torch.tensor([r.val_loss for r in got.history]), torch.tensor([r.val_loss for r in want.history]), **LOSS_TOL)
        for a, b in zip(got.model.net.state_dict().values(), want.model.net.state_dict().values()):
            torch.testing.assert_close(a, b, **WEIGHT_TOL)


def test_weighted_batch_norm_members_train_what_fit_trains(iris):
    """Batch statistics stay over all real rows (fit's BatchNorm1d sees weight-0 rows too), and a
    weightless batch leaves the running statistics untouched, as fit never runs it."""
    base = TrainConfig(layers=2, hidden=8, batch_size=4, epochs=3, patience=None, device="cpu", batch_norm=True, **BN_OPTIMIZERS["momentum"])
    folds = [weighted(f, seed=20 + k, zeros=0.7) for k, f in enumerate(bn_folds(iris))]
    members = [Member(c, f) for c, f in zip(member_configs(base), folds)]
    results = assert_same_batch_norm_training(members)
    assert all(r.updates < unweighted_updates(m, 3) for m, r in zip(members, results))
