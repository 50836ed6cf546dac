"""The search run: every configuration a copy of one stacked run, the worse ones stopped at each rung.

Successive halving, synchronous (the inner loop of Hyperband, Li et al. 2018): all copies start
together; at each rung epoch the copies still training are ranked by their best validation loss so
far and only the best ``n // eta`` (at least one) go on. Every copy trains with the full run's
Trainer (``max_epochs`` of the whole run), so a schedule whose shape depends on the run length
(``cosine``'s ``T_max``, a ``"25%"`` warmup, ``onecycle``) is resolved against the full run: a copy
stopped at a rung has run the first part of the schedule it would have run in full.

A stopped copy is dropped from the run at the rung (:meth:`StackedModule.drop`): its rows leave the
stacked parameters, its param groups the optimizer and its lanes the scheduler, so the vectorised
pass computes only the copies still training, and each of those trains on exactly as it would with
the stopped ones still there (same weights, optimizer state and place in its full-run schedule). A
diverged copy, or one whose schedule cannot run, is dropped at the end of the epoch it was found in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_lrsched.compare.stacked import StackedModule
from lightning_lrsched.schedules import get_schedule
from lightning_lrsched.tune.space import Config, survivors

SEARCH_TRAINER: dict[str, Any] = {
    "logger": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "enable_checkpointing": False,
    "num_sanity_val_steps": 0,
}
"""The Trainer settings of a search's runs (the stacked run, or a Ray trial): quiet, nothing written."""

STATES = ("completed", "stopped", "diverged", "invalid")
"""How a configuration's search ended: trained to the end, stopped at a rung, diverged, or its schedule cannot run."""


@dataclass
class TrialResult:
    """One configuration of the search: what it trained and how far it got.

    Attributes:
        state: one of :data:`STATES`.
        epochs: the epochs it trained.
        rung: the index of the last rung it reached (``len(rungs) - 1``: the end of the run).
        val_curve: ``[epoch, val_loss]`` at every epoch it trained.
        lr_curve: ``[epoch, lr]``: the LR of its param group at the start of every epoch it trained.
        best_val_loss: its best validation loss (``nan`` when it has none).
    """

    label: str
    schedule: dict[str, Any]
    lr: float
    params: dict[str, Any]
    state: str
    epochs: int = 0
    rung: int = 0
    val_curve: list[list[float]] = field(default_factory=list)
    lr_curve: list[list[float]] = field(default_factory=list)
    best_val_loss: float = math.nan
    reason: str = ""

    @property
    def config(self) -> Config:
        return Config(self.label, self.schedule, self.lr, self.params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if known.get("best_val_loss") is None:
            known["best_val_loss"] = math.nan
        for curve in ("val_curve", "lr_curve"):
            known[curve] = [[math.nan if v is None else v for v in p] for p in known.get(curve) or []]
        return cls(**known)


@dataclass
class Rung:
    """Where a search stood after a rung: what a rerun continues from.

    Attributes:
        epoch: the rung's epoch.
        survivors: the configurations still training, in their order in the stacked run.
        val_curves, lr_curves: theirs so far (by label), as :class:`TrialResult` keeps them.
        checkpoint: the stacked run's Lightning checkpoint at the rung's end, the stopped copies dropped.
    """

    epoch: int
    survivors: list[Config]
    val_curves: dict[str, list[list[float]]]
    lr_curves: dict[str, list[list[float]]]
    checkpoint: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "survivors": [asdict(c) for c in self.survivors]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rung:
        curves = {
            name: {
                label: [[math.nan if v is None else v for v in p] for p in points]
                for label, points in data[name].items()
            }
            for name in ("val_curves", "lr_curves")
        }
        survivors = [Config(**c) for c in data["survivors"]]
        return cls(int(data["epoch"]), survivors, curves["val_curves"], curves["lr_curves"], str(data["checkpoint"]))


class RungJudge(Callback):
    """At each epoch end, reads every training copy's ``val_loss/<label>``; at a rung, stops the worse copies.

    Args:
        module: the stacked module of the search.
        configs: one per copy, in copy order.
        rungs: the rung epochs, the last one the end of the run (see :func:`~.space.rung_epochs`).
        eta: the reduction factor: ``n // eta`` (at least one) of ``n`` copies go on past a rung.
        on_decided: called with each :class:`TrialResult` as soon as its configuration's search ends.
        on_epoch: called at every epoch end with the number of copies still training.
    """

    def __init__(
        self,
        module: StackedModule,
        configs: Sequence[Config],
        rungs: Sequence[int],
        eta: int,
        on_decided: Callable[[TrialResult], None],
        on_epoch: Callable[[int, int], None] = lambda epoch, training: None,
        checkpoint: Path | None = None,
        on_rung: Callable[[Rung], None] = lambda rung: None,
    ) -> None:
        self.module = module
        self.checkpoint = checkpoint
        self.on_rung = on_rung
        self.configs = list(configs)
        self.rungs = list(rungs)
        self.eta = eta
        self.on_decided = on_decided
        self.on_epoch = on_epoch
        self.curves: list[list[list[float]]] = [[] for _ in configs]
        self.lrs: list[list[list[float]]] = [[] for _ in configs]
        self.results: dict[int, TrialResult] = {}
        self.diverged: dict[int, str] = {}
        self._index = {c.label: k for k, c in enumerate(self.configs)}

    def row(self, k: int) -> int | None:
        """Configuration ``k``'s row in the stacked module, or ``None`` once it was dropped."""
        labels = self.module.labels
        label = self.configs[k].label
        return labels.index(label) if label in labels else None

    def index(self, row: int) -> int:
        """The configuration of the stacked module's row ``row``."""
        return self._index[self.module.labels[row]]

    def training(self) -> list[int]:
        rows = {k: self.row(k) for k in range(len(self.configs)) if k not in self.results}
        return [k for k, row in rows.items() if row is not None and self.module.frozen_at[row] is None]

    def diverge(self, row: int, value: float, reason: str) -> None:
        """The stacked module's gradient check found row ``row`` diverging: freeze it and record why."""
        self.module.freeze(row)
        k = self.index(row)
        if k not in self.results:
            self.diverged[k] = reason

    def lr_of(self, trainer: L.Trainer, k: int) -> float:
        """The LR of the param group that holds copy ``k``'s first parameter (in whichever optimizer holds it)."""
        row = self.row(k)
        if row is None:
            return math.nan
        first = next(self.module.copies[row].parameters())
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if any(p is first for p in group["params"]):
                    return float(group["lr"])
        return math.nan

    def best(self, k: int) -> float:
        finite = [v for _, v in self.curves[k] if math.isfinite(v)]
        return min(finite) if finite else math.nan

    def decide(self, k: int, state: str, rung: int, reason: str = "") -> None:
        config = self.configs[k]
        result = TrialResult(
            config.label,
            config.schedule,
            config.lr,
            config.params,
            state,
            epochs=len(self.curves[k]),
            rung=rung,
            val_curve=self.curves[k],
            lr_curve=self.lrs[k],
            best_val_loss=self.best(k),
            reason=reason,
        )
        self.results[k] = result
        self.on_decided(result)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for k in self.training():
            self.lrs[k].append([trainer.current_epoch + 1, self.lr_of(trainer, k)])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        rung = sum(r < epoch for r in self.rungs)
        for k, reason in list(self.diverged.items()):
            self.decide(k, "diverged", rung, reason)
            del self.diverged[k]
        for row, invalid in self.module.invalid.items():
            if self.index(row) not in self.results:
                self.decide(self.index(row), "invalid", 0, invalid)
        training = self.training()
        for k in training:
            value = trainer.callback_metrics.get(f"val_loss/{self.configs[k].label}")
            self.curves[k].append([epoch, float(value) if value is not None else math.nan])
        if epoch in self.rungs[:-1]:
            ranked = sorted(training, key=lambda k: (not math.isfinite(self.best(k)), self.best(k)))
            keep = survivors(len(ranked), self.eta)
            for k in ranked[keep:]:
                self.decide(k, "stopped", rung)
        if epoch < self.rungs[-1]:
            self.shed(trainer)
            if epoch in self.rungs and self.checkpoint is not None and self.training():
                self.save_rung(trainer, epoch)
        self.on_epoch(epoch, len(self.training()))

    def save_rung(self, trainer: L.Trainer, epoch: int) -> None:
        """Checkpoint the run as the rung left it (written whole, then renamed) and report the :class:`Rung`."""
        if self.checkpoint is None:
            return
        path = self.checkpoint.with_name(f"{self.checkpoint.stem}-epoch{epoch}{self.checkpoint.suffix}")
        partial = path.with_suffix(".partial")
        trainer.save_checkpoint(partial)
        os.replace(partial, path)
        training = self.training()
        self.on_rung(
            Rung(
                epoch,
                [self.configs[k] for k in training],
                {self.configs[k].label: [list(p) for p in self.curves[k]] for k in training},
                {self.configs[k].label: [list(p) for p in self.lrs[k]] for k in training},
                str(path),
            )
        )

    def resume(self, rung: Rung, decided: Sequence[TrialResult]) -> None:
        """Continue from ``rung``: the survivors' curves so far, and the configurations decided before it."""
        for k, config in enumerate(self.configs):
            if config.label in rung.val_curves:
                self.curves[k] = [list(p) for p in rung.val_curves[config.label]]
                self.lrs[k] = [list(p) for p in rung.lr_curves[config.label]]
        by_label = {t.label: t for t in decided}
        for k, config in enumerate(self.configs):
            if config.label not in rung.val_curves:
                self.results[k] = by_label[config.label]

    # The data order of the epochs after a rung comes from the global generator: a run continued
    # from the rung's checkpoint must draw what the uninterrupted run draws.
    def state_dict(self) -> dict[str, Any]:
        return {"rng": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            torch.set_rng_state(state_dict["rng"])

    def shed(self, trainer: L.Trainer) -> None:
        """Drop the decided configurations from the stacked run; stop it when none is left training."""
        rows = [row for k in self.results if (row := self.row(k)) is not None]
        if not self.training():
            trainer.should_stop = True
        elif rows:
            self.module.drop(rows)

    def finish(self) -> list[TrialResult]:
        """After the run: the copies still training completed it; every configuration's result, in copy order."""
        last = len(self.rungs) - 1
        for k, reason in list(self.diverged.items()):
            self.decide(k, "diverged", last, reason)
        for k in range(len(self.configs)):
            if k not in self.results:
                self.decide(k, "completed", last)
        return [self.results[k] for k in range(len(self.configs))]


def train_search(
    configs: Sequence[Config],
    *,
    model_class: type,
    model_args: dict[str, Any],
    data: L.LightningDataModule,
    seed: int,
    max_epochs: int,
    rungs: Sequence[int],
    eta: int,
    trainer_args: dict[str, Any],
    on_decided: Callable[[TrialResult], None],
    on_epoch: Callable[[int, int], None],
    callbacks: Sequence[Callback] = (),
    checkpoint: Path | None = None,
    on_rung: Callable[[Rung], None] = lambda rung: None,
    resume: tuple[Rung, Sequence[TrialResult]] | None = None,
) -> tuple[list[TrialResult], int]:
    """Train ``configs`` as the copies of one stacked run with successive halving; their results and steps per epoch.

    Each copy is built as its run of its own would be: the seed, then the model with the
    configuration's ``lr`` and schedule, so every copy starts from the same weights.

    ``callbacks`` join the search's Trainer after the rung judge (they see the copies that are left).
    With ``checkpoint`` (a file path), the run is checkpointed at each rung before the last (a file
    per rung, ``<stem>-epoch<N>.ckpt``) and ``on_rung`` gets the :class:`Rung`; ``resume`` (a rung and
    the configurations decided before it) continues from its checkpoint: only the survivors are
    built, and each trains on exactly as in the uninterrupted run.

    Raises:
        Unstackable: the module cannot be stacked (nothing was trained).
    """
    copies = []
    training = list(configs) if resume is None else resume[0].survivors
    for config in training:
        L.seed_everything(seed, verbose=False)
        # Its optimizer alone (its own `lr`): the stacked run reads it and drives it with the copy's schedule.
        copies.append(model_class(**{**model_args, "lr": config.lr, "scheduler": None}))
    judge: list[RungJudge] = []
    module = StackedModule(
        copies,
        [c.label for c in training],
        [get_schedule(c.schedule) for c in training],
        on_diverge=lambda k, value, reason: judge[0].diverge(k, value, reason),
    )
    judge.append(RungJudge(module, configs, rungs, eta, on_decided, on_epoch, checkpoint, on_rung))
    if resume is not None:
        judge[0].resume(*resume)
    data.prepare_data()
    data.setup("fit")
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed: the copies' run must not see that
        batch = next(iter(data.train_dataloader()))
    module.probe(batch)
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[judge[0], *callbacks], **SEARCH_TRAINER, **trainer_args)
    trainer.fit(module, data, ckpt_path=resume[0].checkpoint if resume is not None else None)
    batches = trainer.num_training_batches
    per_epoch = math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else 0
    return judge[0].finish(), per_epoch
