"""A classifier with a 0-dimensional parameter (a learned temperature), as calibration heads have."""

import torch
from torch import nn

from lightning_lrsched.models import SyntheticClassifier


class TemperatureClassifier(SyntheticClassifier):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature
