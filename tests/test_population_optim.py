"""The batched optimizers, member by member, against gradwise.optim's reference updates."""

from __future__ import annotations

import pytest
import torch

from gradwise.optim import Adam, GD, Momentum, RMSprop
from gradwise.optim.batched import BatchedOptimizer, MemberHyper

K = 3
HYPER = {"lr": [0.1, 0.01, 0.003], "beta": [0.9, 0.5, 0.99], "beta1": [0.9, 0.8, 0.0],
         "beta2": [0.999, 0.9, 0.99], "eps": [1e-8, 1e-3, 1e-6], "weight_decay": [0.0, 0.01, 0.1]}


def reference(kind: str, param: torch.nn.Parameter, k: int, bias_correction: bool, eps_inside_sqrt: bool):
    h = {name: values[k] for name, values in HYPER.items()}
    if kind == "gd":
        return GD([param], lr=h["lr"], weight_decay=h["weight_decay"], impl="reference")
    if kind == "momentum":
        return Momentum([param], lr=h["lr"], beta=h["beta"], weight_decay=h["weight_decay"], impl="reference")
    if kind == "rmsprop":
        return RMSprop([param], lr=h["lr"], beta=h["beta"], eps=h["eps"], weight_decay=h["weight_decay"],
                       eps_inside_sqrt=eps_inside_sqrt, impl="reference")
    return Adam([param], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], weight_decay=h["weight_decay"],
                bias_correction=bias_correction, eps_inside_sqrt=eps_inside_sqrt, impl="reference")


# (kind, bias_correction, eps_inside_sqrt, fused): the default Adam form runs through torch's
# fused kernel (one call per distinct β1, β2, ε: here one per member) and, with fused off,
# through the eager ops.
CASES = [("gd", True, False, True), ("momentum", True, False, True), ("rmsprop", False, True, True), ("rmsprop", False, False, True),
         ("adam", True, False, True), ("adam", True, False, False), ("adam", False, True, True), ("adam", True, True, True),
         ("adam", False, False, True)]


@pytest.mark.parametrize("kind,bias_correction,eps_inside_sqrt,fused", CASES)
def test_each_member_steps_as_the_reference_optimizer(kind, bias_correction, eps_inside_sqrt, fused):
    torch.manual_seed(0)
    start = torch.randn(K, 4, 5)
    stacked = start.clone().requires_grad_(True)
    batched = BatchedOptimizer(kind, [stacked], MemberHyper.from_values(**HYPER), bias_correction, eps_inside_sqrt, use_fused=fused)
    singles = [torch.nn.Parameter(start[k].clone()) for k in range(K)]
    refs = [reference(kind, singles[k], k, bias_correction, eps_inside_sqrt) for k in range(K)]
    # Member 1 sits out steps 2 and 4 (its epoch had fewer batches): it must not move then.
    sits_out = {2, 4}
    for step in range(6):
        grads = torch.randn(K, 4, 5)
        stacked.grad = grads.clone()
        active = torch.tensor([True, step not in sits_out, True])
        batched.step(active)
        for k in range(K):
            if k == 1 and step in sits_out:
                continue
            singles[k].grad = grads[k].clone()
            refs[k].step()
    for k in range(K):
        torch.testing.assert_close(stacked.detach()[k], singles[k].detach(), rtol=1e-5, atol=1e-6)


def test_a_member_out_of_step_keeps_its_state_exactly():
    torch.manual_seed(1)
    stacked = torch.randn(K, 2, 2).requires_grad_(True)
    batched = BatchedOptimizer("adam", [stacked], MemberHyper.from_values(**HYPER))
    stacked.grad = torch.randn(K, 2, 2)
    batched.step()
    before = [stacked.detach()[2].clone(), batched.state["V"][0][2].clone(), batched.state["S"][0][2].clone()]
    stacked.grad = torch.randn(K, 2, 2)
    batched.step(torch.tensor([True, True, False]))
    after = [stacked.detach()[2], batched.state["V"][0][2], batched.state["S"][0][2]]
    for a, b in zip(before, after):
        assert torch.equal(a, b)
    assert batched.steps.tolist() == [2.0, 2.0, 1.0]


def test_fused_adam_groups_members_that_share_their_betas_and_matches_the_eager_update():
    torch.manual_seed(2)
    hyper = {"lr": [0.1, 0.01, 0.003, 0.02], "beta1": [0.9, 0.9, 0.5, 0.9], "beta2": [0.999, 0.999, 0.9, 0.999], "eps": [1e-8] * 4}
    start = torch.randn(4, 30)
    params = [start.clone().requires_grad_(True) for _ in range(2)]
    fused, eager = (BatchedOptimizer("adam", [p], MemberHyper.from_values(**hyper), use_fused=f) for p, f in zip(params, (True, False)))
    for step in range(5):
        grads = torch.randn(4, 30)
        for p, opt in zip(params, (fused, eager)):
            p.grad = grads.clone()
            opt.step(torch.tensor([True, step != 1, True, True]))
    # Member 1 sat a step out, so its step count splits the run of members 0, 1 (and 3).
    assert [runs for runs, _ in fused._fused.member_runs(fused.steps, fused.hyper)] == [[(0, 1), (1, 2), (3, 4)], [(2, 3)]]
    torch.testing.assert_close(params[0].detach(), params[1].detach(), rtol=1e-6, atol=1e-7)


def test_fused_adam_keeps_no_copies_across_steps_with_weight_decay():
    """The kernel's argument lists are cached by tensor address: a new decayed gradient each
    step would add an entry (and keep a [K, P] tensor alive) every step."""
    stacked = torch.randn(K, 50).requires_grad_(True)
    batched = BatchedOptimizer("adam", [stacked], MemberHyper.from_values(**HYPER))
    for _ in range(6):
        stacked.grad = torch.randn(K, 50)  # a new gradient tensor every step
        batched.step()
    assert len(batched._fused.calls) == 1


def test_subnormal_running_averages_are_set_to_zero_and_nothing_else_moves():
    stacked = torch.randn(K, 6).requires_grad_(True)
    batched = BatchedOptimizer("adam", [stacked], MemberHyper.from_values(**HYPER))
    V = batched.state["V"][0]
    V.copy_(torch.tensor([1e-39, -5e-40, 1e-30, 0.5, -2e-38, 1.2e-38]).expand(K, 6))
    before = V.clone()
    batched.flush_subnormal_state()
    tiny = torch.finfo(torch.float32).tiny
    assert torch.equal(V[:, [0, 1]], torch.zeros(K, 2))  # subnormal: flushed
    assert torch.equal(V[:, [2, 3, 4, 5]], before[:, [2, 3, 4, 5]])  # normal floats (>= tiny) are kept
    assert bool((before[:, 4].abs() >= tiny).all()) and bool((before[:, 0].abs() < tiny).all())
