"""Benchmark the cost of LRLogger + PlateauDetector + ScheduleCheck per training step, as ratios to bare Lightning.

The same tiny run (``nn.Linear(10, 2)``, batch 32, in-memory tensors, a ``warmup_cosine`` schedule
from ``lightning_config``, a no-op logger, one validation batch per epoch) is timed with:

- ``bare``: no callbacks (the baseline);
- ``lr_monitor``: Lightning's ``LearningRateMonitor(log_momentum=True, log_weight_decay=True)``;
- ``noop3``: three callbacks that do nothing — what Lightning's hook dispatch alone costs for three
  callbacks (every callback is called at every hook, ~6 per training step);
- ``ours``: ``LRLogger()``, ``PlateauDetector(monitor="val_loss")`` and ``ScheduleCheck()``;
- ``ours_unused_hooks_off``: the same, with the per-step hooks they do not implement set to None
  (see :func:`without_unused_hooks`): our cost without Lightning's dispatch of no-op hooks.

Each epoch's CPU time (its validation included; the process is single-threaded, so this is its
wall time minus what other processes take) is divided by its optimizer steps; the first epoch of
each fit is left out (one-off costs). Configurations are interleaved fit by fit, the garbage
collector is off while timing, and each configuration reports the minimum and the median over all
its timed epochs: epochs are short, so the minimum filters out other processes' interference. Target:
ours <= 1.01 x bare. Two extra measurements isolate our own code: the per-step cost of the three
callbacks' hook bodies, called directly, and ScheduleCheck's check of a 10^6-step run.

Usage::

    python benchmarks/bench_callbacks.py           # full run, writes benchmarks/results/callbacks.{md,json}
    python benchmarks/bench_callbacks.py --quick   # smoke run, writes benchmarks/results/callbacks_quick.{md,json}
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch
from environment import describe_environment  # benchmarks/environment.py, beside this script
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from lightning_lrsched import LRLogger, PlateauDetector, ScheduleCheck  # noqa: E402
from lightning_lrsched.callbacks.schedule_check import RunPlan, check_schedulers  # noqa: E402
from lightning_lrsched.schedules import get_schedule  # noqa: E402

TARGET = 1.01  # ours / bare, per training step
BATCH = 32

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore")


class NullLogger(Logger):
    """A logger that drops everything: every configuration pays the same logging cost."""

    @property
    def name(self) -> str:
        return "null"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(10, 2)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.layer(x), y))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        schedule = get_schedule("warmup_cosine", warmup="5%")
        return {"optimizer": optimizer, "lr_scheduler": schedule.lightning_config(optimizer, self.trainer)}


class EpochTimer(Callback):
    """CPU time of each training epoch (its validation included), per optimizer step.

    The run is single-threaded (``torch.set_num_threads(1)``, no dataloader workers), so the
    process's CPU time is its wall time on an idle machine, minus the time other processes take
    on a busy one. Epochs are short, so the minimum over many filters out what noise is left
    (cache and frequency effects).
    """

    def __init__(self) -> None:
        self.per_step: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.process_time()
        self.first_step = trainer.global_step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        steps = trainer.global_step - self.first_step
        if trainer.current_epoch > 0 and steps:  # the first epoch pays one-off costs
            self.per_step.append((time.process_time() - self.start) / steps * 1e6)


class Noop(Callback):
    pass


PER_STEP_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
)


def ours() -> list[Callback]:
    return [LRLogger(), PlateauDetector(monitor="val_loss"), ScheduleCheck()]


def without_unused_hooks(callbacks: list[Callback]) -> list[Callback]:
    """Set the per-step hooks a callback does not implement to None on the instance.

    Lightning's dispatcher skips hooks that are not callable, so this measures what the callbacks
    would cost without the dispatch of their no-op hooks. It relies on that undocumented check,
    which is why the library does not do it; here it only tells the dispatch cost apart.
    """
    for callback in callbacks:
        for hook in PER_STEP_HOOKS:
            if getattr(type(callback), hook) is getattr(Callback, hook):
                setattr(callback, hook, None)
    return callbacks


CONFIGS: dict[str, Callable[[], list[Callback]]] = {
    "bare": list,
    "lr_monitor": lambda: [LearningRateMonitor(log_momentum=True, log_weight_decay=True)],
    "noop3": lambda: [Noop(), Noop(), Noop()],
    "ours": ours,
    "ours_unused_hooks_off": lambda: without_unused_hooks(ours()),
}


def loaders(batches: int) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batches * BATCH, 10, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=BATCH), DataLoader(TensorDataset(x[:BATCH], y[:BATCH]))


def time_fit(callbacks: list[Callback], epochs: int, batches: int) -> list[float]:
    """Microseconds per optimizer step of each epoch of one fit (the first epoch left out)."""
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=NullLogger(),
        callbacks=[timer, *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    train, val = loaders(batches)
    gc.collect()
    gc.disable()
    try:
        trainer.fit(Tiny(), train, val)
    finally:
        gc.enable()
    return timer.per_step


def hook_bodies(steps: int) -> float:
    """Microseconds per step of our own per-step hook code, called directly (no Lightning dispatch)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(10, 2))], lr=0.1, momentum=0.9)
    schedule = get_schedule("warmup_cosine", warmup="5%")
    config = SimpleNamespace(
        scheduler=schedule.build(optimizer, total_steps=steps), interval="step", frequency=1, name=None
    )
    trainer = SimpleNamespace(
        is_global_zero=True,
        optimizers=[optimizer],
        lr_scheduler_configs=[config],
        global_step=0,
        current_epoch=0,
        log_every_n_steps=50,
        should_stop=False,
        loggers=[NullLogger()],
    )
    lr_logger, detector = LRLogger(), PlateauDetector()
    lr_logger.on_train_start(trainer, None)  # type: ignore[arg-type]
    detector.on_train_start(trainer, None)  # type: ignore[arg-type]
    # The loss check reduces the loss across processes; alone, that is the identity.
    trainer.strategy = SimpleNamespace(root_device=torch.device("cpu"), reduce=lambda t, reduce_op: t)
    outputs = {"loss": torch.tensor(0.5)}
    scheduler = config.scheduler
    gc.disable()
    start = time.process_time()
    for step in range(steps):
        trainer.global_step = step
        lr_logger.on_before_optimizer_step(trainer, None, optimizer)  # type: ignore[arg-type]
        scheduler.step()
        detector.on_train_batch_end(trainer, None, outputs, None, step)  # type: ignore[arg-type]
    seconds = time.process_time() - start
    gc.enable()
    # The scheduler's own step() is paid with or without our callbacks: take it out.
    scheduler = schedule.build(optimizer, total_steps=steps)
    start = time.process_time()
    for _ in range(steps):
        scheduler.step()
    seconds -= time.process_time() - start
    return seconds / steps * 1e6


def check_million(repeats: int) -> float:
    """Milliseconds for ScheduleCheck to check a 10^6-step run whose schedule ends 10% early."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = get_schedule("warmup_cosine", warmup=1000).build(optimizer, total_steps=900_000)
    config = SimpleNamespace(scheduler=scheduler, interval="step", frequency=1, name=None, monitor=None)
    plan = RunPlan(total_steps=1_000_000, batches_per_epoch=1000)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        findings = check_schedulers([config], plan)
        best = min(best, time.perf_counter() - start)
        if [f.code for f in findings] != ["ends-early"]:
            raise RuntimeError(f"expected one ends-early finding, got {findings}")
    return best * 1e3


def environment() -> dict[str, Any]:
    return describe_environment()


def render(result: dict[str, Any]) -> str:
    per = result["per_step_us"]
    mins = {k: min(v) for k, v in per.items()}
    medians = {k: statistics.median(v) for k, v in per.items()}
    lines = [
        "# Callback overhead per training step",
        "",
        f"Run: {result['epochs']} epochs x {result['batches']} batches = {result['steps']} optimizer steps per fit "
        f"(`nn.Linear(10, 2)`, batch {BATCH}, `warmup_cosine`, one validation batch per epoch), "
        f"{result['repeats']} interleaved fits per configuration; statistics over "
        f"{len(per['bare'])} timed epochs each. Environment: {result['environment']}.",
        "",
        "| configuration | µs/step (min) | µs/step (median) | ratio to bare (min) | ratio to bare (median) |",
        "|---|---|---|---|---|",
    ]
    for name in per:
        lines.append(
            f"| {name} | {mins[name]:.1f} | {medians[name]:.1f} | {mins[name] / mins['bare']:.3f} "
            f"| {medians[name] / medians['bare']:.3f} |"
        )
    ours_min = mins["ours"] / mins["bare"]
    lines += [
        "",
        f"- **ours / bare (min): {ours_min:.3f}** (target <= {TARGET}: {'met' if ours_min <= TARGET else 'missed'}).",
        f"- ours / LearningRateMonitor (min): {mins['ours'] / mins['lr_monitor']:.3f}.",
        f"- Lightning's dispatch of three no-op callbacks / bare (min): {mins['noop3'] / mins['bare']:.3f}; "
        f"ours / three no-op callbacks (min): {mins['ours'] / mins['noop3']:.3f}.",
        f"- ours with their unused per-step hooks set to None / bare (min): "
        f"{mins['ours_unused_hooks_off'] / mins['bare']:.3f}.",
        f"- Our three callbacks' per-step hook bodies, called directly in a tight loop (warm caches; inside a "
        f"real step, with cold caches, they cost several times more): {result['hook_bodies_us']:.2f} µs/step "
        f"({result['hook_bodies_us'] / mins['bare']:.2%} of a bare step).",
        f"- ScheduleCheck on a 10^6-step run (one vectorised evaluation of the schedule over 10^5 steps past "
        f"its end): {result['check_million_ms']:.1f} ms.",
        "",
        "Lightning calls every hook of every callback at every step (six per training step, each through a "
        "profiler context), so any three callbacks cost what `noop3` shows before doing anything. What our "
        "code adds on top is the `ours / noop3` ratio and the hook-body line; `ours_unused_hooks_off` shows "
        "the cost without the dispatch of hooks we do not implement (a trick that relies on an undocumented "
        "check in Lightning's dispatcher, so the library does not use it).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer steps and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs, batches = (4, 50) if args.quick else (11, 100)
    repeats = args.repeats or (3 if args.quick else 12)
    time_fit([], 1, 20)  # warm-up: imports, first-call costs
    per: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for r in range(repeats):
        order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
        for name in order:
            per[name].extend(time_fit(CONFIGS[name](), epochs, batches))
        print(f"repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {min(v):.0f} µs" for k, v in per.items()), flush=True)
    result = {
        "epochs": epochs,
        "batches": batches,
        "steps": epochs * batches,
        "repeats": repeats,
        "target": TARGET,
        "per_step_us": per,
        "hook_bodies_us": min(hook_bodies(20_000 if args.quick else 200_000) for _ in range(3)),
        "check_million_ms": check_million(3 if args.quick else 5),
        "environment": environment(),
    }
    mins = {k: min(v) for k, v in per.items()}
    result["ratios_min"] = {k: v / mins["bare"] for k, v in mins.items()}
    text = render(result)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "callbacks_quick" if args.quick else "callbacks"
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
