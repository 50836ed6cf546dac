"""A Trainer's run as a :class:`~lightning_lrsched.schedules.run.RunPlan`: the one place the run length is read."""

from __future__ import annotations

import math

import lightning.pytorch as pl

from lightning_lrsched.schedules.run import RunPlan


def plan_from_trainer(trainer: pl.Trainer) -> RunPlan:
    """The plan of ``trainer``'s run, from its public attributes (usable from ``configure_optimizers`` on).

    The length is ``estimated_stepping_batches`` (epochs, ``max_steps``, limits and gradient
    accumulation included). With training data of unknown length only ``max_steps`` can bound
    the run exactly, so the length is known only when ``max_epochs`` is -1 (Lightning's
    default when only ``max_steps`` is given).
    """
    # `estimated_stepping_batches` loads the training data, so it goes first: it fills
    # `num_training_batches`. With max_epochs=-1 it returns before loading, and the epoch length
    # is read once the data is loaded the way Lightning loads it for its own estimate.
    total: float | None = trainer.estimated_stepping_batches
    batches = trainer.num_training_batches
    if not math.isfinite(batches) and getattr(trainer, "train_dataloader", False) is None:
        trainer.fit_loop.setup_data()
        batches = trainer.num_training_batches
    max_epochs = _limit(trainer.max_epochs)
    max_steps = _limit(trainer.max_steps)
    known_epochs = math.isfinite(batches) and batches > 0
    if not known_epochs:
        total = max_steps if max_epochs is None else None
    elif total is not None and (not math.isfinite(total) or total < 0):
        total = None
    return RunPlan(
        total_steps=None if total is None else int(total),
        batches_per_epoch=int(batches) if known_epochs else None,
        accumulate=int(trainer.accumulate_grad_batches),
        global_step=int(trainer.global_step),
        epoch=int(trainer.current_epoch),
        max_epochs=max_epochs,
        max_steps=max_steps,
    )


def _limit(value: int | float | None) -> int | None:
    return None if value is None or value < 0 else int(value)
