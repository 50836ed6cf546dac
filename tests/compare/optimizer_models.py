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


class FusedAdamWClassifier(OwnClassifier):
    """AdamW's fused kernel, AMSGrad, betas of its own and a no-decay group (its decay is ``p *= 1 - lr wd``)."""

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if n.endswith("weight")]
        no_decay = [p for n, p in self.named_parameters() if n.endswith("bias")]
        return torch.optim.AdamW(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=0.01,
            betas=(0.8, 0.95),
            weight_decay=0.1,
            amsgrad=True,
            fused=True,
        )


class DampenedSGDClassifier(OwnClassifier):
    """SGD whose momentum buffer is dampened and takes weight decay: it keeps accumulating at LR 0."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9, dampening=0.5, weight_decay=1e-2)


class AdagradClassifier(OwnClassifier):
    """Adagrad with an LR decaying by its step count and sums started at a value of its constructor's."""

    def configure_optimizers(self):
        return torch.optim.Adagrad(
            self.parameters(), lr=0.1, lr_decay=0.5, initial_accumulator_value=0.3, weight_decay=1e-3
        )


class FilteredSGDSubclassClassifier(OwnClassifier):
    """:class:`SGDSubclassClassifier` that gives its optimizer only the parameters that ask for gradients."""

    def configure_optimizers(self):
        return OwnSGD([p for p in self.parameters() if p.requires_grad], lr=0.2, momentum=0.9)
