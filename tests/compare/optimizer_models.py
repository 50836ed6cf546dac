"""Modules of tests/compare/test_stacked_optimizer_settings.py: optimizers outside ``LINEAR_IN_LR``.

Importable by a comparison's worker processes (``tests.compare.optimizer_models.<Name>``), as a user's
modules are: each is :class:`~tests.compare.own_models.OwnClassifier` with an optimizer of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tests.compare.own_models import OwnClassifier


class ASGDClassifier(OwnClassifier):
    def configure_optimizers(self):
        return torch.optim.ASGD(self.parameters(), lr=0.2, t0=2, weight_decay=1e-3)


class RpropClassifier(OwnClassifier):
    def configure_optimizers(self):
        return torch.optim.Rprop(self.parameters(), lr=0.01)


class AdafactorClassifier(OwnClassifier):
    def configure_optimizers(self):
        return torch.optim.Adafactor(self.parameters(), lr=0.05)


class GlobalNormSGD(torch.optim.Optimizer):
    """As another package writes one: SGD whose step is scaled by the gradients' norm over all its parameters."""

    def __init__(self, params: Any, lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad / (norm + 1e-12), alpha=-group["lr"])
        return loss


class GlobalNormClassifier(OwnClassifier):
    def configure_optimizers(self):
        return GlobalNormSGD(self.parameters(), lr=0.2)


class OwnSGD(torch.optim.SGD):
    """A subclass: nothing says its step is SGD's."""


class SGDSubclassClassifier(OwnClassifier):
    def configure_optimizers(self):
        return OwnSGD(self.parameters(), lr=0.2, momentum=0.9)


class LBFGSClassifier(OwnClassifier):
    def configure_optimizers(self):
        return torch.optim.LBFGS(self.parameters(), lr=0.5, max_iter=3)
