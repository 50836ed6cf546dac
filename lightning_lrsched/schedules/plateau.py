"""``plateau``: reduce the LR when a monitored metric stops improving (torch's ReduceLROnPlateau).

The rule is :class:`~lightning_lrsched.schedules.plateau_rule.PlateauRule`, shared with the
``PlateauDetector`` callback. Time drives only a warmup in front; metric values, fed to
:meth:`GroupScheduledLR.observe <lightning_lrsched.schedules.GroupScheduledLR.observe>` at each
validation end by :class:`~lightning_lrsched.PlateauDriver`, drive the LR.
"""

from __future__ import annotations

from lightning_lrsched.schedules.curve import Binder, Curve, constant_weights, register
from lightning_lrsched.schedules.duration import Run
from lightning_lrsched.schedules.plateau_rule import PlateauRule


@register("plateau", interval="epoch")
def plateau(
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float | list[float] = 0.0,
    eps: float = 1e-8,
    monitor: str = "val_loss",
) -> Binder:
    r"""ReduceLROnPlateau: multiply the LR by ``factor`` when ``monitor`` stops improving.

    After ``patience`` fresh values with no improvement (beyond ``threshold``), every group's LR
    becomes :math:`\max(\mathrm{lr}\cdot f, \mathrm{min\_lr})` (skipped when the change is below
    ``eps``), then ``cooldown`` values are ignored. Under Lightning, ``PlateauDriver`` feeds it the
    value of ``monitor`` at the end of every validation run (averaged across processes), so the new
    LR is in ``param_groups`` before the next batch and in the checkpoint saved at that validation.

    Example:
        >>> import torch
        >>> from lightning_lrsched.schedules import get_schedule
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = get_schedule("plateau", patience=1, factor=0.5).build(opt)
        >>> for loss in [1.0, 1.0, 1.0, 0.5]:
        ...     opt.step(); sched.step(loss)
        >>> sched.get_last_lr()
        [0.5]
    """
    rule = PlateauRule(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps, monitor)

    def bind(run: Run) -> Curve:
        return Curve(constant_weights, plateau=rule)

    return bind
