"""The tutorials' synthetic classifier as a LightningModule, and its data."""

from lightning_lrsched.models.classifier import SyntheticClassifier
from lightning_lrsched.models.data import SyntheticDataModule

__all__ = ["SyntheticClassifier", "SyntheticDataModule"]
