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
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_stack_any import SYNTHETIC_DATA, grid, stacked_and_solo
from torch import nn

from lightning_lrsched.compare import compare
from lightning_lrsched.compare.grid import RunSettings, Unstackable, plan_jobs
from lightning_lrsched.compare.stacked.optimizer import VectorisedOptimizer, vectorise
from lightning_lrsched.compare.training import train_solo, train_stacked
from tests.compare.optimizer_models import (
    AdafactorClassifier,
    AdagradClassifier,
    ASGDClassifier,
    DampenedSGDClassifier,
    FilteredSGDSubclassClassifier,
    FusedAdamWClassifier,
    GlobalNormClassifier,
    LBFGSClassifier,
    RpropClassifier,
    SGDSubclassClassifier,
)

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
    big = torch.maximum(a.detach().abs().max(), b.detach().abs().max())  # in their own precision
    spacing = (torch.nextafter(big, torch.tensor(float("inf"), dtype=big.dtype)) - big).double()
    return float((a.detach().double() - b.detach().double()).abs().max() / spacing)


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


# -- optimizers outside LINEAR_IN_LR, through a real comparison ------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
# Two schedules through LR 0: a warmup from 0 (per step), and a linear decay to 0 after the first epoch.
THROUGH_ZERO = [
    {"name": "warmup_cosine", "warmup": "50%"},
    {"name": "linear", "start_factor": 1.0, "end_factor": 0.0, "total_iters": 1},
]
SMALL_DATA = {**SYNTHETIC_DATA, "init_args": {"num_samples": 128}}


def model(cls: type) -> dict[str, Any]:
    return {"class_path": f"tests.compare.optimizer_models.{cls.__name__}", "init_args": {}}


def assert_same_best(ours: list, solos: list) -> None:
    for mine, solo in zip(ours, solos, strict=True):
        assert mine.status == solo.status == "ok", (mine.label, mine.reason, solo.reason)
        assert abs(mine.best_val_loss - solo.best_val_loss) <= 1e-5 * abs(solo.best_val_loss), mine.label
    assert len({round(r.best_val_loss, 6) for r in ours}) == len(ours)  # not trivial: the schedules trained apart


@pytest.mark.parametrize("cls", [ASGDClassifier, RpropClassifier, AdafactorClassifier], ids=lambda c: c.__name__)
def test_torch_optimizers_that_step_each_group_on_its_own_stack_as_their_solo_runs(cls, tmp_path, one_thread):
    # Not linear in the LR (ASGD's eta and Rprop's step sizes follow it, Adafactor's step is min(lr, 1/sqrt(t))):
    # each copy's groups are stepped by the one optimizer, as its run of its own steps them.
    stacked, solos = stacked_and_solo(grid(THROUGH_ZERO, 2, model(cls), SMALL_DATA), tmp_path)
    assert {r.mode for r in stacked} == {"stacked"}
    assert_same_best(stacked, solos)


@pytest.fixture
def importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize(
    "cls, name",
    [(GlobalNormClassifier, "GlobalNormSGD"), (SGDSubclassClassifier, "OwnSGD"), (LBFGSClassifier, "LBFGS")],
    ids=["GlobalNormSGD", "OwnSGD", "LBFGS"],
)
def test_an_optimizer_not_known_to_step_each_group_on_its_own_is_not_stacked(cls, name, tmp_path, one_thread):
    # One optimizer for all the copies' groups would couple them (a norm over all its parameters: each copy
    # then trains apart from its solo run, silently), or fail (LBFGS holds one group): refused before training.
    (job,) = plan_jobs(grid(THROUGH_ZERO, 2, model(cls), SMALL_DATA), "stacked")
    trained = []
    with pytest.raises(Unstackable) as refused:
        train_stacked(job, RunSettings(output=str(tmp_path), logger="none"), trained.append)
    assert str(refused.value).startswith(f"{name} is not known to step each param group on its own (")
    assert "\n" not in str(refused.value) and not trained


def test_auto_trains_each_run_of_such_an_optimizer_alone_and_says_why(tmp_path, importable):
    common = {"max_epochs": 2, "logger": "none", "model": model(GlobalNormClassifier), "data": SMALL_DATA}
    auto = compare(THROUGH_ZERO, output=tmp_path / "auto", mode="auto", **common).records
    assert {r.mode for r in auto} == {"sequential"}
    assert all(r.mode_reason.startswith("GlobalNormSGD is not known to step each param group") for r in auto), auto
    settings = RunSettings(output=str(tmp_path / "solo"), logger="none")
    solos = [
        train_solo(spec, settings, lambda runs: None)[0]
        for spec in grid(THROUGH_ZERO, 2, model(GlobalNormClassifier), SMALL_DATA)
    ]
    assert_same_best(auto, solos)


def test_schedule_free_optimizers_are_stepped_per_copy_not_refused():
    schedulefree = pytest.importorskip("schedulefree")
    param = nn.Parameter(torch.zeros(2, 3))
    own = [[nn.Parameter(param.detach()[k])] for k in range(2)]
    merged = schedulefree.AdamWScheduleFree([{"params": own[0]}, {"params": own[1]}], lr=0.01)
    made = vectorise(merged, [[0], [1]], own, [param], lambda: torch.ones(2, dtype=torch.bool))
    assert made == "AdamWScheduleFree is not one of torch's optimizers whose update is linear in the LR"


# -- end to end: the settings most likely to part a copy from its solo run, through LR 0 ---------------------------

# Both copies at LR 0 through the second epoch (lr_max = 0), then one at 0 while the other trains again.
TO_ZERO_AND_BACK = [
    {"name": "linear", "start_factor": 0.5, "end_factor": 0.0, "total_iters": 1},
    {"name": "cosine", "T_max": 1, "eta_min": 0.0},
]


@pytest.mark.parametrize(
    "cls", [FusedAdamWClassifier, DampenedSGDClassifier, AdagradClassifier], ids=lambda c: c.__name__
)
def test_a_stacked_copy_equals_its_solo_run_through_lr_zero(cls, tmp_path, one_thread):
    # AdamW's fused kernel (its state rounds apart in a batched call), SGD's dampened momentum with weight decay
    # (its buffer accumulates while every LR is 0), Adagrad's constructor-only first sums and step-decayed LR.
    stacked, solos = stacked_and_solo(grid(TO_ZERO_AND_BACK, 3, model(cls), SMALL_DATA), tmp_path)
    assert {r.mode for r in stacked} == {"stacked"}
    assert_same_best(stacked, solos)
    for ours, solo in zip(stacked, solos, strict=True):
        assert ours.epochs == solo.epochs == 3
        for curve in ("lr_curve", "train_curve", "val_curve"):
            mine, theirs = getattr(ours, curve), getattr(solo, curve)
            assert [p[0] for p in mine] == [p[0] for p in theirs]
            for p, q in zip(mine, theirs, strict=True):
                assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(p[1:], q[1:], strict=True)), (curve, p, q)
    # Through LR 0: every copy at 0 in the second epoch, the linear one still at 0 in the third.
    lrs = [sorted({lr for _, lr in r.lr_curve}) for r in solos]
    assert lrs[0][0] == lrs[1][0] == 0.0 and len(lrs[1]) == 2


def test_the_copies_optimizer_is_judged_when_the_stacked_module_is_built():
    # Before a Trainer (and its loggers: W&B runs) exists, and whatever the schedules (one cycling momentum steps
    # the copies per group and never reached the check made when vectorising).
    from lightning_lrsched.compare.stacked import StackedModule
    from lightning_lrsched.schedules import get_schedule

    torch.manual_seed(0)
    schedules = [get_schedule("cosine"), get_schedule("cyclic", base_lr=0.01, max_lr=0.1)]
    # One that builds its optimizer from the parameters asking for gradients too: judged as the module made them.
    for cls in (SGDSubclassClassifier, FilteredSGDSubclassClassifier):
        with pytest.raises(Unstackable, match=r"^OwnSGD is not known to step each param group on its own"):
            StackedModule([cls() for _ in range(2)], ["cosine", "cyclic"], schedules)


def test_the_refusal_names_the_schedule_free_optimizers_that_stack():
    schedulefree = pytest.importorskip("schedulefree")
    from lightning_lrsched.compare.stacked.optimizer import check_shareable

    radam = schedulefree.RAdamScheduleFree([nn.Parameter(torch.zeros(2))], lr=0.01)
    with pytest.raises(Unstackable, match=r"but LBFGS can, and AdamWScheduleFree and SGDScheduleFree\)$"):
        check_shareable(radam)


def test_a_schedule_the_modules_optimizer_cannot_run_fails_its_copy_alone(tmp_path, one_thread):
    # cyclic cycles momentum, which Adagrad has not: its run of its own fails, cosine's trains. Stacked, the
    # schedules were checked against an SGD with momentum, passed, and the stacked optimizer then failed both.
    specs = grid(["cosine", "cyclic"], 1, model(AdagradClassifier), SMALL_DATA)
    (job,) = plan_jobs(specs, "stacked")
    settings = RunSettings(output=str(tmp_path), logger="none")
    stacked = train_stacked(job, settings, lambda runs: None)
    assert [(r.mode, r.status) for r in stacked] == [("stacked", "ok"), ("stacked", "failed")]
    needs = "`cycle_momentum`=True needs an optimizer with momentum or betas: got Adagrad"
    assert needs in stacked[1].reason
    with pytest.raises(ValueError, match=re.escape(needs)):  # its run of its own (the worker records it failed)
        train_solo(specs[1], settings, lambda runs: None)
    assert_same_best(stacked[:1], [train_solo(specs[0], settings, lambda runs: None)[0]])
