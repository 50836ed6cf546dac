"""A classifier vmap cannot stack: BatchNorm after its hidden layer updates running statistics in place."""

from torch import nn

from lightning_lrsched.models import SyntheticClassifier


class BatchNormClassifier(SyntheticClassifier):
    def __init__(self, **kwargs):
        super().__init__(hidden=(8,), **kwargs)
        self.net.insert(1, nn.BatchNorm1d(8))
