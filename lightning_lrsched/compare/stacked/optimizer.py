"""One optimizer step for all the copies of a stacked run, on the stacked parameters.

The copies' param groups are groups of one optimizer (each copy's own settings, its own LR from its
own schedule). Stepped as they are, that optimizer updates every copy's every parameter on its own:
K times the per-tensor work of one run, which on small modules is most of a stacked step.

Torch's optimizers below update a parameter by ``lr`` times a direction that does not depend on
``lr`` (their state does not either): SGD (its momentum buffer accumulates gradients, the LR scales
the step), Adam and AdamW (decoupled decay is ``p *= 1 - lr * wd``), RMSprop, Adagrad (``lr /
(1 + (t - 1) * lr_decay)``), Adamax, NAdam, RAdam and Adadelta. So the copies' update can be made
once, on the stacked tensors, by an optimizer of the same class with the same settings at the
largest of the copies' LRs, ``lr_max``, each copy's row then taken ``lr_k / lr_max`` of the way from
where it was: ``old + lr_k / lr_max * (new - old)`` (``torch.lerp``). Each row's state (momentum,
moments) is the state its copy's own optimizer would hold; the copy at ``lr_max`` gets the
optimizer's own update exactly, the others with the rounding of one more product at most.
:class:`VectorisedOptimizer` does that when the copies' groups agree on every setting but the LR
(and nothing schedules another one per copy, as cyclic's momentum does); :func:`vectorise` says
when it applies and why not.

Where it does not, the one optimizer steps each copy's groups among the others': exact for an
optimizer known to step each param group on its own (:data:`EACH_GROUP_ON_ITS_OWN`). Any other (a
subclass, another package's, LBFGS and its one group) could couple the copies, a norm over all its
parameters say, or fail: such a module is not stacked (:class:`~lightning_lrsched.compare.grid.Unstackable`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from lightning_lrsched.compare.grid import Unstackable
from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.optim import SCHEDULE_FREE

# Torch's optimizers whose update is linear in the LR, with state that does not depend on it (exact classes:
# a subclass may step otherwise). Not ASGD (its eta state follows the LR), Rprop (the LR is its first step
# size), LBFGS or SparseAdam.
LINEAR_IN_LR: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.Adadelta,
)
# Optimizers that step each param group on its own (per-parameter state, per-group settings): stepped with the
# other copies' groups, a copy's are stepped as its run of its own steps them. Exact classes again; not LBFGS
# (one param group); schedule-free ones too (see `check_shareable`).
EACH_GROUP_ON_ITS_OWN: tuple[type[torch.optim.Optimizer], ...] = (
    *LINEAR_IN_LR,
    torch.optim.ASGD,
    torch.optim.Rprop,
    torch.optim.SparseAdam,
    *[kind for kind in (getattr(torch.optim, "Adafactor", None),) if kind is not None],
)
# Group keys that may differ between the copies: their LR, what schedules keep beside it, their names.
PER_COPY = frozenset({"params", "lr", "initial_lr", "name"})


def _settings(group: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in group.items() if key not in PER_COPY}


def vectorise(
    optimizer: torch.optim.Optimizer,
    copy_groups: Sequence[Sequence[int]],
    copy_params: Sequence[Sequence[nn.Parameter]],
    stacked: Sequence[nn.Parameter],
    training: Callable[[], torch.Tensor],
) -> VectorisedOptimizer | str:
    """``optimizer`` (the copies' groups) stepped on the stacked parameters, or why it cannot be.

    Args:
        optimizer: one optimizer holding every copy's param groups, copy ``k``'s at ``copy_groups[k]``.
        copy_groups: per copy, the indices of its param groups.
        copy_params: per copy, its parameters, in the order of ``stacked`` (views of their rows).
        stacked: per parameter, the copies' values stacked (row ``k`` is copy ``k``'s).
        training: the copies that train (bool, shape ``(K,)``); the others' rows are left as they were.

    The optimizer must be one the copies can share (:func:`check_shareable`, which the caller asks first).
    """
    kind = type(optimizer)
    if kind not in LINEAR_IN_LR:
        return f"{kind.__name__} is not one of torch's optimizers whose update is linear in the LR"
    groups = optimizer.param_groups
    index = [{id(p): i for i, p in enumerate(params)} for params in copy_params]
    layout: list[tuple[list[int], dict[str, Any]]] = []
    for g in copy_groups[0]:
        positions = [index[0].get(id(p)) for p in groups[g]["params"]]
        if None in positions:
            return "a param group holds a tensor that is not one of the module's parameters"
        layout.append(([i for i in positions if i is not None], _settings(groups[g])))
    for k, own in enumerate(copy_groups[1:], start=1):
        mine = [([index[k].get(id(p)) for p in groups[g]["params"]], _settings(groups[g])) for g in own]
        if mine != layout:
            return "the copies' param groups differ in their parameters or settings"
    if any(isinstance(groups[g]["lr"], torch.Tensor) for own in copy_groups for g in own):
        return "an LR is a tensor"
    return VectorisedOptimizer(optimizer, copy_groups, stacked, layout, training)


def check_shareable(optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer not known to step each param group on its own: the copies' groups cannot share it.

    Raises:
        Unstackable: not one of :data:`EACH_GROUP_ON_ITS_OWN` nor a schedule-free one (a subclass, another
            package's optimizer: its step may look across its groups; LBFGS takes one group).
    """
    kind = type(optimizer)
    if kind in EACH_GROUP_ON_ITS_OWN:
        return
    # The schedule-free optimizers this package offers (schedulefree's own classes, per-group state as torch's).
    if kind.__module__.split(".")[0] == "schedulefree" and kind.__name__ in SCHEDULE_FREE.values():
        return
    why = "it takes one param group" if kind is torch.optim.LBFGS else "it may look across its groups"
    free = " and ".join(SCHEDULE_FREE.values())
    raise Unstackable(
        f"{kind.__name__} is not known to step each param group on its own ({why}): stacked copies share one "
        f"optimizer, a group per copy (torch's own optimizers but LBFGS can, and {free})"
    )


def constructor_arguments(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The settings ``optimizer`` was built with that its class's constructor takes (its ``defaults``, less ``params``).

    Example:
        >>> sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> {key: constructor_arguments(sgd)[key] for key in ("lr", "momentum", "nesterov")}
        {'lr': 0.1, 'momentum': 0.9, 'nesterov': False}
    """
    accepted = inspect.signature(type(optimizer)).parameters
    return {key: value for key, value in optimizer.defaults.items() if key in accepted and key != "params"}


class VectorisedOptimizer(torch.optim.Optimizer):
    """The copies' param groups (what schedules set and loggers read), stepped as one update of the stacked tensors.

    Its ``param_groups`` are the copies' (their parameters, their LRs); :attr:`inner`, an optimizer
    of the copies' class over the stacked parameters with their settings (at the largest LR), holds the
    state, one row per copy. Built by :func:`vectorise`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        copy_groups: Sequence[Sequence[int]],
        stacked: Sequence[nn.Parameter],
        layout: Sequence[tuple[list[int], dict[str, Any]]],
        training: Callable[[], torch.Tensor],
    ) -> None:
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self.copy_groups = [list(own) for own in copy_groups]
        self.positions = [positions for positions, _ in layout]
        inner_groups = [
            {**settings, "params": [stacked[i] for i in positions], "lr": 1.0} for positions, settings in layout
        ]
        kind: Any = type(optimizer)  # one of LINEAR_IN_LR
        # Built with the copies' constructor arguments too: some act at construction only (Adagrad fills its
        # sums with `initial_accumulator_value` there, `fused` sets its checks there).
        self.inner: torch.optim.Optimizer = kind(inner_groups, **constructor_arguments(optimizer))
        self.training = training

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Each group steps at the largest of the copies' LRs; each row then moves its copy's share of that
        # update: the copy at that LR gets the optimizer's own update exactly, the others theirs with
        # at most the rounding of one more product (a step at lr = 1 would lose, at a large LR, the
        # part of the update below the parameter's rounding).
        # A frozen copy (diverged: its LR may be past float32's range) neither sets the step nor moves.
        training = self.training()
        moving = training.tolist()
        if not any(moving):
            return loss
        frozen = None if all(moving) else ~training
        shares = []
        for g, (own, inner) in enumerate(zip(self.copy_groups[0], self.inner.param_groups, strict=True)):
            # Settings a schedule moves for every copy alike (none per copy: see `vectorise`) follow copy 0's.
            inner.update(_settings(self.param_groups[own]))
            lrs = [
                float(self.param_groups[groups[g]]["lr"]) if on else 0.0
                for groups, on in zip(self.copy_groups, moving, strict=True)
            ]
            inner["lr"] = top = max(lrs)
            shares.append([lr / top if top > 0 else 0.0 for lr in lrs])
        stepped = [[p for p in group["params"] if p.grad is not None] for group in self.inner.param_groups]
        before = [[p.detach().clone() for p in params] for params in stepped]
        self.inner.step()
        for params, olds, share in zip(stepped, before, shares, strict=True):
            # In at least single precision, as the optimizer's own arithmetic; in double where a share is
            # below single precision's normal range (one copy's LR some 1e38 times another's) and the
            # device has double precision (not MPS).
            tiny = any(0.0 < x < 1e-30 for x in share)
            rates: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
            for param, old in zip(params, olds, strict=True):
                # old + share_k * (new - old)
                wide = torch.promote_types(param.dtype, torch.float32)
                if tiny and param.device.type != "mps":
                    wide = torch.float64
                key = (wide, param.device)
                if key not in rates:
                    rates[key] = torch.tensor(share, dtype=wide, device=param.device)
                weight = rates[key].view(-1, *([1] * (param.dim() - 1)))
                new = torch.lerp(old.to(wide), param.to(wide), weight).to(param.dtype)
                if frozen is not None:
                    new[frozen] = old[frozen]  # a frozen copy's row stays where it was (its update may not be finite)
                param.copy_(new)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The copies' groups (as any optimizer's state dict has them) and, under ``"stacked"``, the state per row."""
        return {**super().state_dict(), "stacked": self.inner.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        stacked = state_dict.pop("stacked", None)
        if stacked is None and state_dict.get("state"):
            raise InvalidValue(
                "this optimizer state was saved by a stacked run whose optimizer stepped each copy on its own; "
                "this run steps the copies as one (resume it with the version of lightning-lrsched that saved it)"
            )
        super().load_state_dict(state_dict)
        if stacked is not None:
            self.inner.load_state_dict(stacked)

    def keep_rows(
        self, keep: Sequence[int], stacked: Sequence[nn.Parameter], copy_groups: Sequence[Sequence[int]]
    ) -> None:
        """Keep copies ``keep`` only (see :meth:`StackedModule.drop`): ``stacked`` are their parameters now, their
        groups ``copy_groups``; each kept row keeps its state."""
        rows = list(keep)
        for group, positions in zip(self.inner.param_groups, self.positions, strict=True):
            new = [stacked[i] for i in positions]
            for old, param in zip(group["params"], new, strict=True):
                state = self.inner.state.pop(old, None)
                if state:
                    self.inner.state[param] = {
                        key: value[rows] if isinstance(value, torch.Tensor) and value.dim() else value
                        for key, value in state.items()
                    }
            group["params"] = new
        self.copy_groups = [list(own) for own in copy_groups]
