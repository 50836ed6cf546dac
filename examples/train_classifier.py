"""Train the synthetic classifier from plain Python, with all three callbacks.

Run: python examples/train_classifier.py [--schedule warmup_cosine] [--epochs 20]

The tutorials' loop (train, validate, step the scheduler, print "Epoch, Loss, LR") as a
Lightning program: the schedule resolves its durations against this Trainer's run, LRLogger
records the LR each optimizer step actually used next to the planned one, PlateauDetector logs
plateaus (or reduces/stops), and ScheduleCheck warns before training when the schedule and the
run disagree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from lightning_lrsched import LRLogger, PlateauDetector, ScheduleCheck, SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.console import EpochReport

SCHEDULES = {
    "warmup_cosine": {"name": "warmup_cosine", "warmup": "5%", "min_lr_ratio": 0.01},
    "onecycle": {"name": "onecycle", "max_lr": 0.5},
    "cosine": {"name": "cosine", "warmup": "2ep"},
    "plateau": {"name": "plateau", "factor": 0.5, "patience": 2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="warmup_cosine")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output", default="runs/example")
    args = parser.parse_args()

    L.seed_everything(0)
    model = SyntheticClassifier(optimizer={"name": "sgd", "momentum": 0.9}, lr=0.1, scheduler=SCHEDULES[args.schedule])
    data = SyntheticDataModule(seed=0)
    lr_logger = LRLogger()
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=CSVLogger(args.output, name=args.schedule),
        callbacks=[lr_logger, PlateauDetector(monitor="val_loss", patience=3), ScheduleCheck(), EpochReport()],
        log_every_n_steps=10,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, data)
    trainer.test(model, data, verbose=False)
    print(f"test_acc {float(trainer.callback_metrics['test_acc']):.4f}")
    print(f"steps whose LR differed from the plan: {lr_logger.mismatches}")
    print(f"metrics: {Path(trainer.logger.log_dir) / 'metrics.csv'}")


if __name__ == "__main__":
    main()
