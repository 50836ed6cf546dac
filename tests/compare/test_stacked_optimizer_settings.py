"""Conformance: a stacked copy's optimizer step is its solo run's, for every setting a user sets and every LR.

Each optimizer :data:`LINEAR_IN_LR` vectorises, with the non-default settings a user writes, driven by
LR sequences that are hard for one update at ``lr_max`` then ``lerp`` by ``lr_k / lr_max``: a copy at
LR 0 beside one that is not, every copy at LR 0 (warmup from 0, decay to 0: ``lr_max = 0``), LRs 1e6
apart, a copy's LR climbing above the largest it had. After a few steps each row (parameters and every
state tensor: momentum buffers, moments, step counts) must be where that copy's own torch optimizer
leaves it, to a few ulps (the module's promise: one more rounded product per step at most).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from lightning_lrsched.compare.stacked.optimizer import VectorisedOptimizer, vectorise

K = 3
STEPS = 6
# ulps (of a tensor's largest magnitude) a row may be from its solo run after STEPS steps: one more rounded
# product a step, and a batched kernel's rounding of the state (measured: at most 4).
ULPS = 8

SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
SETTINGS: list[tuple[type[torch.optim.Optimizer], dict[str, Any]]] = [
    (SGD, {"momentum": 0.9, "dampening": 0.3}),
    (SGD, {"momentum": 0.9, "nesterov": True}),
    (SGD, {"weight_decay": 0.1}),
    (SGD, {"momentum": 0.5, "weight_decay": 0.1, "maximize": True}),
    (SGD, {"momentum": 0.9, "foreach": True}),
    (SGD, {"momentum": 0.9, "fused": True}),
    (Adam, {"amsgrad": True}),
    (Adam, {"weight_decay": 0.1}),
    (Adam, {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    (Adam, {"maximize": True, "betas": (0.5, 0.9)}),
    (Adam, {"foreach": True, "amsgrad": True}),
    (Adam, {"foreach": False}),
    (Adam, {"fused": True, "weight_decay": 0.1}),
    (AdamW, {"amsgrad": True, "weight_decay": 0.5}),
    (AdamW, {"maximize": True, "betas": (0.8, 0.95)}),
    (AdamW, {"foreach": True}),
    (AdamW, {"fused": True, "amsgrad": True}),
    (torch.optim.RMSprop, {"centered": True}),
    (torch.optim.RMSprop, {"momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    (torch.optim.RMSprop, {"momentum": 0.9, "foreach": True, "maximize": True}),
    (torch.optim.Adagrad, {"lr_decay": 0.5}),
    (torch.optim.Adagrad, {"initial_accumulator_value": 0.3, "weight_decay": 0.1}),
    (torch.optim.Adagrad, {"lr_decay": 0.5, "foreach": True}),
    (torch.optim.Adagrad, {"fused": True, "initial_accumulator_value": 0.3}),
    (torch.optim.NAdam, {"momentum_decay": 0.01}),
    (torch.optim.NAdam, {"decoupled_weight_decay": True, "weight_decay": 0.1}),
    (torch.optim.NAdam, {"weight_decay": 0.1, "foreach": True}),
    (torch.optim.RAdam, {"decoupled_weight_decay": True, "weight_decay": 0.1}),
    (torch.optim.RAdam, {"weight_decay": 0.1, "maximize": True}),
    (torch.optim.Adamax, {"betas": (0.5, 0.99), "weight_decay": 0.1}),
    (torch.optim.Adamax, {"foreach": True, "maximize": True}),
    (torch.optim.Adadelta, {"rho": 0.5}),
    (torch.optim.Adadelta, {"rho": 0.99, "weight_decay": 0.1, "foreach": True}),
]

# Each copy's LR at each step (K copies, STEPS steps); the optimizers' default LRs differ, so as factors of it.
LRS: dict[str, Callable[[int], list[float]]] = {
    # Copy 0 stays at LR 0 (a schedule's first step from 0, a floor of 0) while the others train.
    "one at zero": lambda t: [0.0, 1.0, 0.5],
    # Warmup from 0: every copy at LR 0 for the first steps (lr_max = 0), then apart.
    "all at zero first": lambda t: [0.0, 0.0, 0.0] if t < 2 else [t / 4, t / 8, 0.0],
    # Linear decay to 0: every copy reaches 0 at the end.
    "all decay to zero": lambda t: [max(0.0, 1 - t / 3) * (k + 1) for k in range(K)],
    # LRs 1e6 apart (a copy at the top, one a millionth of it, one in between).
    "1e6 apart": lambda t: [1e-6, 1.0, 1e-3],
    # A copy climbs above every LR any copy had: lr_max moves between copies and grows every step.
    "climbing": lambda t: [0.5, 0.25 * 3**t, 0.1 * 2**t],
}


def default_lr(kind: type[torch.optim.Optimizer]) -> float:
    return float(inspect.signature(kind).parameters["lr"].default)


def build(kind: type[torch.optim.Optimizer], settings: dict[str, Any]) -> tuple[VectorisedOptimizer, list]:
    """The K copies' stacked parameters and their vectorised optimizer, as a stacked run builds them."""
    generator = torch.Generator().manual_seed(0)
    stacked = [
        nn.Parameter(torch.randn(K, 4, 3, generator=generator)),
        nn.Parameter(torch.randn(K, 3, generator=generator)),
    ]
    own = [[nn.Parameter(s.detach()[k], requires_grad=False) for s in stacked] for k in range(K)]
    # Each copy's two groups (the second with a setting of its own: no decay), as each copy's module makes them.
    groups = [g for params in own for g in ({"params": [params[0]]}, {"params": [params[1]], "weight_decay": 0.0})]
    merged = kind(groups, lr=default_lr(kind), **settings)
    made = vectorise(merged, [[2 * k, 2 * k + 1] for k in range(K)], own, stacked, lambda: torch.ones(K, dtype=bool))
    assert isinstance(made, VectorisedOptimizer), made
    return made, stacked


def ulps(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference between ``a`` and ``b``, in units of the last place of their largest magnitude.

    Of the tensor's scale, not each element's: an element that is the difference of two larger ones (a
    momentum buffer near 0) keeps their rounding, which a batched kernel (SIMD lanes, fused multiply-adds)
    and a per-run one may make apart.
    """
    a, b = a.detach().float(), b.detach().float()
    big = torch.maximum(a.abs().max(), b.abs().max())
    spacing = torch.nextafter(big, torch.tensor(float("inf"))) - big
    return float((a - b).abs().max() / spacing)


def run(kind, settings, lrs) -> dict[tuple[int, int, str], float]:
    """Step the copies stacked and each on its own; at the end, ``{(copy, parameter, state key or ""): ulps}``
    from its solo run."""
    optimizer, stacked = build(kind, settings)
    base = default_lr(kind)
    solos = []
    for k in range(K):
        params = [nn.Parameter(s.detach()[k].clone()) for s in stacked]
        groups = [{"params": [params[0]]}, {"params": [params[1]], "weight_decay": 0.0}]
        solos.append((params, kind(groups, lr=base, **settings)))
    generator = torch.Generator().manual_seed(1)
    for t in range(STEPS):
        at = [lr * base for lr in lrs(t)]
        grads = [torch.randn(s.shape, generator=generator) for s in stacked]
        for k in range(K):
            for g in (2 * k, 2 * k + 1):
                optimizer.param_groups[g]["lr"] = at[k]
        for s, grad in zip(stacked, grads, strict=True):
            s.grad = grad.clone()
        optimizer.step()
        for k, (params, solo) in enumerate(solos):
            for group in solo.param_groups:
                group["lr"] = at[k]
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad[k].clone()
            solo.step()
    found = {}
    for k, (params, solo) in enumerate(solos):
        for i, (s, p) in enumerate(zip(stacked, params, strict=True)):
            found[k, i, ""] = ulps(s[k], p)
            mine, theirs = optimizer.inner.state[s], solo.state[p]
            assert mine.keys() == theirs.keys(), (k, i)
            for key, value in theirs.items():
                row = mine[key]
                if isinstance(value, torch.Tensor) and value.dim():
                    found[k, i, key] = ulps(row[k], value)
                else:  # a step count (shared by the rows: every copy steps every time)
                    assert float(row) == float(value), (k, i, key, row, value)
    return found


@pytest.mark.parametrize("lrs", LRS.values(), ids=LRS.keys())
@pytest.mark.parametrize(
    "kind, settings", SETTINGS, ids=[f"{k.__name__}-{'-'.join(map(str, s.items()))}" for k, s in SETTINGS]
)
def test_each_row_is_its_solo_run_for_every_setting_and_lr(kind, settings, lrs):
    found = run(kind, settings, lrs)
    worst = max(found.items(), key=lambda pair: pair[1])
    assert worst[1] <= ULPS, worst
    # What the module promises exactly: the copy at the largest LR at every step gets its optimizer's own
    # update, bit for bit, and a copy at LR 0 does not move (a fused kernel may round the state apart: the
    # copies' rows are SIMD lanes there, a solo run's are not).
    exact = {LRS["one at zero"]: [0, 1], LRS["1e6 apart"]: [1]}.get(lrs, [])
    fused = settings.get("fused", False)
    assert all(v == 0 for (k, _, key), v in found.items() if k in exact and not (fused and key)), found
