"""Do the tutorial schedules differ on the digits task by more than the seed-to-seed spread?

Trains :class:`~lightning_lrsched.models.DigitsClassifier` on
:class:`~lightning_lrsched.models.DigitsDataModule` with each of the six tutorial schedules
(``lightning_lrsched.schedules.tutorial.TUTORIAL_SCHEDULES``), for several seeds, on one CPU process.
Seed ``s`` gives every schedule the same initial weights, split and batch order, so schedules can be
compared seed by seed (paired). Reported per schedule: best (lowest over the epochs) and final
validation loss, final validation accuracy, each as mean ± std over the seeds, and the wall time of
a run; then the paired difference of best validation loss to the best schedule (mean ± std over
seeds, and on how many seeds the schedule is worse), and how many schedule pairs are *separated*:
their means differ by more than the sum of their seed standard deviations.

This is a measurement for choosing the task's defaults, not a test.

Usage::

    python benchmarks/digits_spread.py                        # defaults: writes results/digits_spread.{md,json}
    python benchmarks/digits_spread.py --hidden 32 --lr 0.05 --epochs 20 --name small
    python benchmarks/digits_spread.py --split-per-seed --name digits_spread_split_per_seed
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from environment import describe_environment  # benchmarks/environment.py, beside this script

from lightning_lrsched.models.digits import DigitsClassifier, DigitsDataModule
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES

REPO = Path(__file__).resolve().parent.parent


class ValidationHistory(L.Callback):
    """``val_loss`` and ``val_acc`` after every validation of the fit (the sanity check excluded)."""

    def __init__(self) -> None:
        self.loss: list[float] = []
        self.acc: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.loss.append(float(trainer.callback_metrics["val_loss"]))
            self.acc.append(float(trainer.callback_metrics["val_acc"]))


def run(schedule: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    L.seed_everything(seed, verbose=False)
    optimizer: Any = {"name": args.optimizer, "momentum": args.momentum} if args.momentum else args.optimizer
    model = DigitsClassifier(optimizer=optimizer, lr=args.lr, scheduler=schedule, hidden=args.hidden)
    split_seed = seed if args.split_per_seed else 0
    data = DigitsDataModule(
        batch_size=args.batch_size, val_fraction=args.val_fraction, seed=seed, split_seed=split_seed
    )
    history = ValidationHistory()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[history],
        default_root_dir=args.out / "lightning",
    )
    started = time.perf_counter()
    trainer.fit(model, data)
    wall = time.perf_counter() - started
    return {
        "schedule": schedule,
        "seed": seed,
        "best_val_loss": min(history.loss),
        "best_epoch": history.loss.index(min(history.loss)),
        "final_val_loss": history.loss[-1],
        "final_val_acc": history.acc[-1],
        "wall_s": wall,
        "val_loss": history.loss,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict[str, Any]], schedules: list[str], seeds: list[int]) -> tuple[list[str], dict]:
    by = {(r["schedule"], r["seed"]): r for r in runs}
    best = {s: mean_std([by[s, k]["best_val_loss"] for k in seeds]) for s in schedules}
    winner = min(schedules, key=lambda s: best[s][0])
    lines = [
        "| schedule | best val_loss | final val_loss | final val_acc | best epoch | paired Δ to best | seeds worse "
        "| s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    paired = {}
    for s in sorted(schedules, key=lambda s: best[s][0]):
        diffs = [by[s, k]["best_val_loss"] - by[winner, k]["best_val_loss"] for k in seeds]
        paired[s] = mean_std(diffs)
        final, acc = (mean_std([by[s, k][key] for k in seeds]) for key in ("final_val_loss", "final_val_acc"))
        epochs = "/".join(str(by[s, k]["best_epoch"]) for k in seeds)
        wall = statistics.fmean(by[s, k]["wall_s"] for k in seeds)
        worse = sum(d > 0 for d in diffs)
        lines.append(
            f"| {s} | {best[s][0]:.4f} ± {best[s][1]:.4f} | {final[0]:.4f} ± {final[1]:.4f} | "
            f"{acc[0]:.4f} ± {acc[1]:.4f} | {epochs} | {paired[s][0]:+.4f} ± {paired[s][1]:.4f} | "
            f"{worse}/{len(seeds)} | {wall:.1f} |"
        )
    pairs = list(itertools.combinations(schedules, 2))
    separated = [(a, b) for a, b in pairs if abs(best[a][0] - best[b][0]) > best[a][1] + best[b][1]]
    means = [m for m, _ in best.values()]
    seed_std = statistics.fmean(sd for _, sd in best.values())
    summary = {
        "best_schedule": winner,
        "range_of_means": max(means) - min(means),
        "mean_seed_std": seed_std,
        "range_over_seed_std": (max(means) - min(means)) / seed_std if seed_std else float("inf"),
        "separated_pairs": len(separated),
        "pairs": len(pairs),
    }
    lines += [
        "",
        f"Best val_loss: the schedules' means span {summary['range_of_means']:.4f}, "
        f"{summary['range_over_seed_std']:.1f}× the mean seed-to-seed std ({seed_std:.4f}); "
        f"{len(separated)} of {len(pairs)} schedule pairs differ by more than the sum of their stds.",
    ]
    return lines, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="*", default=[128])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (0: plain SGD)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument(
        "--split-per-seed", action="store_true", help="a new train/val split per seed (default: one fixed split)"
    )
    parser.add_argument("--schedules", nargs="*", default=list(TUTORIAL_SCHEDULES))
    parser.add_argument("--name", default="digits_spread", help="results file name, without extension")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")

    seeds = list(range(args.seeds))
    runs = []
    for seed, schedule in itertools.product(seeds, args.schedules):
        runs.append(run(schedule, seed, args))
        r = runs[-1]
        print(
            f"{schedule:12s} seed {seed}: best val_loss {r['best_val_loss']:.4f} {r['wall_s']:.1f} s", file=sys.stderr
        )
    lines, summary = summarize(runs, args.schedules, seeds)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    header = [
        f"# Digits: schedules vs seed-to-seed spread ({args.epochs} epochs, {args.seeds} seeds, 1 CPU process)",
        "",
        f"DigitsClassifier(hidden={args.hidden}, optimizer={args.optimizer!r}"
        + (f", momentum={args.momentum}" if args.momentum else "")
        + f", lr={args.lr}), DigitsDataModule(batch_size={args.batch_size}, val_fraction={args.val_fraction}"
        + (", split_seed=seed)." if args.split_per_seed else ", split_seed=0)."),
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    (args.out / f"{args.name}.md").write_text(text)
    payload = {"settings": settings, "environment": describe_environment(), "summary": summary, "runs": runs}
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
