"""A classifier with buffers: BatchNorm after its hidden layer keeps running statistics (stacked per copy)."""

from torch import nn

from lightning_lrsched.models import SyntheticClassifier


class BatchNormClassifier(SyntheticClassifier):
    def __init__(self, **kwargs):
        super().__init__(hidden=(8,), **kwargs)
        self.net.insert(1, nn.BatchNorm1d(8))
