"""The reduce-on-plateau rule: when a metric has plateaued, and how far the LR then goes down.

Written once and used by both owners of plateau decisions: the ``plateau`` schedule (through
:meth:`GroupScheduledLR.observe <lightning_lrsched.schedules.GroupScheduledLR.observe>`) and the
``PlateauDetector`` callback, so the two agree with each other and with torch's
``ReduceLROnPlateau`` on every sequence of metric values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.validation import check_choice, check_int, check_non_negative, check_per_group, check_range


@dataclass(frozen=True)
class PlateauRule:
    """When a metric has plateaued, and what happens to the LR then (torch's arguments)."""

    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float | tuple[float, ...] | list[float] = 0.0  # a list is made a tuple
    eps: float = 1e-8
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, ("min", "max"))
        check_range("factor", self.factor, 0.0, 1.0, low_open=True)
        if self.factor == 1.0:
            raise InvalidValue(f"`factor` must be < 1 so that a plateau lowers the LR: got factor={self.factor}")
        check_int("patience", self.patience, minimum=0)
        check_non_negative("threshold", self.threshold)
        check_choice("threshold_mode", self.threshold_mode, ("rel", "abs"))
        check_int("cooldown", self.cooldown, minimum=0)
        object.__setattr__(self, "min_lr", check_per_group("min_lr", self.min_lr))
        check_non_negative("eps", self.eps)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise InvalidType(f"`monitor` must be the name of a logged metric: got monitor={self.monitor!r}")

    def judge(self) -> PlateauJudge:
        return PlateauJudge(self)


class PlateauJudge:
    """Counts bad values of a metric and says when the patience has run out.

    Same decisions as ``torch.optim.lr_scheduler.ReduceLROnPlateau.step``: ``update`` returns
    ``True`` exactly when torch would reduce the LR. A NaN is never an improvement.
    """

    def __init__(self, rule: PlateauRule) -> None:
        self.rule = rule
        self.best = math.inf if rule.mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_counter = 0
        self.since_best = 0  # values since the best one, across plateaus (num_bad restarts at each)

    def is_better(self, value: float) -> bool:
        rule, best = self.rule, self.best
        if rule.mode == "min":
            return value < (best * (1.0 - rule.threshold) if rule.threshold_mode == "rel" else best - rule.threshold)
        return value > (best * (1.0 + rule.threshold) if rule.threshold_mode == "rel" else best + rule.threshold)

    def update(self, value: float) -> bool:
        """Take one fresh metric value; ``True`` when this value ends a plateau."""
        if self.is_better(value):
            self.best = value
            self.num_bad = 0
            self.since_best = 0
        else:
            self.num_bad += 1
            self.since_best += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.rule.patience:
            self.cooldown_counter = self.rule.cooldown
            self.num_bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_counter": self.cooldown_counter,
            "since_best": self.since_best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.num_bad = int(state["num_bad"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.since_best = int(state.get("since_best", self.num_bad))


def reduced(lr: float, factor: float, min_lr: float, eps: float) -> float | None:
    """torch's reduction: ``max(lr * factor, min_lr)``, or ``None`` when it would change ``lr`` by ``eps`` or less.

    Example:
        >>> reduced(0.1, 0.5, 0.0, 1e-8), reduced(0.1, 0.5, 0.1, 1e-8)
        (0.05, None)
    """
    new = max(lr * factor, min_lr)
    return new if lr - new > eps else None
