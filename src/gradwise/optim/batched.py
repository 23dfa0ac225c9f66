"""The document's four optimizers over K networks at once (population training).

Every tensor handed here is a stack of K members' parameters along dim 0 (a fused layer's
[K, in, out] weights, or the population's flat [K, P] buffer). Each hyperparameter is a
float64 tensor of shape [K]: member k's α, β, β1, β2, ε, λ. It is reshaped to [K, 1, ...]
so it broadcasts over the member's elements, and each update is one op over all members,
not K. The update rules are :mod:`gradwise.optim`'s, written with the same helpers'
arithmetic (lerp for the gradient average, as the foreach path does), and tested member by
member against them (tests/test_population_optim.py).

Members can sit a step out (``active`` false): a fold with fewer rows has fewer batches
in an epoch, and an ended member must not move. Their parameters, running averages and
step counts are then left exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

KINDS = ("gd", "momentum", "rmsprop", "adam")
_BUFFERS = {"gd": (), "momentum": ("V",), "rmsprop": ("S",), "adam": ("V", "S")}


@dataclass
class MemberHyper:
    """Per-member hyperparameters, each a float64 tensor of shape [K]."""

    lr: Tensor
    beta: Tensor  # momentum / RMSprop average
    beta1: Tensor
    beta2: Tensor
    eps: Tensor
    weight_decay: Tensor

    @classmethod
    def from_values(cls, device: torch.device | str = "cpu", **values: list[float]) -> "MemberHyper":
        k = len(values["lr"])
        defaults = {"beta": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
        full = {name: values.get(name, [defaults.get(name, 0.0)] * k) for name in ("lr", *defaults)}
        return cls(**{name: torch.tensor(v, dtype=torch.float64, device=device) for name, v in full.items()})

    def select(self, index: Tensor) -> "MemberHyper":
        return MemberHyper(*(getattr(self, n).index_select(0, index) for n in self.__dataclass_fields__))


def per_member(values: Tensor, like: Tensor) -> Tensor:
    """A [K] tensor as [K, 1, ..., 1] in ``like``'s dtype, so it broadcasts over each member."""
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


@dataclass
class BatchedOptimizer:
    """``kind`` over stacked ``params``; ``step(active)`` reads each parameter's ``.grad``.

    ``bias_correction`` and ``eps_inside_sqrt`` are shared by the population (they change the
    sequence of operations); everything numeric is per member.
    """

    kind: str
    params: list[Tensor]
    hyper: MemberHyper
    bias_correction: bool = True
    eps_inside_sqrt: bool = False
    state: dict[str, list[Tensor]] = field(default_factory=dict)
    steps: Tensor | None = None  # [K] steps taken by each member (Adam's t)
    use_fused: bool = True  # Adam through torch's fused kernel where its form fits (tests compare both)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"a population trains with one of {', '.join(KINDS)}, got {self.kind!r}")
        self.state = {name: [torch.zeros_like(p) for p in self.params] for name in _BUFFERS[self.kind]}
        self.steps = torch.zeros(self.params[0].shape[0], dtype=torch.float64, device=self.params[0].device)
        self._cache: dict = {}  # per-member constants shaped for each parameter
        self._buffers: dict = {}  # parameter index -> its weight-decayed gradient, kept across steps
        self._fused = FusedAdam()

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One update of every member; ``active`` ([K] bool) leaves the others untouched."""
        if active is not None and bool(active.all()):
            active = None
        kept = None if active is None else self._snapshot()
        self.steps += 1 if active is None else active.to(self.steps.dtype)
        if active is not None:  # step counts now differ: the fused kernel's runs are made anew
            self._fused.forget()
        for i, p in enumerate(self.params):
            self._update(i, p, p.grad)
        if kept is not None:
            self._restore_inactive(kept, active)
            self._fused.forget()

    def select(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (compaction; ``params`` are replaced by the caller)."""
        self.hyper = self.hyper.select(index)
        self._cache = {}
        self._fused.forget()
        self.state = {name: [t.index_select(0, index) for t in ts] for name, ts in self.state.items()}
        self.steps = self.steps.index_select(0, index)

    def flush_subnormal_state(self) -> None:
        """Set the running averages' subnormal values (below 1.2e-38 in float32) to zero.

        A unit whose gradient is exactly zero (a dead ReLU) has its V shrink by β each step,
        into the subnormal range after some 800 steps, where every op over V runs many times
        slower: on a 50,000 x 32 table with 3x128 networks, 12% of V was subnormal from
        epoch 6 and epochs took 0.73 s instead of 0.47 s. The CPU's flush-to-zero mode would
        cure it, but torch sets it for the calling thread only, not for its worker threads.
        Once zero, such a V stays zero; the update it gave was below 1e-30 anyway. The
        trainer calls this once an epoch (three passes over V, against the seven a step)."""
        for name in ("V", "S"):
            for t in self.state.get(name, []):
                if t.dtype == torch.float32 and t.device.type == "cpu":
                    t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0.0)

    def set_lr(self, lr: Tensor) -> None:
        """Each member's α for the coming steps (the trainer's per-epoch decay)."""
        self.hyper.lr = lr
        self._cache = {}

    def _constant(self, name: str, p: Tensor) -> Tensor:
        """A per-member constant (β, 1 − β, ε, λ) shaped for ``p``, made once, not every step."""
        key = (name, p.dim(), p.dtype)
        if key not in self._cache:
            h = self.hyper
            values = {"beta": h.beta, "1-beta": 1 - h.beta, "beta1": h.beta1, "1-beta1": 1 - h.beta1, "beta2": h.beta2,
                      "1-beta2": 1 - h.beta2, "eps": h.eps, "weight_decay": h.weight_decay, "-lr": -h.lr}[name]
            self._cache[key] = per_member(values, p)
            self._cache[("any", name)] = bool((values != 0).any())
        return self._cache[key]

    def _cache_any(self, name: str, p: Tensor) -> bool:
        """Whether any member's ``name`` is non-zero (weight decay is skipped when none is)."""
        self._constant(name, p)
        return self._cache[("any", name)]

    def extend(self, hyper: MemberHyper) -> None:
        """New members (``hyper`` theirs) appended with fresh state; ``params`` are replaced by the caller."""
        self.hyper = MemberHyper(*(torch.cat([getattr(self.hyper, n), getattr(hyper, n)]) for n in self.hyper.__dataclass_fields__))
        k = len(hyper.lr)
        self.state = {name: [torch.cat([t, t.new_zeros(k, *t.shape[1:])]) for t in ts] for name, ts in self.state.items()}
        self.steps = torch.cat([self.steps, self.steps.new_zeros(k)])
        self._cache = {}
        self._fused.forget()

    def _update(self, i: int, p: Tensor, g: Tensor) -> None:
        # Each line is one pass over the population's memory, and the step is memory-bound,
        # so the updates are written with as few passes as the equations allow (Adam: 7).
        c = self._constant
        if self._cache_any("weight_decay", p):  # dθ + λθ, into a buffer kept across steps
            g = torch.addcmul(g, p, c("weight_decay", p), out=_kept_buffer(self._buffers, i, p))
        if self.kind == "gd":
            p.addcmul_(g, c("-lr", p))  # θ := θ − α dθ
        elif self.kind == "momentum":
            V = self.state["V"][i]
            V.lerp_(g, c("1-beta", p))  # V := β V + (1 − β) dθ
            p.addcmul_(V, c("-lr", p))
        elif self.kind == "rmsprop":
            S = self.state["S"][i]
            S.lerp_(g * g, c("1-beta", p))  # S := β S + (1 − β) dθ²
            p.addcdiv_(g * c("-lr", p), self._root(S, c("eps", p)))
        else:
            self._adam(i, p, g)

    def _adam(self, i: int, p: Tensor, g: Tensor) -> None:
        if self._fused_adam_fits(p):
            self._fused.update(i, p, g, self.state["V"][i], self.state["S"][i], self.steps, self.hyper)
            return
        V, S = self.state["V"][i], self.state["S"][i]
        V.lerp_(g, self._constant("1-beta1", p))  # V := β1 V + (1 − β1) dθ
        S.lerp_(g * g, self._constant("1-beta2", p))  # S := β2 S + (1 − β2) dθ²
        step, eps = self._adam_scalars(p)
        p.addcdiv_(V * step, self._root(S, eps))  # θ := θ − α V̂ / (sqrt(Ŝ) + ε)

    def _fused_adam_fits(self, p: Tensor) -> bool:
        """torch's fused Adam kernel computes the bias-corrected form with ε outside the root,
        in float32 or float64, on contiguous tensors: the form ``gradwise.optim`` uses by default."""
        return (self.use_fused and self.bias_correction and not self.eps_inside_sqrt and hasattr(torch, "_fused_adam_")
                and p.dtype in (torch.float32, torch.float64) and p.is_contiguous() and p.device.type in ("cpu", "cuda"))

    def _adam_scalars(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """−step size and ε, per member, with the bias corrections folded in.

        With V̂ = V / c1 and Ŝ = S / c2 (c = 1 − β^t, t the member's own step count, in
        float64 as the reference): α V̂ / (sqrt(Ŝ) + ε) = (α sqrt(c2) / c1) V / (sqrt(S) + ε sqrt(c2)),
        and with ε inside the root, α V̂ / sqrt(Ŝ + ε) = (α sqrt(c2) / c1) V / sqrt(S + ε c2).
        So the update never divides S or V by the corrections: two passes fewer."""
        h = self.hyper
        if not self.bias_correction:
            return self._constant("-lr", p), self._constant("eps", p)
        c1, c2 = 1 - h.beta1 ** self.steps, 1 - h.beta2 ** self.steps
        eps = h.eps * (c2 if self.eps_inside_sqrt else c2.sqrt())
        return per_member(-h.lr * c2.sqrt() / c1, p), per_member(eps, p)

    def _root(self, S: Tensor, eps: Tensor) -> Tensor:
        return (S + eps).sqrt_() if self.eps_inside_sqrt else S.sqrt().add_(eps)

    def _snapshot(self) -> list[Tensor]:
        return [t.clone() for t in self._tensors()]

    def _restore_inactive(self, kept: list[Tensor], active: Tensor) -> None:
        for now, before in zip(self._tensors(), kept):
            now.copy_(torch.where(per_member(active, now).bool(), now, before))

    def _tensors(self) -> list[Tensor]:
        return [*self.params, *(t for ts in self.state.values() for t in ts)]


def _kept_buffer(buffers: dict, key: Any, like: Tensor) -> Tensor:
    """A contiguous buffer shaped like ``like`` under ``key``, made again only when that changes."""
    buffer = buffers.get(key)
    if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
        buffer = buffers[key] = torch.empty_like(like, memory_format=torch.contiguous_format)
    return buffer


class FusedAdam:
    """The population's Adam update through torch's fused kernel: one pass over θ, dθ, V and S
    in place of seven, 3.2x faster at 40 members x 55,000 weights on one CPU thread.

    The kernel takes one α, β1, β2 and ε for all its tensors, but a step count t per tensor.
    So it runs with α = 1 on a zeroed scratch buffer U, which leaves U = −V̂ / (sqrt(Ŝ) + ε)
    per member, and θ := θ + α U applies each member's α (two passes more). Members run in
    slices: per distinct (β1, β2, ε), one slice per run of consecutive members that share
    them and their step count. With every member alike that is one [K, P] tensor, which the
    kernel splits across threads (one row per member was one thread's work).

    The argument lists are made once per set of tensors (building them every step cost
    about 0.1 ms), keyed by the tensors' addresses, so the gradient handed in must be a
    tensor that lives across steps; :meth:`forget` drops them when the members change.
    Weight decay is already in the gradient."""

    def __init__(self) -> None:
        self.calls: dict[tuple, list] = {}  # (param index, addresses, shape) -> kernel argument lists
        self.runs: list[tuple[list[tuple[int, int]], tuple[float, float, float]]] | None = None
        self.buffers: dict = {}  # U and a contiguous gradient per parameter, and the step counts
        self.steps: Tensor | None = None

    def forget(self) -> None:
        self.calls, self.runs = {}, None

    def update(self, i: int, p: Tensor, g: Tensor, V: Tensor, S: Tensor, steps: Tensor, hyper: MemberHyper) -> None:
        U = _kept_buffer(self.buffers, ("update", i), p)
        U.zero_()
        g = g if g.is_contiguous() else _kept_buffer(self.buffers, ("grad", i), p).copy_(g)
        calls = self._calls(i, (U, g, V, S), steps, hyper)
        self.steps.copy_(steps)  # the kernel reads t; BatchedOptimizer.step counted it
        for args, (beta1, beta2, eps) in calls:
            torch._fused_adam_(*args, lr=1.0, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        p.addcmul_(U, per_member(hyper.lr, p))

    def _calls(self, i: int, tensors: tuple[Tensor, ...], steps: Tensor, hyper: MemberHyper) -> list:
        if self.steps is None or self.steps.shape != steps.shape or self.steps.dtype != tensors[0].dtype:
            self.steps = torch.empty(steps.shape, dtype=tensors[0].dtype, device=tensors[0].device)
            self.calls = {}  # they hold views of the old step counts
        key = (i, tuple(t.data_ptr() for t in tensors), tensors[0].shape)
        if key not in self.calls:
            self.calls[key] = [(tuple([t[a:b] for a, b in runs] for t in tensors) + ([], [self.steps[a] for a, _ in runs]), betas)
                               for runs, betas in self.member_runs(steps, hyper)]
        return self.calls[key]

    def member_runs(self, steps: Tensor, hyper: MemberHyper) -> list[tuple[list[tuple[int, int]], tuple[float, float, float]]]:
        """Runs [a, b) of consecutive members alike in (β1, β2, ε) and step count, grouped by
        (β1, β2, ε); made again after :meth:`forget`."""
        if self.runs is None:
            keys = list(zip(hyper.beta1.tolist(), hyper.beta2.tolist(), hyper.eps.tolist()))
            counts, groups, start = steps.tolist(), {}, 0
            for k in range(1, len(keys) + 1):
                if k == len(keys) or (keys[k], counts[k]) != (keys[start], counts[start]):
                    groups.setdefault(keys[start], []).append((start, k))
                    start = k
            self.runs = [(runs, key) for key, runs in groups.items()]
        return self.runs


def optimizer_form(optimizer: str, extra: dict | None) -> tuple[bool, bool]:
    """(bias_correction, eps_inside_sqrt) that :func:`gradwise.optim.build_optimizer` gives ``optimizer``."""
    extra = extra or {}
    if optimizer == "adam":
        return bool(extra.get("bias_correction", True)), bool(extra.get("eps_inside_sqrt", False))
    if optimizer == "rmsprop":
        return False, bool(extra.get("eps_inside_sqrt", True))
    return False, False
