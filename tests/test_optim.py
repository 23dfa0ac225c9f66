"""One registry of optimizer configurations shared by the optimizer tests.

Each case names a gradwise optimizer, its arguments, and the learning rates that make it
converge on the test problems. ``plain_step`` is an independent float64 NumPy
implementation of the equations in EQUATIONS.md section 3, written as they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import warnings

import numpy as np

from gradwise.optim import GD, Adam, Momentum, RMSprop, make_schedule


@dataclass(frozen=True)
class Case:
    cls: type
    kwargs: dict[str, Any]
    # (learning rate, steps, --lr-decay spec) that reach the minimum from a fixed start
    bowl: tuple[float, int, str | None]
    rosenbrock: tuple[float, int, str | None] | None  # None: weight decay moves the minimum
    buffers: tuple[str, ...] = field(default=())

    def make(self, params, **overrides):
        return self.cls(params, **{**self.kwargs, **overrides})


_BOWL = (0.05, 1500, "cosine")
CASES = {
    "gd": Case(GD, {"lr": 0.05}, (0.09, 300, None), (2e-3, 6000, None)),
    "gd_weight_decay": Case(GD, {"lr": 0.05, "weight_decay": 0.01}, (0.09, 300, None), None),
    "momentum": Case(Momentum, {"lr": 0.05, "beta": 0.9}, (0.09, 600, None), (0.02, 3000, "cosine"), ("V",)),
    "momentum_weight_decay": Case(Momentum, {"lr": 0.05, "beta": 0.8, "weight_decay": 0.01}, (0.09, 600, None), None, ("V",)),
    "rmsprop_document": Case(RMSprop, {"lr": 0.01, "beta": 0.9, "eps": 1e-2}, _BOWL, (0.01, 3000, "cosine"), ("S",)),
    "rmsprop_eps_outside": Case(RMSprop, {"lr": 0.01, "beta": 0.95, "eps": 1e-2, "eps_inside_sqrt": False}, _BOWL,
                                (0.01, 3000, "cosine"), ("S",)),
    "adam_document": Case(Adam, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-2, "bias_correction": False}, _BOWL,
                          (0.05, 3000, "cosine"), ("V", "S")),
    "adam_default": Case(Adam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-2}, _BOWL, (0.01, 3000, "cosine"), ("V", "S")),
    "adam_kingma_ba": Case(Adam, {"lr": 0.01, "eps": 1e-2, "eps_inside_sqrt": False}, _BOWL, (0.05, 3000, "cosine"), ("V", "S")),
    "adam_weight_decay": Case(Adam, {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.05, "eps_inside_sqrt": False}, _BOWL,
                              None, ("V", "S")),
}


def plain_step(case: Case, theta: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """One update of the document's equations; ``state`` holds V, S and t and is updated."""
    h = case.kwargs
    g = grad + h.get("weight_decay", 0.0) * theta
    lr = h["lr"]
    if case.cls is GD:
        return theta - lr * g
    if case.cls is Momentum:
        state["V"] = h["beta"] * state["V"] + (1 - h["beta"]) * g
        return theta - lr * state["V"]
    eps = h["eps"]
    inside = h.get("eps_inside_sqrt", True)
    if case.cls is RMSprop:
        state["S"] = h["beta"] * state["S"] + (1 - h["beta"]) * g**2
        root = np.sqrt(state["S"] + eps) if inside else np.sqrt(state["S"]) + eps
        return theta - lr * g / root
    beta1, beta2 = h.get("betas", (0.9, 0.999))
    state["t"] += 1
    state["V"] = beta1 * state["V"] + (1 - beta1) * g
    state["S"] = beta2 * state["S"] + (1 - beta2) * g**2
    V, S = state["V"], state["S"]
    if h.get("bias_correction", True):
        V, S = V / (1 - beta1 ** state["t"]), S / (1 - beta2 ** state["t"])
    root = np.sqrt(S + eps) if inside else np.sqrt(S) + eps
    return theta - lr * V / root


# ---------------------------------------------------------------- helpers

import copy  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from gradwise.optim import _compile  # noqa: E402

NAMES = list(CASES)
EAGER = ("reference", "foreach")


def random_problem(seed: int, shapes=((4, 3), (3,), (1,)), dtype=torch.float64):
    """Parameters and a fixed sequence of random gradients for them."""
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in range(9)]
    return params, grads


def run(optimizer, params, grads) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()


def seed_random_state(case: Case, optimizer, params, seed: int) -> list[dict[str, Any]]:
    """Give every parameter a random non-zero state, as if 3 steps had already run."""
    gen = torch.Generator().manual_seed(seed)
    plain = []
    for p in params:
        state = {"step": 3}
        for name in case.buffers:
            value = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            state[name] = value.abs() if name == "S" else value
        optimizer.state[p] = state
        plain.append({"t": 3, **{k: v.numpy().copy() for k, v in state.items() if k != "step"}})
    return plain


# ---------------------------------------------------------------- the equations, plainly


@pytest.mark.parametrize("impl", EAGER)
@pytest.mark.parametrize("start", ["fresh", "random_state"])
@pytest.mark.parametrize("name", NAMES)
def test_optimizer_matches_plain_float64_equations_for_nine_steps(name, start, impl):
    case = CASES[name]
    params, grads = random_problem(1)
    optimizer = case.make(params, impl=impl)
    thetas = [p.detach().numpy().copy() for p in params]
    if start == "random_state":
        plain = seed_random_state(case, optimizer, params, 2)
    else:
        plain = [{"t": 0, "V": np.zeros_like(t), "S": np.zeros_like(t)} for t in thetas]
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
        for i, (p, g) in enumerate(zip(params, step_grads)):
            thetas[i] = plain_step(case, thetas[i], g.numpy(), plain[i])
            np.testing.assert_allclose(p.detach().numpy(), thetas[i], rtol=1e-12, atol=1e-14)
            for buffer in case.buffers:
                np.testing.assert_allclose(optimizer.state[p][buffer].numpy(), plain[i][buffer], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- torch.optim where the forms coincide


def _torch_twin(name: str, params):
    h = CASES[name].kwargs
    wd = h.get("weight_decay", 0.0)
    if name.startswith("gd"):
        return torch.optim.SGD(params, lr=h["lr"], weight_decay=wd), {}
    if name.startswith("momentum"):
        # torch keeps the undamped sum buf = V / (1 − β) and steps by lr·buf.
        beta = h["beta"]
        return (torch.optim.SGD(params, lr=h["lr"] * (1 - beta), momentum=beta, weight_decay=wd),
                {"V": lambda s: s["momentum_buffer"] * (1 - beta)})
    if name == "rmsprop_eps_outside":
        return (torch.optim.RMSprop(params, lr=h["lr"], alpha=h["beta"], eps=h["eps"], weight_decay=wd),
                {"S": lambda s: s["square_avg"]})
    return (torch.optim.Adam(params, lr=h["lr"], betas=h.get("betas", (0.9, 0.999)), eps=h["eps"], weight_decay=wd),
            {"V": lambda s: s["exp_avg"], "S": lambda s: s["exp_avg_sq"]})


TORCH_TWINS = ["gd", "gd_weight_decay", "momentum", "momentum_weight_decay", "rmsprop_eps_outside",
               "adam_kingma_ba", "adam_weight_decay"]


@pytest.mark.parametrize("impl", EAGER)
@pytest.mark.parametrize("name", TORCH_TWINS)
def test_optimizer_equals_torch_optim_where_the_forms_coincide(name, impl):
    ours, grads = random_problem(3)
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    ours_opt = CASES[name].make(ours, impl=impl)
    torch_opt, state_map = _torch_twin(name, theirs)
    run(ours_opt, ours, grads)
    run(torch_opt, theirs, grads)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        for buffer, read in state_map.items():
            torch.testing.assert_close(ours_opt.state[a][buffer], read(torch_opt.state[b]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("impl", EAGER)
@pytest.mark.parametrize("eps_inside_sqrt", [True, False])
def test_rmsprop_is_document_adam_with_beta1_zero(impl, eps_inside_sqrt):
    a, grads = random_problem(4, dtype=torch.float32)
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    rms = RMSprop(a, lr=0.01, beta=0.95, eps=1e-3, eps_inside_sqrt=eps_inside_sqrt, impl=impl)
    adam = Adam(b, lr=0.01, betas=(0.0, 0.95), eps=1e-3, bias_correction=False, eps_inside_sqrt=eps_inside_sqrt, impl=impl)
    run(rms, a, grads)
    run(adam, b, grads)
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        assert torch.equal(rms.state[p]["S"], adam.state[q]["S"])


def test_momentum_with_beta_zero_is_gd():
    a, grads = random_problem(5)
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    run(Momentum(a, lr=0.1, beta=0.0, impl="reference"), a, grads)
    run(GD(b, lr=0.1, impl="reference"), b, grads)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-15, atol=0)


# ---------------------------------------------------------------- fast paths equal the reference


def _assert_same_run(case: Case, impl: str, seed: int, rtol: float) -> None:
    shapes = ((64, 33), (33,), (5, 1, 7), (1,))
    a, grads = random_problem(seed, shapes, torch.float32)
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    reference, fast = case.make(a, impl="reference"), case.make(b, impl=impl)
    run(reference, a, grads)
    run(fast, b, grads)
    for p, q in zip(a, b):
        # atol: a few float32 ulps of O(1) values, where two roundings of β·V + (1 − β)·dθ
        # that cancel to near zero may legitimately differ.
        torch.testing.assert_close(q, p, rtol=rtol, atol=1e-6)
        for buffer in case.buffers:
            torch.testing.assert_close(fast.state[q][buffer], reference.state[p][buffer], rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_foreach_path_equals_reference_in_float32(name):
    _assert_same_run(CASES[name], "foreach", 6, rtol=1e-6)


COMPILED = ["momentum_weight_decay", "rmsprop_document", "adam_weight_decay"]


@pytest.mark.skipif(not _compile.compile_allowed(), reason="torch.compile disabled (GRADWISE_COMPILE=0)")
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_path_equals_reference_in_float32(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _assert_same_run(CASES[name], "compiled", 7, rtol=1e-6)
    if _compile._failure:  # the run fell back to foreach, so it proved nothing about the kernel
        pytest.skip(f"torch.compile does not work here: {_compile._failure[0]}")


def test_auto_compiles_only_large_groups():
    big = _compile.AUTO_COMPILE_MIN_NUMEL
    assert _compile.choose("auto", big - 1, compile_pays=True) == "foreach"
    assert _compile.choose("auto", big, compile_pays=True) == ("compiled" if _compile.compile_allowed() else "foreach")
    assert _compile.choose("auto", big, compile_pays=False) == "foreach"
    assert _compile.choose("reference", big, compile_pays=True) == "reference"


# ---------------------------------------------------------------- convergence


def bowl_gradient(x: list[float]) -> list[float]:
    """f(x) = (x0² + 10·x1²) / 2: a narrow bowl, minimum at 0."""
    return [x[0], 10.0 * x[1]]


def rosenbrock_gradient(x: list[float]) -> list[float]:
    """f(a, b) = (1 − a)² + 100 (b − a²)²: a curved valley, minimum at (1, 1)."""
    a, b = x
    return [-2.0 * (1 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)]


def descend(case: Case, gradient, start, setting) -> torch.Tensor:
    lr, steps, decay = setting
    x = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = case.make([x], lr=lr, impl="reference")
    schedule = make_schedule(decay, lr, steps)  # the epoch schedules, here applied per step
    for t in range(steps):
        optimizer.param_groups[0]["lr"] = schedule(t)
        x.grad = torch.tensor(gradient(x.tolist()), dtype=torch.float64)
        optimizer.step()
    return x.detach()


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_converges_on_quadratic_bowl(name):
    x = descend(CASES[name], bowl_gradient, [3.0, -2.0], CASES[name].bowl)
    assert x.norm() < 1e-3


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].rosenbrock])
def test_optimizer_converges_on_rosenbrock(name):
    x = descend(CASES[name], rosenbrock_gradient, [-1.2, 1.0], CASES[name].rosenbrock)
    assert (x - 1).norm() < 0.05


# ---------------------------------------------------------------- state_dict, param groups, schedulers


@pytest.mark.parametrize("impl", EAGER)
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_mid_run_continues_bit_identically(name, impl):
    case = CASES[name]
    params, grads = random_problem(8, dtype=torch.float32)
    optimizer = case.make(params, impl=impl)
    run(optimizer, params, grads[:4])
    saved_params = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(optimizer.state_dict())
    run(optimizer, params, grads[4:])

    resumed = [torch.nn.Parameter(p) for p in saved_params]
    fresh = case.make(resumed, impl=impl, lr=0.123)  # the saved lr must win
    fresh.load_state_dict(saved_state)
    run(fresh, resumed, grads[4:])
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
        for buffer in case.buffers:
            assert torch.equal(optimizer.state[p][buffer], fresh.state[q][buffer])


def test_each_param_group_uses_its_own_learning_rate():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    optimizer = GD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    optimizer.step()
    assert torch.equal(a, torch.full((3,), -0.1)) and torch.equal(b, torch.full((2,), -0.5))


def test_parameters_without_gradient_are_left_alone_and_get_no_state():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = Adam([a, b], lr=0.1)
    a.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(b, torch.ones(2)) and b not in optimizer.state


@pytest.mark.parametrize("name", ["gd", "momentum", "rmsprop_document", "adam_default"])
def test_torch_lr_schedulers_drive_gradwise_optimizers(name):
    x = torch.nn.Parameter(torch.zeros(1))
    optimizer = CASES[name].make([x], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    seen = []
    for _ in range(5):
        x.grad = torch.ones(1)
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == [0.1, 0.05, 0.05, 0.025, 0.025]


def test_step_post_hooks_run():
    x = torch.nn.Parameter(torch.zeros(1))
    optimizer = Momentum([x], lr=0.1)
    calls = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append(opt))
    x.grad = torch.ones(1)
    optimizer.step()
    assert calls == [optimizer]


def test_closure_loss_is_returned():
    x = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = GD([x], lr=0.25)

    def closure():
        optimizer.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 4.0 and x.item() == 1.0


# ---------------------------------------------------------------- invalid arguments

INVALID = [
    (GD, {"lr": -0.1}, "lr", "-0.1"),
    (GD, {"lr": "0.1"}, "lr", "'0.1'"),
    (GD, {"lr": float("nan")}, "lr", "nan"),
    (GD, {"weight_decay": -1.0}, "weight_decay", "-1.0"),
    (GD, {"impl": "fast"}, "impl", "'fast'"),
    (Momentum, {"beta": 1.0}, "beta", "1.0"),
    (Momentum, {"beta": -0.1}, "beta", "-0.1"),
    (Momentum, {"beta": True}, "beta", "True"),
    (RMSprop, {"eps": 0.0}, "eps", "0.0"),
    (RMSprop, {"beta": 1.5}, "beta", "1.5"),
    (RMSprop, {"eps_inside_sqrt": "yes"}, "eps_inside_sqrt", "'yes'"),
    (Adam, {"betas": (0.9, 1.0)}, "betas[1]", "1.0"),
    (Adam, {"betas": (-0.5, 0.9)}, "betas[0]", "-0.5"),
    (Adam, {"betas": 0.9}, "betas", "0.9"),
    (Adam, {"eps": -1e-8}, "eps", "-1e-08"),
    (Adam, {"bias_correction": 1}, "bias_correction", "1"),
]


@pytest.mark.parametrize("cls, kwargs, argument, shown", INVALID)
def test_invalid_argument_raises_value_error_naming_argument_and_value(cls, kwargs, argument, shown):
    with pytest.raises(ValueError) as caught:
        cls([torch.nn.Parameter(torch.zeros(1))], **{"lr": 0.1, **kwargs})
    assert str(caught.value).startswith(f"{argument} must") and shown in str(caught.value)


def test_invalid_value_in_a_param_group_is_rejected():
    with pytest.raises(ValueError, match=r"^lr must .*-1"):
        GD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": -1}], lr=0.1)


def test_zero_learning_rate_is_allowed_and_changes_nothing():
    x = torch.nn.Parameter(torch.ones(2))
    optimizer = Adam([x], lr=0.0)
    x.grad = torch.ones(2)
    optimizer.step()
    assert torch.equal(x, torch.ones(2))


FALLBACK_SCRIPT = """
import warnings, torch, torch._inductor.config as inductor
inductor.cpp.cxx = ("/nonexistent/c++",)  # no working C++ compiler
from gradwise.optim import Adam
a, b = [torch.nn.Parameter(torch.ones(7, 3))], [torch.nn.Parameter(torch.ones(7, 3))]
fast, reference = Adam(a, lr=0.1, impl="compiled"), Adam(b, lr=0.1, impl="reference")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for t in range(3):
        a[0].grad, b[0].grad = torch.full((7, 3), t + 1.0), torch.full((7, 3), t + 1.0)
        fast.step(); reference.step()
assert torch.allclose(a[0], b[0]) and not torch.equal(a[0], torch.ones(7, 3))
assert sum("torch.compile failed" in str(w.message) for w in caught) == 1, [str(w.message) for w in caught]
"""


@pytest.mark.slow
def test_compiled_path_falls_back_to_foreach_with_one_warning_when_compilation_fails(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}  # no cached kernel to hide the failure
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
