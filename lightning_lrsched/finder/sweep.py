"""`find_lr`: an exponential LR range test on a real Trainer that leaves the model as it found it.

The test trains the module for up to ``num_steps`` optimizer steps with the LR rising exponentially
from ``min_lr`` to ``max_lr`` (Smith, 2017, "Cyclical Learning Rates for Training Neural Networks",
section 3.3), records the loss of every step, and stops once the smoothed loss exceeds
``divergence`` times its best. Every rule of :mod:`~lightning_lrsched.finder.rules` then suggests
an LR from the same curve.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.model_helpers import is_overridden
from matplotlib.figure import Figure

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.finder.peak import with_peak_lr
from lightning_lrsched.finder.rules import RULES, Smoother, check_range_args, exponential_lrs, suggest
from lightning_lrsched.module_contract import ModuleContractError, check_optimizers
from lightning_lrsched.validation import check_accelerator, check_choice, check_range

DEFAULT_RULE = "valley"
"""The rule :meth:`LRFinderResult.suggestion` and :meth:`LRFinderResult.apply` use unless told (fastai's default)."""

DISAGREEMENT = 1000.0
"""Suggestions further apart than this factor get a note: the curve is too noisy or too short to trust one blindly."""

OWNED_TRAINER_ARGS = (
    "max_steps",
    "max_epochs",
    "min_steps",
    "min_epochs",
    "max_time",
    "limit_val_batches",
    "num_sanity_val_steps",
    "val_check_interval",
    "check_val_every_n_epoch",
)
"""Trainer arguments the range test sets itself: its length comes from ``num_steps`` and it never validates."""


class RangeTest(Callback):
    """Drives an LR range test inside a ``Trainer.fit``: sets each step's LR, records its loss, stops on divergence.

    At the start of training it takes the LR out of the module's schedulers' hands (they are
    dropped from ``trainer.strategy.lr_scheduler_configs`` for this fit, as Lightning's own tuner
    does) and keeps a copy of each optimizer's state, which :meth:`restore_optimizers` puts back.
    Every optimizer step's loss is averaged over the processes (one collective per step that every
    rank enters), so all ranks record the same curve, stop at the same step and suggest the same LRs.

    Args:
        lrs: the LR of each optimizer step of the test; every param group gets it.
        beta: the smoothing of the recorded losses (see :func:`~lightning_lrsched.finder.rules.smooth`).
        divergence: stop once the smoothed loss exceeds this many times its lowest value (``None``:
            run all steps unless a loss is not finite).
    """

    def __init__(self, lrs: np.ndarray, beta: float = 0.98, divergence: float | None = 4.0) -> None:
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self._smoother = Smoother(beta)
        self.divergence = None if divergence is None else check_range("divergence", divergence, 1.0, float("inf"))
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.diverged_at: int | None = None
        self.skipped: list[int] = []
        self._optimizer_states: list[tuple[torch.optim.Optimizer, dict[str, Any]]] = []
        self._pending = 0.0  # loss of the batches of the current optimizer step (gradient accumulation)
        self._has_loss = False  # whether a batch of the current optimizer step returned a loss
        self._steps_done = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _check_automatic(pl_module)  # again: a module may switch it off in a hook
        # find_lr checks configure_optimizers before the fit; one that needs the Trainer is checked here.
        # (Lightning itself refuses several optimizers under automatic optimization, and runs None as a
        # stand-in optimizer that holds none of the module's parameters.)
        own = {id(p) for p in pl_module.parameters()}
        if not any(id(p) in own for o in trainer.optimizers for g in o.param_groups for p in g["params"]):
            raise ModuleContractError(
                f"find_lr sets the LR of the optimizer {type(pl_module).__name__}.configure_optimizers returns: it "
                "returned none that holds the module's parameters (None?); return one optimizer, or "
                '{"optimizer": optimizer, "lr_scheduler": ...}'
            )
        self._optimizer_states = [(opt, copy.deepcopy(opt.state_dict())) for opt in trainer.optimizers]
        trainer.strategy.lr_scheduler_configs = []
        self._set_lr(trainer, 0)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._set_lr(trainer, min(trainer.global_step, len(self.lrs) - 1))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # A training_step that returns None skips its batch (Lightning hands an empty dict here); the step
        # still counts, and as in Lightning's finder it has no loss (NaN), which the rules leave out.
        if outputs is not None and not (isinstance(outputs, Mapping) and not outputs):
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if not isinstance(loss, torch.Tensor):
                raise InvalidType(
                    f"find_lr reads the loss that training_step returns (a tensor, a dict with 'loss', or None to skip "
                    f"the batch): got {type(outputs).__name__} at batch {batch_idx}"
                )
            # Lightning divides each batch's loss by the accumulation count: their sum is the step's mean loss.
            self._pending += float(loss.detach().float())
            self._has_loss = True
        if trainer.global_step == self._steps_done:
            return  # gradients still accumulating: no optimizer step in this batch
        self._steps_done = trainer.global_step
        # The mean over the processes that have a loss for this step; none: the step was skipped everywhere.
        local = torch.tensor([self._pending, float(self._has_loss)], device=pl_module.device)
        total, count = trainer.strategy.reduce(local, reduce_op="sum").tolist()
        self._pending, self._has_loss = 0.0, False
        if count == 0:
            self.skipped.append(len(self.losses))
            self.losses.append(float("nan"))
            self.smoothed.append(float("nan"))
            return
        mean = total / count
        self.losses.append(mean)
        self.smoothed.append(self._smoother.update(mean))
        current, best = self.smoothed[-1], float(np.nanmin(self.smoothed))  # skipped steps are NaN
        if not np.isfinite(current) or (self.divergence is not None and current > self.divergence * best):
            self.diverged_at = len(self.losses) - 1
            trainer.should_stop = True

    def _set_lr(self, trainer: L.Trainer, step: int) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = float(self.lrs[step])

    def restore_optimizers(self) -> None:
        """Put every optimizer back in the state it had when the test started."""
        for optimizer, state in self._optimizer_states:
            optimizer.load_state_dict(state)


@dataclass
class ModuleSnapshot:
    """What a range test changes in the caller's world, saved before it and put back after it.

    The module's parameters and buffers (copied back in place, so optimizers holding the parameters
    stay valid), their ``.grad``, each submodule's train/eval mode, the device, the ``trainer`` the
    module and data module were attached to, and the random generators (torch CPU and CUDA, numpy,
    ``random``), so that the caller's later training draws the same numbers it would have drawn
    without the test.
    """

    state: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None]
    modes: dict[str, bool]
    device: torch.device
    trainer: Any
    datamodule_trainer: Any
    rng: dict[str, Any] = field(repr=False)

    @classmethod
    def take(cls, module: L.LightningModule, datamodule: L.LightningDataModule | None) -> ModuleSnapshot:
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "random": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        try:
            attached = module.trainer
        except RuntimeError:  # LightningModule.trainer raises when the module is not attached
            attached = None
        return cls(
            state={k: v.detach().to("cpu", copy=True) for k, v in module.state_dict(keep_vars=True).items()},
            grads={k: None if p.grad is None else p.grad.detach().clone() for k, p in module.named_parameters()},
            modes={name: m.training for name, m in module.named_modules()},
            device=module.device,
            trainer=attached,
            datamodule_trainer=None if datamodule is None else datamodule.trainer,
            rng=rng,
        )

    def restore(self, module: L.LightningModule, datamodule: L.LightningDataModule | None) -> None:
        module.to(self.device)
        module.load_state_dict(self.state, strict=True)
        for name, param in module.named_parameters():
            saved = self.grads[name]
            param.grad = None if saved is None else saved.to(param.device)
        for name, submodule in module.named_modules():
            submodule.training = self.modes[name]
        module.trainer = self.trainer
        if datamodule is not None:
            datamodule.trainer = self.datamodule_trainer
        torch.set_rng_state(self.rng["torch"])
        np.random.set_state(self.rng["numpy"])
        random.setstate(self.rng["random"])
        if "cuda" in self.rng:
            torch.cuda.set_rng_state_all(self.rng["cuda"])


@dataclass
class LRFinderResult:
    """The curve of a range test and each rule's suggestion.

    Attributes:
        lrs: the LR of each step that ran.
        losses: the training loss of each step (averaged over processes).
        smoothed: the smoothed loss the rules work on.
        suggestions: rule name -> suggested LR, ``None`` where the rule had too few points.
        reasons: rule name -> why it has no suggestion.
        num_steps: the steps the test planned.
        min_lr: the LR of its first step.
        max_lr: the LR of its last planned step.
        diverged_at: the step at which the loss diverged and the test stopped, or ``None``.
        skipped: the steps whose ``training_step`` returned ``None`` (no loss: NaN in the curve, left
            out by every rule, as Lightning's finder does).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: dict[str, float | None]
    reasons: dict[str, str]
    num_steps: int
    min_lr: float
    max_lr: float
    diverged_at: int | None = None
    skipped: tuple[int, ...] = ()

    def suggestion(self, rule: str = DEFAULT_RULE) -> float:
        """The LR ``rule`` suggests; raises if the rule was not run or had too few points."""
        check_choice("rule", rule, tuple(self.suggestions))
        lr = self.suggestions[rule]
        if lr is None:
            raise InvalidValue(f"rule {rule!r} has no suggestion: {self.reasons[rule]}. {self._advice()}")
        return lr

    def apply(self, model_args: Mapping[str, Any], rule: str = DEFAULT_RULE) -> dict[str, Any]:
        """A copy of the model arguments with ``rule``'s LR as the schedule's peak.

        ``onecycle``/``cyclic`` get it as ``max_lr``, every other schedule (the warmup family's peak
        is the optimizer's LR) as ``lr``; see :func:`~lightning_lrsched.finder.peak.with_peak_lr`.
        """
        return with_peak_lr(model_args, self.suggestion(rule))

    def loss_at(self, lr: float) -> float:
        """The smoothed loss at ``lr``, interpolated in log LR over the finite part of the curve."""
        finite = np.isfinite(self.smoothed)
        return float(np.interp(np.log(lr), np.log(self.lrs[finite]), self.smoothed[finite]))

    def notes(self) -> list[str]:
        """What a reader should know about this curve before trusting a suggestion."""
        out = []
        if self.diverged_at is not None:
            out.append(
                f"the loss diverged at step {self.diverged_at} of {self.num_steps} "
                f"(lr={self.lrs[self.diverged_at]:.3g}); the test stopped there"
            )
        if self.skipped:
            out.append(
                f"training_step returned None at {len(self.skipped)} step(s) ({', '.join(map(str, self.skipped[:5]))}"
                f"{', ...' if len(self.skipped) > 5 else ''}): they have no loss, and the rules leave them out"
            )
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if self.diverged_at is None and finite.size and int(np.argmin(finite)) >= finite.size - 5:
            out.append(
                f"the loss was still falling at max_lr={self.max_lr:g}: the suggestions may be too low; "
                "raise `max_lr` to see where it turns"
            )
        found = [lr for lr in self.suggestions.values() if lr is not None]
        if found and max(found) / min(found) > DISAGREEMENT:
            out.append(
                f"the rules disagree by more than {DISAGREEMENT:g}x ({min(found):.2g} to {max(found):.2g}): look at "
                "the figure before picking one (noise in the first steps can put the steepest fall where the loss "
                "has not begun to fall)"
            )
        return out

    def _advice(self) -> str:
        if self.diverged_at is not None:
            return (
                f"The loss diverged after {self.diverged_at + 1} of {self.num_steps} steps: lower `max_lr` "
                f"(it diverged at lr={self.lrs[self.diverged_at]:.3g}) or raise `num_steps`"
            )
        return "Raise `num_steps`"

    def table(self) -> str:
        """The suggestions as a small text table (rule, LR, smoothed loss there, where the rule comes from)."""
        lines = [f"{'rule':<10} {'lr':>10} {'loss':>9}  source"]
        for rule, lr in self.suggestions.items():
            if lr is None:
                lines.append(f"{rule:<10} {'-':>10} {'':>9}  {self.reasons[rule]}")
            else:
                lines.append(f"{rule:<10} {lr:>10.3g} {self.loss_at(lr):>9.4f}  {RULES[rule].source}")
        notes = [textwrap.fill(f"note: {note}", width=79, subsequent_indent="      ") for note in self.notes()]
        return "\n".join(lines + notes)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the curve, the suggestions and the notes."""
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_steps": self.num_steps,
            "diverged_at": self.diverged_at,
            "skipped": list(self.skipped),
            "suggestions": self.suggestions,
            "reasons": self.reasons,
            "notes": self.notes(),
            "lrs": self.lrs.tolist(),
            "losses": self.losses.tolist(),
            "smoothed": self.smoothed.tolist(),
        }

    def figure(self, title: str | None = None) -> Figure:
        """The smoothed loss over the LR (log scale) with each suggestion marked."""
        from lightning_lrsched.finder.figure import finder_figure

        return finder_figure(self, title=title)

    def save_figure(self, path: str | Path, title: str | None = None) -> Path:
        """Write :meth:`figure` to ``path`` (format from the suffix)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.figure(title).savefig(out, dpi=120)
        return out


def find_lr(
    model: L.LightningModule,
    datamodule: L.LightningDataModule | None = None,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    divergence: float | None = 4.0,
    rules: Sequence[str] = tuple(RULES),
    **trainer_kwargs: Any,
) -> LRFinderResult:
    """Run an exponential LR range test and suggest an LR by several rules; the model is left as it was.

    Trains ``model`` on ``datamodule`` (or its own ``train_dataloader``) for up to ``num_steps``
    optimizer steps with a fresh :class:`~lightning.pytorch.Trainer`, step ``i`` at
    ``min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))`` in every param group, with the optimizer
    the module's ``configure_optimizers`` returns (its schedulers are set aside for the test). No
    validation, checkpoints or logs. Afterwards the module's parameters, buffers and gradients, its
    train/eval modes, the optimizers' states and the random generators are exactly what they were
    (see :class:`ModuleSnapshot`), so training after ``find_lr`` is bit-identical to training
    without it. Under DDP every rank returns the same result.

    Args:
        model: the LightningModule (automatic optimization).
        datamodule: its data; ``None`` uses the module's own dataloaders.
        min_lr: the LR of the first step.
        max_lr: the LR of the last step.
        num_steps: optimizer steps of the test (at least 25; the test stops earlier if the loss diverges).
        beta: smoothing of the loss curve (fastai's and Lightning's 0.98).
        divergence: stop once the smoothed loss is this many times its lowest (``None``: never).
        rules: the rules to run (:data:`~lightning_lrsched.finder.rules.RULES`: ``valley``, ``slide``,
            ``steep``, ``minimum``, ``lightning``).
        **trainer_kwargs: more ``Trainer`` arguments (``accelerator``, ``devices``, ``strategy``,
            ``precision``, ``accumulate_grad_batches``, ...); not the ones the test sets itself
            (``max_steps``, ``max_epochs``, validation).

    Returns:
        The curve and the suggestions: ``result.suggestion("valley")``, ``result.table()``,
        ``result.save_figure("lr_find.png")``, ``result.apply(model_args, rule="valley")``.

    Raises:
        InvalidValue: a bad range (``min_lr >= max_lr``, not positive), fewer than 25 steps, a
            Trainer argument the test sets itself, an accelerator this machine does not have, or no
            data (``datamodule=None`` and no ``train_dataloader`` in the model).
        ModuleContractError: (an ``InvalidValue``) manual optimization, or a ``configure_optimizers``
            that returns several optimizers or none.
        InvalidType: ``model`` is not a LightningModule, ``datamodule`` not a LightningDataModule.

    Example:
        >>> from lightning_lrsched import SyntheticClassifier, SyntheticDataModule
        >>> model = SyntheticClassifier(scheduler=None)
        >>> before = [p.clone() for p in model.parameters()]
        >>> result = find_lr(model, SyntheticDataModule(num_samples=200, batch_size=20), num_steps=30,
        ...                  accelerator="cpu", enable_progress_bar=False)
        >>> list(result.suggestions)
        ['valley', 'slide', 'steep', 'minimum', 'lightning']
        >>> all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        True
    """
    check_range_args(min_lr, max_lr, num_steps)
    for name in rules:
        check_choice("rules", name, tuple(RULES))
    if not rules:
        raise InvalidValue(f"`rules` must name at least one rule: got rules={list(rules)!r}; use some of {list(RULES)}")
    owned = sorted(set(trainer_kwargs) & set(OWNED_TRAINER_ARGS))
    if owned:
        raise InvalidValue(
            f"find_lr sets {', '.join(f'`{k}`' for k in owned)} itself (the test runs `num_steps` steps, "
            f"without validation): got {', '.join(f'{k}={trainer_kwargs[k]!r}' for k in owned)}; leave them out"
        )
    if not isinstance(model, L.LightningModule):
        raise InvalidType(f"`model` must be a LightningModule: got {type(model).__name__}")
    if datamodule is not None and not isinstance(datamodule, L.LightningDataModule):
        raise InvalidType(
            f"`datamodule` must be a LightningDataModule, or None to use the model's own train_dataloader: "
            f"got {type(datamodule).__name__}"
        )
    if datamodule is None and not is_overridden("train_dataloader", model):
        raise InvalidValue(
            f"`datamodule` is None and {type(model).__name__} defines no train_dataloader: pass the "
            "LightningDataModule it trains on, e.g. find_lr(model, datamodule)"
        )
    check_accelerator("accelerator", trainer_kwargs.get("accelerator"))
    _check_automatic(model)
    # A module may keep its optimizer across fits: the check leaves it as it is (find_lr restores what it changes).
    check_optimizers(model, "find_lr sets the LR of one")
    lrs = exponential_lrs(min_lr, max_lr, num_steps)
    test = RangeTest(lrs, beta=beta, divergence=divergence)
    settings: dict[str, Any] = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **trainer_kwargs,
        "callbacks": [*_as_list(trainer_kwargs.get("callbacks")), test],
        "max_steps": num_steps,
        "max_epochs": -1,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    snapshot = ModuleSnapshot.take(model, datamodule)
    try:
        with _lightning_info_silenced():
            trainer = L.Trainer(**settings)
            trainer.fit(model, datamodule=datamodule)
    finally:
        test.restore_optimizers()
        snapshot.restore(model, datamodule)
    if not test.losses:
        raise InvalidValue(
            "the range test recorded no optimizer step in this process: the training data is empty, or the "
            "strategy trained in other processes (ddp_spawn); use strategy='ddp', which runs this script on every rank"
        )
    recorded, smoothed = lrs[: len(test.losses)], np.asarray(test.smoothed)
    suggestions, reasons = suggest(recorded, smoothed, num_steps, rules, skipped=test.skipped)
    return LRFinderResult(
        lrs=recorded,
        losses=np.asarray(test.losses),
        smoothed=smoothed,
        suggestions=suggestions,
        reasons=reasons,
        num_steps=num_steps,
        min_lr=float(min_lr),
        max_lr=float(max_lr),
        diverged_at=test.diverged_at,
        skipped=tuple(test.skipped),
    )


@contextlib.contextmanager
def _lightning_info_silenced() -> Iterator[None]:
    """Lightning's info lines (devices, tips, "`Trainer.fit` stopped: `max_steps=100` reached") describe an
    internal fit the caller did not start; warnings still show."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def _check_automatic(module: L.LightningModule) -> None:
    if not module.automatic_optimization:
        raise ModuleContractError(
            "find_lr needs automatic optimization (it sets the LR of each step and reads the loss "
            f"training_step returns): got {type(module).__name__} with automatic_optimization=False"
        )


def _as_list(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
