"""The tutorials' synthetic classifier as a LightningModule, its data, and the digits task."""

from lightning_lrsched.models.classifier import SyntheticClassifier
from lightning_lrsched.models.data import SyntheticDataModule
from lightning_lrsched.models.digits import DigitsClassifier, DigitsDataModule

__all__ = ["DigitsClassifier", "DigitsDataModule", "SyntheticClassifier", "SyntheticDataModule"]
