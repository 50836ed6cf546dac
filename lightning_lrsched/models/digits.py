"""A real task that ships with a package: scikit-learn's 8×8 handwritten digits, and a small MLP for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lightning_lrsched.models.classifier import SyntheticClassifier
from lightning_lrsched.models.data import GlobalBatchDataModule, check_fractions, split_rows
from lightning_lrsched.validation import check_int

DIGITS_FEATURES, DIGITS_CLASSES = 64, 10


class DigitsDataModule(GlobalBatchDataModule):
    """scikit-learn's bundled handwritten digits (``load_digits``: 1 797 images, 8×8, 10 classes).

    No download: the images ship with scikit-learn. Each image is flattened to 64 pixel values
    scaled from 0..16 to [0, 1]. ``seed`` chooses the per-epoch training order and ``split_seed``
    the split, fixed by default so that runs with different seeds are judged on the same
    validation images (a different split per seed would add its own spread to every comparison). Like
    :class:`~lightning_lrsched.models.SyntheticDataModule`, ``batch_size`` is the *global* batch,
    cut into one part per process, so runs on 1 and N processes see the same batches, and a
    checkpoint saved mid-epoch resumes at the next batch.

    Args:
        batch_size: global batch size (must divide evenly among the processes).
        val_fraction: share of the images for validation.
        test_fraction: share of the images for testing (0: no test split).
        seed: the seed of the per-epoch shuffling.
        shuffle: reshuffle the training set every epoch (seeded by ``seed`` and the epoch).
        split_seed: the seed of the train/val/test split.

    Example:
        >>> dm = DigitsDataModule(batch_size=32)
        >>> {split: len(rows) for split, rows in dm.splits.items()}
        {'test': 0, 'val': 359, 'train': 1438}
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), x.dtype, float(x.max()) <= 1.0
        ((32, 64), torch.float32, True)
    """

    def __init__(
        self,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        split_seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, shuffle)
        check_fractions(val_fraction, test_fraction)
        check_int("split_seed", split_seed, minimum=0)
        self.save_hyperparameters()
        # imported here: scikit-learn takes a second to import, and only this data module needs it
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        self.x = torch.as_tensor(images, dtype=torch.float32) / 16.0
        self.y = torch.as_tensor(labels, dtype=torch.long)
        self.splits = split_rows(len(self.y), val_fraction, test_fraction, torch.Generator().manual_seed(split_seed))


class DigitsClassifier(SyntheticClassifier):
    """An MLP for :class:`DigitsDataModule` (64 pixels → ``hidden`` → 10 classes), trained with a named schedule.

    The synthetic classifier's module with the digits' input and output sizes: the same optimizer,
    ``lr`` and ``scheduler`` arguments, ``configure_optimizers``, logged metrics and stacked-mode
    support (see :class:`~lightning_lrsched.models.SyntheticClassifier`). The defaults (one hidden
    layer of 128, plain SGD at 0.3, with the data module's batches of 32) are where the six tutorial
    schedules, at 30 epochs, differ in best validation loss by several times the spread over seeds
    (``benchmarks/digits_spread.py``), in about 5 s a run on one CPU core.

    Args:
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, or ``{"name": ..., **torch_args}``.
        lr: the learning rate (peak LR of the schedule; ignored by schedules with absolute LRs).
        scheduler: a schedule name (the seed six get the tutorials' arguments), a spec
            ``{"name": ..., **params}``, a :class:`~lightning_lrsched.schedules.Schedule`, or ``None``
            for a constant LR.
        hidden: widths of the hidden layers (ReLU between); empty for a linear (softmax regression) model.

    Example:
        >>> model = DigitsClassifier(hidden=[32, 16], scheduler="cosine")
        >>> model.net
        Sequential(
          (0): Linear(in_features=64, out_features=32, bias=True)
          (1): ReLU()
          (2): Linear(in_features=32, out_features=16, bias=True)
          (3): ReLU()
          (4): Linear(in_features=16, out_features=10, bias=True)
        )
    """

    def __init__(
        self,
        optimizer: str | dict[str, Any] = "sgd",
        lr: float = 0.3,
        scheduler: str | dict[str, Any] | None = "step",
        hidden: Sequence[int] = (128,),
        weight_decay_schedule: str | dict[str, Any] | None = None,
        momentum_schedule: str | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            optimizer,
            lr,
            scheduler,
            DIGITS_FEATURES,
            DIGITS_CLASSES,
            hidden,
            weight_decay_schedule=weight_decay_schedule,
            momentum_schedule=momentum_schedule,
        )
