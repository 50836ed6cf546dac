"""A classifier vmap cannot stack: its forward branches on the data (Python control flow on a tensor's value)."""

import torch

from lightning_lrsched.models import SyntheticClassifier


class BranchingClassifier(SyntheticClassifier):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if logits.mean() > 0:  # a data-dependent branch: vmap cannot tell which way each copy goes
            return logits
        return -logits
