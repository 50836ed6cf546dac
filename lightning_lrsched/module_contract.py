"""What ``lrsched compare``, ``find`` and ``fit`` need from a user's LightningModule, and nothing more.

A module is used as it is: its own ``configure_optimizers`` builds the optimizer (every setting and
param group kept), and the schedule under comparison replaces the module's scheduler(s). What that
takes of the module:

- automatic optimization (Lightning steps the optimizer, so the scheduler can follow its steps);
- one optimizer, returned by ``configure_optimizers`` in any of Lightning's forms (an optimizer, a
  list of one, ``{"optimizer": ..., "lr_scheduler": ...}``, ``([optimizer], [schedulers])``);
- for the comparison's report, ``val_loss`` logged in validation (``val_acc`` if it has one).

A module whose constructor takes a ``scheduler`` argument (as
:class:`~lightning_lrsched.models.SyntheticClassifier` does) gets the schedule that way instead.

Example:
    >>> import torch
    >>> from lightning.pytorch.demos.boring_classes import BoringModel
    >>> optimizer = own_optimizer(BoringModel())
    >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"]
    ('SGD', 0.1)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from torch.optim import Optimizer

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.schedules import Schedule

# Where Lightning defines its hooks' defaults: a method found there is no override of the module's own.
LIGHTNING_DEFAULTS = ("lightning.pytorch.core.", "pytorch_lightning.core.")


def defined_by(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO whose own ``__dict__`` defines ``name`` (``None``: none does)."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def own_override(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines method ``name``; ``None`` where that is Lightning's default.

    A Lightning demo's override (``LightningLSTM.on_train_epoch_end``) is an override too.

    Example:
        >>> from lightning.pytorch.demos.boring_classes import BoringModel
        >>> own_override(BoringModel, "train_dataloader").__name__, own_override(BoringModel, "on_fit_start")
        ('BoringModel', None)
    """
    owner = defined_by(cls, name)
    return None if owner is None or owner.__module__.startswith(LIGHTNING_DEFAULTS) else owner


class ModuleContractError(InvalidValue):
    """The module cannot be compared as it is (several optimizers, manual optimization, ...): one line, what to do."""


def takes_scheduler(cls: type) -> bool:
    """Whether ``cls``'s constructor takes the schedule as a ``scheduler`` argument."""
    try:
        return "scheduler" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def check_automatic(module: L.LightningModule) -> None:
    """Refuse a module with manual optimization: its optimizer steps are its own, no scheduler can follow them."""
    if not module.automatic_optimization:
        raise ModuleContractError(
            f"{type(module).__name__} uses manual optimization (automatic_optimization=False): lrsched replaces "
            "the scheduler of the one optimizer Lightning steps; use automatic optimization, or give the module a "
            "`scheduler` argument and schedule its optimizer yourself with Schedule.lightning_config"
        )


def optimizers_in(returned: Any, owner: str = "configure_optimizers") -> list[Optimizer]:
    """The optimizers in what ``configure_optimizers`` returned, in any of Lightning's forms.

    Raises:
        ModuleContractError: nothing Lightning would read as optimizers (``None`` included).
    """
    if isinstance(returned, Optimizer):
        return [returned]
    if isinstance(returned, Mapping) and "optimizer" in returned:
        return optimizers_in(returned["optimizer"], owner)
    if isinstance(returned, (list, tuple)):
        if len(returned) == 2 and all(isinstance(part, (list, tuple)) for part in returned):
            return optimizers_in(list(returned[0]), owner)  # ([optimizers], [schedulers])
        found: list[Optimizer] = []
        for item in returned:
            found += optimizers_in(item, owner)
        if found:
            return found
    raise ModuleContractError(
        f"{owner} returned {_shown(returned)}, which holds no torch optimizer: return an optimizer, or "
        '{"optimizer": optimizer, "lr_scheduler": ...}'
    )


def single_optimizer(returned: Any, owner: str, needs: str = "lrsched schedules one") -> Optimizer:
    """The one optimizer in what ``configure_optimizers`` returned, left as it is.

    Raises:
        ModuleContractError: several optimizers or none (``needs`` says why one is needed).
    """
    optimizers = optimizers_in(returned, owner)
    if len(optimizers) != 1:
        names = ", ".join(type(o).__name__ for o in optimizers)
        raise ModuleContractError(
            f"{owner} returned {len(optimizers)} optimizers ({names}): {needs}; return one optimizer "
            "with a param group per part of the model (each group keeps its own settings)"
        )
    return optimizers[0]


def one_optimizer(returned: Any, owner: str) -> Optimizer:
    """The single optimizer ``configure_optimizers`` returned, its schedulers set aside (see :func:`unschedule`)."""
    optimizer = single_optimizer(returned, owner)
    unschedule(optimizer)
    return optimizer


def own_optimizer(module: L.LightningModule) -> Optimizer:
    """The optimizer ``module.configure_optimizers()`` builds, with its scheduler's marks removed.

    Raises:
        ModuleContractError: manual optimization, several optimizers, or none.
    """
    check_automatic(module)
    return one_optimizer(module.configure_optimizers(), f"{type(module).__name__}.configure_optimizers")


def unschedule(optimizer: Optimizer) -> None:
    """Undo what building a scheduler did to ``optimizer``'s groups: each LR back to its base, ``initial_lr`` gone.

    A torch scheduler sets ``initial_lr`` and its first LR (a warmup's is 0) when it is built; the
    schedule that replaces it starts from the optimizer's own LR again. One that cycles momentum
    (``OneCycleLR``, ``CyclicLR``: their groups hold ``max_momentum``) set the momentum (Adam's
    first beta) to its maximum when built: it is back at the optimizer's constructor value.
    """
    for group in optimizer.param_groups:
        if "initial_lr" in group:
            group["lr"] = group.pop("initial_lr")
        if "max_momentum" in group and "base_momentum" in group:
            if "betas" in group and "betas" in optimizer.defaults:
                group["betas"] = (optimizer.defaults["betas"][0], *group["betas"][1:])
            elif "momentum" in group and "momentum" in optimizer.defaults:
                group["momentum"] = optimizer.defaults["momentum"]


def schedule_module(module: L.LightningModule, schedule: Schedule) -> None:
    """Make ``module`` train with ``schedule`` instead of its own scheduler(s), on its own optimizer.

    Its ``configure_optimizers`` is replaced on this instance only: it calls the module's own, keeps
    the one optimizer that returns (settings and param groups as they are), and schedules it with
    ``schedule`` for the Trainer's run (:meth:`Schedule.lightning_config`). A ``plateau`` schedule
    needs a :class:`~lightning_lrsched.PlateauDriver` among the Trainer's callbacks.
    """
    check_automatic(module)
    own = module.configure_optimizers
    owner = f"{type(module).__name__}.configure_optimizers"

    def configure_optimizers() -> dict[str, Any]:
        optimizer = one_optimizer(own(), owner)
        return {"optimizer": optimizer, "lr_scheduler": schedule.lightning_config(optimizer, module.trainer)}

    module.configure_optimizers = configure_optimizers  # type: ignore[method-assign,assignment]


def check_optimizers(module: L.LightningModule, needs: str = "lrsched schedules one") -> None:
    """Refuse, before anything trains, a ``configure_optimizers`` that returns several optimizers or none.

    It is called once, outside a run, and leaves what it returns as it is (a module may keep its
    optimizer across fits). Where it needs a Trainer (``self.trainer.estimated_stepping_batches``,
    say) it cannot be read here, and the run itself checks it.

    Raises:
        ModuleContractError: several optimizers or none.
    """
    try:
        returned = module.configure_optimizers()
    except Exception:  # it needs a Trainer (or more): the run will tell
        return
    single_optimizer(returned, f"{type(module).__name__}.configure_optimizers", needs)


def check_module(module: L.LightningModule) -> None:
    """Refuse, before anything trains, a module compare cannot use as it is.

    Raises:
        ModuleContractError: manual optimization, several optimizers, or none.
    """
    check_automatic(module)
    check_optimizers(module)


def _shown(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f"a {type(value).__name__} of {[type(v).__name__ for v in value]}"
    return f"a {type(value).__name__}"
