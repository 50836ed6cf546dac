"""`ScheduleFreeMode`: the train/eval switching a schedule-free optimizer needs, around Lightning's loops.

A schedule-free optimizer (``schedulefree.AdamWScheduleFree``, ``SGDScheduleFree``) keeps two
points: the one its steps are taken at (train mode) and the average it is evaluated at (eval mode).
``optimizer.train()`` and ``optimizer.eval()`` swap the module's weights between the two; a step in
eval mode is an error, and validation in train mode measures the wrong weights. Lightning has no
notion of this, so users do it by hand; this callback does it for every optimizer of the run that
has ``train()`` and ``eval()`` methods (torch's own have none), and leaves any other alone.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


def _switching(trainer: pl.Trainer) -> list[Any]:
    """The run's optimizers with a train/eval mode."""
    return [
        opt
        for opt in trainer.optimizers
        if callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
    ]


class ScheduleFreeMode(Callback):
    """Puts schedule-free optimizers in train mode to step and in eval mode to validate and save.

    - ``train()`` before every training batch (the first one included: the optimizers start in eval
      mode and refuse to step), so training resumes in train mode after a validation;
    - ``eval()`` when a validation starts and when a training epoch ends, so validation, the
      checkpoints saved at those points (``ModelCheckpoint`` runs after the other callbacks) and the
      callbacks that read the weights at epoch end see the evaluation weights; a checkpoint saved
      mid-epoch holds the training weights. Either way the weights and the optimizer's saved mode
      agree, so a resumed run continues exactly (its next batch switches to train mode);
    - ``eval()`` when ``fit`` ends: the trained module holds the weights to test and deploy.

    :class:`~lightning_lrsched.models.SyntheticClassifier` adds it by itself when its optimizer is
    schedule-free; add it to the ``Trainer``'s callbacks for a module of your own.

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[ScheduleFreeMode()], logger=False, enable_progress_bar=False)
    """

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        for optimizer in _switching(trainer):
            optimizer.train()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval(trainer)

    @staticmethod
    def _eval(trainer: pl.Trainer) -> None:
        for optimizer in _switching(trainer):
            optimizer.eval()
