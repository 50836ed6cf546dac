"""Benchmark what our three callbacks cost per training step, against what a user adds otherwise.

The synthetic classifier (``SyntheticClassifier``, a ``warmup_cosine`` schedule stepped per
optimizer step, SGD with momentum, batch 32, one validation batch per epoch) is fitted with
``log_every_n_steps=1`` (the LR is logged at every step) and a logger that drops everything, with:

- ``bare``: no callbacks (the baseline every ratio subtracts);
- ``peers``: ``LearningRateMonitor(log_momentum=True, log_weight_decay=True)`` and
  ``EarlyStopping(monitor="val_loss")``: what a user adds to log the same values and to act on a
  plateau without this package;
- ``ours``: ``LRLogger()``, ``PlateauDetector(monitor="val_loss")`` and ``ScheduleCheck()``.

With ``--breakdown``, each of those callbacks alone and one callback that does nothing (what
Lightning's dispatch of every hook costs for any callback) are measured too.

All configurations run in **one fit**, interleaved segment by segment: a rotation callback (in
every configuration, bare included) swaps ``trainer.callbacks`` every ``--segment`` training
batches, in alternating order round after round, and times each segment in CPU time (the process
is single-threaded, so that is its wall time minus what other processes take). A slow period on a
shared machine therefore hits every configuration alike. The first epoch runs every callback of
every configuration (their set-up hooks) and is not timed, nor is any segment that spans an epoch
end (validation). Garbage collection is off while the fit runs.

The figure of merit is the **overhead ratio** ``(ours - bare) / (peers - bare)`` per training step,
from each configuration's minimum over its segments (noise only adds time) and from the medians
of the per-round differences (each round runs every configuration back to back). Goal: <= 0.90.
The total-time ratio ``ours / peers`` is reported beside it.

Usage::

    python benchmarks/bench_callbacks.py               # writes benchmarks/results/callbacks.{md,json}
    python benchmarks/bench_callbacks.py --quick       # smoke run, writes benchmarks/results/callbacks_quick.*
    python benchmarks/bench_callbacks.py --breakdown   # also each callback alone
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch
from environment import describe_environment  # benchmarks/environment.py, beside this script
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import Logger

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from lightning_lrsched import (  # noqa: E402
    LRLogger,
    PlateauDetector,
    ScheduleCheck,
    SyntheticClassifier,
    SyntheticDataModule,
)
from lightning_lrsched.callbacks.schedule_check import RunPlan, check_schedulers  # noqa: E402
from lightning_lrsched.schedules import get_schedule  # noqa: E402

GOAL = 0.90  # (ours - bare) / (peers - bare), per training step
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


class Rotation(Callback):
    """Runs each configuration for ``segment`` batches in turn and times each run, in µs per step.

    It is the last callback of every list it installs, so a segment starts when the callbacks'
    ``on_train_batch_end`` of one batch are done and ends at the same point ``segment`` batches
    later: it holds exactly ``segment`` whole training steps under one configuration.
    """

    def __init__(self, configs: dict[str, list[Callback]], segment: int, rounds: int) -> None:
        self.configs = configs
        self.segment = segment
        names = list(configs)
        self.plan = [name for r in range(rounds) for name in (names if r % 2 == 0 else names[::-1])]
        self.samples: list[tuple[int, str, float]] = []  # (round, configuration, µs per step)
        self.index = -1
        self.others: list[Callback] = []
        self.start = 0.0
        self.epoch = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.process_time()
        if trainer.current_epoch == 0 or (batch_idx + 1) % self.segment:
            return
        if self.index < 0:
            # Callbacks Lightning added itself stay in every configuration.
            ours = {id(c) for callbacks in self.configs.values() for c in callbacks}
            self.others = [c for c in trainer.callbacks if id(c) not in ours and c is not self]
        elif self.epoch == trainer.current_epoch:
            name = self.plan[self.index]
            self.samples.append((self.index // len(self.configs), name, (now - self.start) / self.segment * 1e6))
        self.index += 1
        if self.index == len(self.plan):
            trainer.should_stop = True
            trainer.callbacks = [*self.others, self]
            return
        trainer.callbacks = [*self.others, *self.configs[self.plan[self.index]], self]
        self.epoch = trainer.current_epoch
        self.start = time.process_time()


class Noop(Callback):
    pass


def peers() -> list[Callback]:
    # patience: the fit must run its epochs, as ours does (PlateauDetector only logs by default).
    return [
        LearningRateMonitor(log_momentum=True, log_weight_decay=True),
        EarlyStopping(monitor="val_loss", patience=10_000),
    ]


def ours() -> list[Callback]:
    return [LRLogger(), PlateauDetector(monitor="val_loss"), ScheduleCheck()]


CONFIGS: dict[str, Callable[[], list[Callback]]] = {"bare": list, "peers": peers, "ours": ours}
BREAKDOWN: dict[str, Callable[[], list[Callback]]] = {
    "noop": lambda: [Noop()],
    "LRLogger": lambda: [LRLogger()],
    "PlateauDetector": lambda: [PlateauDetector(monitor="val_loss")],
    "ScheduleCheck": lambda: [ScheduleCheck()],
    "LearningRateMonitor": lambda: [LearningRateMonitor(log_momentum=True, log_weight_decay=True)],
    "EarlyStopping": lambda: [EarlyStopping(monitor="val_loss", patience=10_000)],
}


def time_fit(configs: dict[str, Callable[[], list[Callback]]], segment: int, rounds: int, batches: int) -> Rotation:
    """One fit that runs every configuration ``rounds`` times for ``segment`` batches each."""
    instances = {name: make() for name, make in configs.items()}
    rotation = Rotation(instances, segment, rounds)
    timed_epochs = math.ceil(len(rotation.plan) * segment / (batches - segment)) + 1
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1 + timed_epochs,
        logger=NullLogger(),
        log_every_n_steps=1,
        callbacks=[rotation],
        limit_val_batches=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    model = SyntheticClassifier(
        optimizer={"name": "sgd", "momentum": 0.9}, scheduler={"name": "warmup_cosine", "warmup": "5%"}
    )
    # 70 % of the samples train; the rest is the validation and test splits.
    data = SyntheticDataModule(num_samples=round(batches * BATCH / 0.7) + 1, batch_size=BATCH)
    # Installed after Trainer() checked the list: two LRLoggers with one state_key may not be saved
    # in one checkpoint, and this fit saves none.
    trainer.callbacks = [*trainer.callbacks[:-1], *(c for cbs in instances.values() for c in cbs), rotation]
    gc.collect()
    gc.disable()
    try:
        trainer.fit(model, datamodule=data)
    finally:
        gc.enable()
    return rotation


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


def summarize(samples: list[tuple[int, str, float]]) -> dict[str, dict[str, float]]:
    """Per configuration: the minimum µs/step, and the median over rounds of its excess over bare."""
    rounds: dict[int, dict[str, float]] = defaultdict(dict)
    for round_index, name, us in samples:
        rounds[round_index][name] = us
    names = list(dict.fromkeys(name for _, name, _ in samples))
    out = {}
    for name in names:
        values = [r[name] for r in rounds.values() if name in r]
        excess = [r[name] - r["bare"] for r in rounds.values() if name in r and "bare" in r]
        out[name] = {
            "min": min(values),
            "median": statistics.median(values),
            "excess_median": statistics.median(excess),
        }
    for name in names:
        out[name]["excess_min"] = out[name]["min"] - out["bare"]["min"]
    return out


def ratios(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    ours, peers = summary["ours"], summary["peers"]
    return {
        "overhead_min": ours["excess_min"] / peers["excess_min"],
        "overhead_median": ours["excess_median"] / peers["excess_median"],
        "total_min": ours["min"] / peers["min"],
        "total_median": ours["median"] / peers["median"],
    }


def render(result: dict[str, Any]) -> str:
    summary, ratio = result["summary"], result["ratios"]
    lines = [
        "# Callback overhead per training step",
        "",
        f"Run: `SyntheticClassifier` (10 -> 2, SGD with momentum, `warmup_cosine` per step, batch {BATCH}), "
        f"LR logged every step (`log_every_n_steps=1`, a logger that drops everything), {result['batches']} "
        f"batches per epoch, one validation batch per epoch. One fit; {result['rounds']} rounds of "
        f"{result['segment']}-batch segments per configuration, interleaved. Environment: {result['environment']}.",
        "",
        "| configuration | µs/step (min) | µs/step (median) | overhead µs: min - bare min | overhead µs: median of "
        "per-round excess |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, stat in summary.items():
        lines.append(
            f"| {name} | {stat['min']:.1f} | {stat['median']:.1f} | {stat['excess_min']:.1f} "
            f"| {stat['excess_median']:.1f} |"
        )
    met = max(ratio["overhead_min"], ratio["overhead_median"]) <= GOAL
    lines += [
        "",
        f"- **Overhead ratio (ours - bare) / (peers - bare): {ratio['overhead_min']:.2f} (min), "
        f"{ratio['overhead_median']:.2f} (median)** (goal <= {GOAL}: {'met' if met else 'missed'}).",
        f"- Total time ours / peers: {ratio['total_min']:.3f} (min), {ratio['total_median']:.3f} (median).",
        f"- ScheduleCheck on a 10^6-step run: {result['check_million_ms']:.1f} ms.",
        "",
        "Lightning calls every hook of every callback at every step (six per training step, each inside a "
        "profiler context), so each callback costs what `noop` shows (with `--breakdown`) before doing "
        "anything: ours are three callbacks, the peers two.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rounds")
    parser.add_argument("--breakdown", action="store_true", help="also time each callback alone")
    parser.add_argument("--rounds", type=int, default=None, help="segments per configuration")
    parser.add_argument("--segment", type=int, default=20, help="training batches per segment")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = 10 * args.segment
    rounds = args.rounds or (20 if args.quick else 200)
    configs = {**CONFIGS, **(BREAKDOWN if args.breakdown else {})}
    rotation = time_fit(configs, args.segment, rounds, batches)
    summary = summarize(rotation.samples)
    result = {
        "segment": args.segment,
        "rounds": rounds,
        "batches": batches,
        "goal": GOAL,
        "summary": summary,
        "ratios": ratios(summary),
        "samples": [(r, name, round(us, 2)) for r, name, us in rotation.samples],
        "check_million_ms": check_million(3),
        "environment": describe_environment(),
    }
    text = render(result)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "callbacks_quick" if args.quick else "callbacks"
    (args.out / f"{stem}.md").write_text(text)
    # One line per segment would make thousands of lines: the samples stay on one.
    samples = json.dumps(result.pop("samples"), separators=(",", ":"))
    text_json = json.dumps(result, indent=2)
    (args.out / f"{stem}.json").write_text(text_json[:-2] + f',\n  "samples": {samples}\n}}\n')


if __name__ == "__main__":
    main()
