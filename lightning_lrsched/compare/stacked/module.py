"""Stacked runs: K copies of a module trained side by side in one Lightning run, one schedule each.

The copies start from each seed's initial weights (the seed, then the module's constructor with
the same arguments, as a run of its own), see their seed's batches, and are evaluated in one
vectorised pass: their parameters and buffers are stacked, as ``torch.func.stack_module_state``
stacks them, and the module runs under ``torch.func.vmap`` via ``functional_call``. The parameters
are stacked once: the module owns one tensor per parameter name, and each copy's parameter is its
row of that tensor (a view), so every step reads them in place, and the gradient, computed for the
stacked tensor (and averaged across processes there), is handed to each copy's parameter as a view
of its row; the buffers are stacked once too, each copy's a view of its row, which the pass
updates in place (BatchNorm's running statistics stay per copy). The loss is the sum of the copies'
losses, so the gradients stay those of K separate runs; each copy's param groups (as its own
``configure_optimizers`` makes them) are groups of one optimizer, driven by its own schedule through
:class:`~lightning_lrsched.schedules.GroupSchedules`. That optimizer's update is made once on the
stacked tensors, each row moved by its copy's LR (:mod:`.optimizer`), where the optimizer allows it;
otherwise each copy's groups are stepped on their own, in place, so in the stacked tensor too. On
small models this trains K schedules in little more than the time of one run, each copy on its own
seed's data order.

The stacking protocol. A module can be stacked when

- it says how to score a batch: a method ``stacked_metrics(self, batch) -> {"loss": ..., **others}``
  returning scalar tensors computed with ``self(...)`` and plain tensor operations only (no
  ``self.log``, no metric objects, no ``.item()``): the loss its ``training_step`` minimises and
  the metrics its ``validation_step`` logs, under the same names (``loss`` → ``val_loss``).
  :class:`~lightning_lrsched.models.SyntheticClassifier` and
  :class:`~lightning_lrsched.models.DigitsClassifier` define it. A subclass that overrides a
  step after the class that defines ``stacked_metrics`` must define its own;
- its ``configure_optimizers`` returns one optimizer (each copy's is read, with its settings and
  param groups, and the copies' groups become one optimizer's: see
  :mod:`lightning_lrsched.module_contract`);
- its copies' parameters and buffers have the same names, shapes and dtypes, and its forward and
  backward run under ``vmap``, and so does its forward in evaluation, without gradients (no data-dependent
  Python control flow, no ``.item()``; a buffer may be updated in place or assigned anew);
- it overrides none of the hooks Lightning calls while compare trains and validates it
  (``COPY_HOOKS``: an EMA in ``on_train_batch_end``, clipping, ``setup``, a batch transform...) and
  brings no callbacks but this package's (``configure_callbacks``): a stacked run calls its own,
  not a copy's, so a copy overriding one might not train as its run of its own does.

Anything else is :class:`Unstackable`, with a one-line reason: ``--mode auto`` then trains the
runs one after the other and notes why, ``--mode stacked`` is an error.

Metrics are logged per copy as ``<stage>_<key>/<label>`` (``train_loss/cosine``,
``val_loss/cosine``, ``val_acc/cosine``).

A schedule that is invalid for the run (a warmup longer than the run, say) fails alone: its copy is
built with a placeholder schedule, frozen before the first step, and listed in ``invalid``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from copy import deepcopy
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.core.hooks import ModelHooks
from lightning.pytorch.utilities.data import extract_batch_size
from torch import nn
from torch.func import functional_call, vmap

from lightning_lrsched.compare.grid import SeedsDrawApart, Unstackable
from lightning_lrsched.compare.stacked.optimizer import (
    VectorisedOptimizer,
    check_shareable,
    constructor_arguments,
    vectorise,
)
from lightning_lrsched.compare.stacked.seeds import copy_batch_size
from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.lightning import plan_from_trainer
from lightning_lrsched.module_contract import defined_by, own_optimizer, own_override
from lightning_lrsched.schedules import GroupSchedules, Schedule, get_schedule

MetricsFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
STEPS = ("training_step", "validation_step", "test_step")
# The hooks Lightning calls on a module while compare trains and validates it (not test's nor predict's: compare does
# neither; not those after the last step: `on_train_end`, `on_fit_end`). A stacked run is a module of its own: it
# scores and steps the copies itself and calls none of theirs, so a copy overriding one (an LR set by hand in
# `optimizer_step`, clipping, an EMA in `on_train_batch_end`, a layer unfrozen in `on_train_epoch_start`, an attribute
# its forward reads set in `setup`, a batch rescaled in `on_after_batch_transfer`) would not train as its run does.
_AFTER_TRAINING = ("on_train_end", "on_fit_end")
COPY_HOOKS = (
    *(
        name
        for name in vars(ModelHooks)
        if name.startswith(("on_", "configure_"))
        and not any(stage in name for stage in ("predict", "test"))
        and name not in _AFTER_TRAINING
    ),
    "setup",
    "backward",
    "configure_gradient_clipping",
    "clip_gradients",
    "optimizer_step",
    "lr_scheduler_step",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
)
# Not `optimizer_zero_grad`: an override sets the gradients to None or zero (`set_to_none`), as a stacked run does.


def stacked_metrics_of(module: nn.Module) -> MetricsFn:
    """How to score a batch with one copy of ``module``; :class:`Unstackable` (one line) if it does not say.

    Example:
        >>> from lightning_lrsched.models import DigitsClassifier
        >>> stacked_metrics_of(DigitsClassifier()).__qualname__
        'SyntheticClassifier.stacked_metrics'
    """
    cls = type(module)
    own = getattr(cls, "stacked_metrics", None)
    if not callable(own):
        raise Unstackable(
            f"{cls.__name__} has no `stacked_metrics(batch)` method saying how to score a batch "
            "(the stacking protocol: see lightning_lrsched.compare.stacked)"
        )
    definer = defined_by(cls, "stacked_metrics")
    for step in STEPS:
        stepper = defined_by(cls, step)
        if definer is not None and stepper is not None and stepper is not definer and issubclass(stepper, definer):
            # The inherited scoring may no longer be what the overridden step computes.
            raise Unstackable(
                f"{cls.__name__} overrides `{step}` (in {stepper.__name__}) but inherits `stacked_metrics` "
                f"from {definer.__name__}: define {stepper.__name__}.stacked_metrics to match it"
            )
    for hook in COPY_HOOKS:
        if owner := own_override(cls, hook):
            raise Unstackable(
                f"{cls.__name__} overrides `{hook}` (in {owner.__name__}): a stacked run scores and steps its copies "
                "itself and would not call it, so a copy might not train as its run of its own does"
            )
    return own


def check_stackable(module: nn.Module) -> MetricsFn:
    """What a stacked run needs of ``module`` that its class and optimizer tell, before anything trains.

    Its scoring (:func:`stacked_metrics_of`, which also refuses a hook of its own), no callbacks of its
    own but this package's (``configure_callbacks``), and an optimizer the copies can share
    (:func:`~.optimizer.check_shareable`), each where it can be read outside a run (else the run
    checks the optimizer when it builds it). What ``vmap`` cannot run shows only when it runs
    (:meth:`StackedModule.probe`).

    Raises:
        Unstackable: why, in one line.
    """
    metrics = stacked_metrics_of(module)
    lightning_module = cast(L.LightningModule, module)
    # What the module asks for serves the one stacked Trainer: ours (a plateau driver) serve every copy; another
    # (EarlyStopping on val_loss, a checkpoint) would act once for all of them, on metrics named per copy.
    try:
        callbacks = lightning_module.configure_callbacks()
    except Exception:  # it reads the Trainer (or more): Lightning will tell in the run
        callbacks = []
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])
    if own := sorted({type(c).__name__ for c in callbacks if not type(c).__module__.startswith("lightning_lrsched.")}):
        raise Unstackable(
            f"{type(module).__name__}.configure_callbacks returns {', '.join(own)}: a stacked run would run it once "
            "for all its copies, not once per run"
        )
    try:
        optimizer = own_optimizer(lightning_module)
    except Exception:  # it needs a Trainer, or more: configure_optimizers checks it in the run
        return metrics
    check_shareable(optimizer)
    return metrics


class _Scored(nn.Module):
    """``forward(batch)`` = the metrics of ``module`` on ``batch``: what ``functional_call`` runs."""

    def __init__(self, module: nn.Module, metrics: MetricsFn) -> None:
        super().__init__()
        self.module = module
        self.metrics = metrics

    def forward(self, batch: Any) -> Mapping[str, torch.Tensor]:
        return self.metrics(self.module, batch)


def _check_same_state(copies: Sequence[nn.Module]) -> None:
    """The copies' parameters and buffers can be stacked: same names, shapes and dtypes (else :class:`Unstackable`)."""

    def layout(module: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
        state = [*module.named_parameters(), *module.named_buffers()]
        return [(name, tuple(t.shape), t.dtype, t.requires_grad) for name, t in state]

    first = layout(copies[0])
    for k, copy in enumerate(copies[1:], start=1):
        other = layout(copy)
        if other != first:
            diff = next((a, b) for a, b in itertools.zip_longest(first, other) if a != b)
            raise Unstackable(
                f"the copies' parameters and buffers differ (copy 0: {diff[0]}, copy {k}: {diff[1]}): "
                "they cannot be stacked"
            )


def _buffer_homes(module: nn.Module) -> list[list[tuple[nn.Module, str]]]:
    """Per buffer of ``module`` (in ``named_buffers()`` order), every (submodule, name) that holds it.

    A buffer shared by two submodules is held under both names: each must be re-pointed with it.
    """
    homes: dict[int, list[tuple[nn.Module, str]]] = {}
    for name, buffer in module.named_buffers(remove_duplicate=False):
        path, _, attribute = name.rpartition(".")
        homes.setdefault(id(buffer), []).append((module.get_submodule(path), attribute))
    return list(homes.values())


class StackedModule(L.LightningModule):
    """K copies of a module trained side by side, one param group and one schedule each.

    A copy whose gradient is not finite (checked every optimizer step, after gradients are
    averaged across processes, so every process decides alike) is reported to ``on_diverge``,
    which freezes it: its parameters no longer change (no gradient, so the optimizer skips them),
    it leaves the summed loss and logs nothing more; the other copies go on. Under a gradient
    scaler (``precision="16-mixed"``), whose overflows are routine, the gradients are not checked.

    Args:
        copies: the K modules, built with identical initial weights (seed, then construct).
        labels: one distinct name per copy, used in metric keys and param group names.
        schedules: one schedule per copy.
        on_diverge: ``(index, value, reason)`` for a copy whose gradient is not finite; it must
            call :meth:`freeze` (the compare worker also records the event). Default: freeze.
        per_copy_batches: every batch holds one batch per copy, stacked along a new leading
            dimension (copies of several seeds, see :mod:`.seeds`); otherwise all copies share it.

    Attributes:
        copy_losses: the copies' training losses of the last step (detached, shape ``(K,)``).
        frozen_at: per copy, ``(epochs, steps)`` when it was frozen, or ``None`` while it trains.
        invalid: ``{copy: reason}`` for the copies whose schedule cannot run (frozen at ``(0, 0)``).

    Raises:
        Unstackable: the module cannot be stacked (see the module docstring).
    """

    copy_losses: torch.Tensor
    _training: torch.Tensor  # a buffer

    def __init__(
        self,
        copies: Sequence[nn.Module],
        labels: Sequence[str],
        schedules: Sequence[Schedule],
        on_diverge: Callable[[int, float, str], None] | None = None,
        per_copy_batches: bool = False,
    ) -> None:
        super().__init__()
        if not copies or not len(copies) == len(labels) == len(schedules):
            raise InvalidValue(
                f"need one label and one schedule per copy: got {len(copies)} copies, {len(labels)} labels, "
                f"{len(schedules)} schedules"
            )
        if len(set(labels)) != len(labels) or any("/" in label for label in labels):
            raise InvalidValue(f"`labels` must be distinct and contain no '/': got {list(labels)}")
        first = copies[0]
        if any(type(c) is not type(first) for c in copies):
            raise Unstackable(f"the copies are of different classes: {sorted({type(c).__name__ for c in copies})}")
        metrics = check_stackable(first)  # as the module made it: stacked, its parameters no longer ask for gradients
        if param_schedules := getattr(first, "param_schedules", None):
            # The stacked optimizer schedules the LR only; the copies would silently lose these schedules.
            raise Unstackable(f"{type(first).__name__} schedules {', '.join(param_schedules)} besides the LR")
        self.copies = nn.ModuleList(copies)
        self.labels = list(labels)
        self.schedules = list(schedules)
        self._names = [name for name, _ in first.named_parameters()]
        if not self._names:
            raise Unstackable(f"{type(first).__name__} has no parameters to train")
        self._buffer_names = [name for name, _ in first.named_buffers()]
        _check_same_state(copies)
        # Per buffer, where each copy holds it: each copy's buffer becomes a view of its row of the stacked one.
        self._buffer_owners = [list(homes) for homes in zip(*(_buffer_homes(c) for c in copies), strict=True)]
        self._stacked_buffers: dict[str, torch.Tensor] = {}
        # The copies' parameters, listed once: the same objects for the module's lifetime (moving it to a
        # device changes their data, not them), where `parameters()` walks the module tree at every call.
        self._params = [list(c.parameters()) for c in copies]
        # The parameters every step computes with: per name, the copies' values stacked (the copies'
        # parameters become views of their rows; the optimizer updates those, see `_alias_copies`).
        # A parameter the module froze (requires_grad=False) stays frozen: no gradient, so no update.
        per_name = zip(*self._params, strict=True)
        self.stacked = nn.ParameterList(
            nn.Parameter(torch.stack([p.detach() for p in params]), requires_grad=params[0].requires_grad)
            for params in per_name
        )
        self._stacked_names = {f"module.{name}": p for name, p in zip(self._names, self.stacked, strict=True)}
        self._alias_copies()
        # Tied weights (one parameter under two names) must be replaced together; checking for them at
        # every call walks the module tree too, so functional_call does it only where there are any.
        aliases = [*first.named_parameters(remove_duplicate=False), *first.named_buffers(remove_duplicate=False)]
        self._tied = len(aliases) != len(self._names) + len(self._buffer_names)
        # Not a registered child: the copies are, and their parameters must be listed once.
        self._scored = (_Scored(first, metrics),)
        self.per_copy_batches = per_copy_batches
        self._set_randomness("different")
        self.draws_random = False
        self.copy_losses = torch.zeros(len(copies))
        self._sums: dict[str, tuple[dict[str, torch.Tensor], list[int]]] = {}
        self.frozen_at: list[tuple[int, int] | None] = [None] * len(copies)
        self.invalid: dict[int, str] = {}
        # Per copy, its param groups in the optimizer: one each until configure_optimizers reads the copies'.
        self.groups: list[list[int]] = [[k] for k in range(len(copies))]
        # Why the optimizer steps each copy on its own, or None where one update of the stacked tensors does it.
        self.per_copy_step: str | None = None
        self.on_diverge = on_diverge or (lambda index, value, reason: self.freeze(index))
        self.register_buffer("_training", torch.ones(len(copies), dtype=torch.bool), persistent=False)

    # -- the vectorised pass ---------------------------------------------------------------------
    def _score_one(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], batch: Any
    ) -> tuple[Mapping[str, torch.Tensor], dict[str, torch.Tensor]]:
        state = {**params, **buffers}
        metrics = functional_call(self._scored[0], state, (batch,), tie_weights=self._tied)
        # A buffer the forward assigns anew (`self.calls = self.calls + 1`) is left in `state` while the module
        # gets its old one back: returned, so that each copy keeps it as its run of its own does.
        return metrics, {name: state[name] for name in buffers if state[name] is not buffers[name]}

    def _run(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """Every copy's metrics on ``batch``; the pass updates the stacked buffers (so each copy's) in place."""
        if not self._buffers_aliased():
            self._alias_copies()
        metrics, assigned = self._vmapped(self._stacked_names, self._stacked_buffers, batch)
        with torch.no_grad():
            for name, value in assigned.items():
                self._stacked_buffers[name].copy_(value)
        return metrics

    def _alias_copies(self) -> None:
        """Make each copy's parameters and buffers views of their rows of the stacked ones (again after a move).

        The copies' parameters do not take part in the vectorised pass (the stacked ones do), so they
        require no gradient: a DDP wrapper averages the stacked gradients, and none is left waiting.
        The buffers are stacked from the copies' own (moving a module to a device replaces them), and
        each copy's becomes its row: what the pass writes (BatchNorm's running statistics) is each copy's.
        """
        for i, stacked in enumerate(self.stacked):
            for params, row in zip(self._params, stacked.detach().unbind(), strict=True):
                params[i].data = row
                params[i].requires_grad_(False)
        self._stacked_buffers = {}
        for name, owners in zip(self._buffer_names, self._buffer_owners, strict=True):
            stacked = torch.stack([getattr(*homes[0]) for homes in owners])
            for homes, row in zip(owners, stacked.unbind(), strict=True):
                for module, attribute in homes:
                    setattr(module, attribute, row)
            self._stacked_buffers[f"module.{name}"] = stacked

    def _buffers_aliased(self) -> bool:
        """Whether the copies' buffers are still views of the stacked ones (a move to a device or dtype
        replaces them: ``validate`` or ``test`` after ``.to(...)``, with no ``configure_optimizers`` since)."""
        if not self._buffer_names:
            return True
        stacked = self._stacked_buffers.get(f"module.{self._buffer_names[0]}")
        own = getattr(*self._buffer_owners[0][0][0])
        return stacked is not None and own.untyped_storage().data_ptr() == stacked.untyped_storage().data_ptr()

    def _share_gradients(self) -> None:
        """Hand each training copy its rows of the stacked gradients, as views (no copy; clipping reaches both).

        After every backward: whatever tensor holds the gradient now (a new one, the same one accumulated
        into, or a DDP bucket written again), the copies' gradients are its rows.
        """
        for i, stacked in enumerate(self.stacked):
            if stacked.grad is None:
                continue
            for k, row in enumerate(stacked.grad.unbind()):
                if self.frozen_at[k] is None:
                    self._params[k][i].grad = row

    def scores(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """Every copy's metrics on ``batch``: ``{key: tensor of shape (K,)}``; buffers updated per copy."""
        return self._run(batch)

    def _set_randomness(self, randomness: str) -> None:
        in_dims = (0, 0, 0 if self.per_copy_batches else None)
        self._vmapped = vmap(self._score_one, in_dims=in_dims, randomness=randomness)

    def probe(self, batch: Any) -> None:
        """One forward and backward in training mode, then one forward in evaluation without gradients (as
        validation runs it), leaving weights, gradients, buffers, modes and RNG as they were.

        It also finds whether the module draws random numbers (dropout; noise in evaluation): then every copy
        draws the same numbers, the ones its run of its own draws from the same random stream
        (``vmap(randomness="same")``; copies of one seed only).

        Raises:
            SeedsDrawApart: it draws random numbers and the copies are of several seeds.
            Unstackable: ``vmap`` cannot run the module (the first line of its error says why).
        """
        self._set_randomness("error")
        try:
            self._probe(batch)
        except Unstackable as error:
            if "randomness" not in str(error):
                raise
            self.draws_random = True
        finally:
            self._set_randomness("different")
        if self.draws_random:
            if self.per_copy_batches:
                raise SeedsDrawApart(
                    f"{type(self.copies[0]).__name__} draws random numbers in training (dropout): copies of several "
                    "seeds cannot each draw their own seed's"
                )
            self._set_randomness("same")
            self._probe(batch)
            self._check_draws_match(batch)

    def _check_draws_match(self, batch: Any) -> None:
        """Refuse a module whose copies, under ``vmap(randomness="same")``, do not draw what a run of its own draws.

        An operator whose batching rule folds the copies into its own batch (or a loop over them) draws
        a mask per copy: copies of one seed then part from each other and from their solo runs. From
        the same random state, every copy's loss must equal the first copy's loss computed alone.
        """
        if not all(torch.equal(p[0], row) for p in self.stacked for row in p[1:]):
            return  # the copies start apart (not one seed's): nothing to compare them by
        devices = sorted({p.device.index or 0 for p in self.stacked if p.device.type == "cuda"})
        first = self.copies[0]
        held = [(module, name, getattr(module, name)) for owners in self._buffer_owners for module, name in owners[0]]
        with torch.random.fork_rng(devices=devices), torch.no_grad(), self._buffers_kept(), self._numbers_kept():
            state = (torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices])
            with self._buffers_kept(), self._numbers_kept():  # the run alone starts from the same state (a counter)
                losses = self._run(deepcopy(batch))["loss"].detach()  # and batch: a forward may change it
            torch.set_rng_state(state[0])
            for device, cuda in zip(devices, state[1], strict=True):
                torch.cuda.set_rng_state(cuda, device)
            try:
                alone = self._scored[0](batch)["loss"].detach()
            finally:  # a buffer its forward assigns anew: the copy's is its row of the stacked one again
                for module, name, buffer in held:
                    setattr(module, name, buffer)
        if not torch.allclose(losses, alone.expand_as(losses), rtol=1e-4, atol=0.0):
            raise Unstackable(
                f"{type(first).__name__} draws random numbers in training that its stacked copies cannot draw as "
                f"its runs of their own do (an operator draws per copy under vmap): from one random state the "
                f"copies' first losses are {[round(v, 6) for v in losses.tolist()]}, one run's "
                f"{float(alone):.6g}"
            )

    @contextlib.contextmanager
    def _buffers_kept(self) -> Iterator[None]:
        """The copies' buffers (BatchNorm's running statistics) as they were before, whatever ran inside."""
        saved = {name: buffer.clone() for name, buffer in self._stacked_buffers.items()}
        try:
            yield
        finally:
            with torch.no_grad():
                for name, buffer in saved.items():
                    self._stacked_buffers[name].copy_(buffer)

    @contextlib.contextmanager
    def _numbers_kept(self) -> Iterator[None]:
        """The copies' plain Python numbers (a call counter their forward advances) as they were when it ends.

        Those it created are gone again; the modes (``training``) are :meth:`_evaluating`'s.
        """

        def numbers(module: nn.Module) -> dict[str, Any]:
            return {k: v for k, v in vars(module).items() if type(v) in (bool, int, float) and k != "training"}

        saved = [(m, numbers(m)) for m in self.copies.modules()]
        try:
            yield
        finally:
            for module, before in saved:
                for name in numbers(module).keys() - before.keys():
                    delattr(module, name)
                vars(module).update(before)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The copies in evaluation mode, as validation runs them; every submodule's own mode back after."""
        modes = [(module, module.training) for module in self.copies.modules()]
        self.copies.eval()
        try:
            yield
        finally:
            for module, training in modes:
                module.training = training

    def _probe(self, batch: Any) -> None:
        stage = ""
        with torch.random.fork_rng(devices=[]), self._buffers_kept(), self._numbers_kept():
            try:
                scores = self._run(batch)
                if "loss" not in scores:
                    raise Unstackable(f"`stacked_metrics` must return a 'loss': got keys {sorted(scores)}")
                scores["loss"].sum().backward()
                # Without gradients some layers take another path (nn.TransformerEncoder packs a padded batch
                # into nested tensors): found here, not by a stacked run's first validation.
                stage = " in evaluation"
                with self._evaluating(), torch.no_grad():
                    self._run(batch)
            except Unstackable:
                raise
            except Exception as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise Unstackable(f"vmap cannot run {type(self.copies[0]).__name__}{stage}: {reason}") from error
            finally:
                for p in self.parameters():
                    p.grad = None

    # -- training --------------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        losses = self.scores(batch)["loss"]
        self.copy_losses = losses.detach()
        self._add("train", {"loss": self.copy_losses}, batch)
        # A non-finite loss stays in: it makes its own copy's gradient non-finite, which every
        # process then sees alike (on_before_optimizer_step); the copies' gradients never mix.
        return torch.where(self._training, losses, torch.zeros_like(losses)).sum()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Logged at the epoch's last batch, before the callbacks' on_train_epoch_end read it (any
        # split gives the same epoch mean: each part is weighted by its samples).
        batches = self.trainer.num_training_batches
        if batch_idx + 1 == batches or not math.isfinite(batches):
            self._log_epoch("train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")  # what is left when max_steps ends an epoch early

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._add("val", self.scores(batch), batch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._add("test", self.scores(batch), batch)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _add(self, stage: str, scores: Mapping[str, torch.Tensor], batch: Any) -> None:
        """Accumulate batch-size weighted sums, as ``self.log``'s epoch mean does for a run of its own."""
        size = copy_batch_size(batch) if self.per_copy_batches else extract_batch_size(batch)
        sums, count = self._sums.setdefault(stage, ({}, [0]))
        for key, values in scores.items():
            weighted = values.detach() * size
            sums[key] = sums[key] + weighted if key in sums else weighted
        count[0] += size

    def _log_epoch(self, stage: str) -> None:
        # One self.log per copy and key per epoch: logging K values every step costs more than the step.
        sums, (count,) = self._sums.pop(stage, ({}, [0]))
        if not count:
            return
        for key, total in sums.items():
            means = total / count
            for k, label in enumerate(self.labels):
                if self.frozen_at[k] is None:
                    # batch_size=count: across processes Lightning weighs each one's mean by its samples.
                    self.log(
                        f"{stage}_{key}/{label}",
                        means[k],
                        on_step=False,
                        on_epoch=True,
                        sync_dist=True,
                        batch_size=count,
                    )

    # One copy, not LightningModule.freeze's whole module (which a stacked module has no use for).
    def freeze(self, index: int) -> None:  # type: ignore[override]
        """Stop training copy ``index`` (diverged): no more updates, out of the loss, no more metrics."""
        if self.frozen_at[index] is not None:
            return
        self.frozen_at[index] = (self.trainer.current_epoch + 1, self.trainer.global_step)
        self._training[index] = False

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        super().backward(loss, *args, **kwargs)
        self._share_gradients()

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        super().optimizer_zero_grad(epoch, batch_idx, optimizer)
        for stacked in self.stacked:
            stacked.grad = None

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.trainer.scaler is None:
            self._freeze_non_finite()
        # Without a gradient the optimizer skips a parameter: no momentum, no weight decay either.
        for k, copy in enumerate(self.copies):
            if self.frozen_at[k] is not None:
                for p in copy.parameters():
                    p.grad = None

    def _freeze_non_finite(self) -> None:
        training = [k for k, at in enumerate(self.frozen_at) if at is None]
        if not training:
            return
        # Per copy, the sum of its gradients, from the stacked gradients: a few kernels per step, not
        # one per copy and parameter. A sum is finite when all its terms are, unless it overflows:
        # only then are the copy's gradients checked one by one.
        copies = len(self.copies)
        grads = [s.grad.reshape(copies, -1).sum(1, dtype=torch.float32) for s in self.stacked if s.grad is not None]
        sums = torch.stack(grads).sum(0).isfinite().tolist() if grads else [True] * copies  # one host sync
        finite = [sums[k] or self._grads_finite(k) for k in training]
        for k, ok in zip(training, finite, strict=True):
            if not ok:
                loss = float(self.copy_losses[k])
                reason = f"the gradient of {self.labels[k]} is not finite (its loss: {loss:.6g})"
                self.on_diverge(k, math.nan, reason)

    def _grads_finite(self, k: int) -> bool:
        return all(bool(p.grad.isfinite().all()) for p in self._params[k] if p.grad is not None)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # Per copy, as each would clip alone: a norm over all copies would couple them.
        if not gradient_clip_val:
            return
        for own in self._params:
            params = [p for p in own if p.grad is not None]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def configure_callbacks(self) -> Any:
        # What the module asks for (a driver of its plateau schedules, say) serves every copy: one Trainer.
        return cast(L.LightningModule, self.copies[0]).configure_callbacks()

    def configure_optimizers(self) -> Any:
        self._alias_copies()  # Lightning moved the module to its device: the copies' parameters are copies again
        optimizer = self._copies_optimizer()
        check_shareable(optimizer)  # one the copies' configure_optimizers build in the run only
        schedules = list(self.schedules)
        invalid, cycles = self._check_schedules(optimizer)
        for k, reason in invalid.items():
            # The copy does not train; a placeholder keeps the others' groups where they are.
            self.invalid[k] = reason
            schedules[k] = get_schedule("cosine")
            self.frozen_at[k] = (0, 0)
            self._training[k] = False
        per_group = [schedules[k] for k, groups in enumerate(self.groups) for _ in groups]
        monitors = [
            f"{schedules[k].monitor}/{self.labels[k]}" if schedules[k].is_plateau else None
            for k, groups in enumerate(self.groups)
            for _ in groups
        ]
        if cycles:
            self.per_copy_step = "a schedule cycles momentum, which then differs between the copies"
        else:
            made = vectorise(optimizer, self.groups, self._params, list(self.stacked), lambda: self._training)
            self.per_copy_step, optimizer = (made, optimizer) if isinstance(made, str) else (None, made)
        config = GroupSchedules(per_group).lightning_config(optimizer, self.trainer, name="lr", monitors=monitors)
        return {"optimizer": optimizer, "lr_scheduler": config}

    def copy_param_groups(self, k: int, optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
        """Copy ``k``'s param groups of ``optimizer`` (see :attr:`groups`)."""
        return [optimizer.param_groups[g] for g in self.groups[k]]

    def _copies_optimizer(self) -> torch.optim.Optimizer:
        """One optimizer holding every copy's param groups, each built by that copy's own ``configure_optimizers``.

        Each copy's groups keep their settings (momentum, weight decay, betas, a no-decay group), so
        each copy trains as its run of its own would. The groups of copy ``k`` are named ``<label>``
        (``<label>/<i>`` when it has several) and listed in :attr:`groups`.
        """
        optimizers = []
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached (built by hand): the copies' configure_optimizers get none either
            trainer = None
        for k, module in enumerate(self.copies):
            copy = cast(L.LightningModule, module)
            if trainer is not None:
                copy.trainer = trainer  # its configure_optimizers may read the run (estimated_stepping_batches)
            # It sees its parameters as the module made them (a filter on requires_grad keeps working).
            for param, stacked in zip(self._params[k], self.stacked, strict=True):
                param.requires_grad_(stacked.requires_grad)
            try:
                optimizers.append(own_optimizer(copy))
            finally:
                for param in self._params[k]:
                    param.requires_grad_(False)
        kinds = {type(o) for o in optimizers}
        if len(kinds) > 1:
            raise InvalidValue(
                f"the copies' configure_optimizers return different optimizers: {sorted(map(str, kinds))}"
            )
        merged = optimizers[0]
        self.groups = []
        for k, (optimizer, label) in enumerate(zip(optimizers, self.labels, strict=True)):
            groups = list(optimizer.param_groups)
            for i, group in enumerate(groups):
                group["name"] = label if len(groups) == 1 else f"{label}/{i}"
            start = len(merged.param_groups) if k else 0
            if k:
                for group in groups:
                    merged.add_param_group(dict(group))
            self.groups.append(list(range(start, start + len(groups))))
        return merged

    def _check_schedules(self, optimizer: torch.optim.Optimizer) -> tuple[dict[int, str], bool]:
        """Build every copy's schedule alone against this run and an optimizer like the copies':
        ``{copy: why it cannot run}``, and whether one of those that can cycles momentum.

        A schedule that cannot run with the copies' optimizer (``cyclic`` cycles momentum, which
        Adagrad has not) fails its copy alone, as its run of its own fails alone.
        """
        plan = plan_from_trainer(self.trainer)
        lr = float(optimizer.param_groups[self.groups[0][0]]["lr"])
        kind: Any = type(optimizer)
        settings = {**constructor_arguments(optimizer), "lr": lr}
        invalid, cycles = {}, False
        for k, schedule in enumerate(self.schedules):
            # The copies' class (one check_shareable accepted) with their constructor's settings, on a parameter
            # of its own: each build moves its LR, so one each.
            probe = kind([torch.zeros(1, requires_grad=True)], **settings)
            try:
                args = plan.build_args(schedule.interval)
                built = schedule.build(probe, total_steps=args["total_steps"], steps_per_epoch=args["steps_per_epoch"])
            except (ValueError, TypeError) as error:
                invalid[k] = f"{self.labels[k]} cannot run here: {error}"
            else:
                cycles = cycles or built.cycles_momentum
        return invalid, cycles

    # -- shedding copies mid-run ---------------------------------------------------------------------
    def drop(self, indices: Sequence[int]) -> None:
        """Remove copies ``indices`` from the run, mid-fit, in place: the vectorised pass no longer computes them.

        Their rows leave the stacked parameters, their param groups and optimizer state leave the
        optimizer, and their lanes leave the scheduler
        (:meth:`~lightning_lrsched.schedules.GroupScheduledLR.remove_groups`); the other copies keep
        their weights, buffers, optimizer state and the place they had reached in their full run's
        schedule, renumbered in order, so each trains on as it would with the dropped copies frozen.
        Call it between steps (an epoch end), single-process (a DDP wrapper holds the stacked
        parameters it was built with).

        Raises:
            InvalidValue: ``indices`` names no copy of this module, or all of them; the run has several processes.
        """
        gone = set(indices)
        if not gone:
            return
        keep = [k for k in range(len(self.copies)) if k not in gone]
        if not gone <= set(range(len(self.copies))) or not keep:
            raise InvalidValue(
                f"`indices` must name some but not all of the {len(self.copies)} copies: got {sorted(gone)}"
            )
        if self.trainer.world_size > 1:
            raise InvalidValue(
                f"copies can be dropped from a single-process run only: this one has {self.trainer.world_size} "
                "processes, whose DDP wrapper keeps the stacked parameters it was built with"
            )
        groups = sorted(g for k in gone for g in self.groups[k])
        for optimizer in self.trainer.optimizers:
            for g in groups:
                for param in optimizer.param_groups[g]["params"]:
                    optimizer.state.pop(param, None)
            optimizer.param_groups[:] = [group for g, group in enumerate(optimizer.param_groups) if g not in groups]
        for config in self.trainer.lr_scheduler_configs:
            remove_groups = getattr(config.scheduler, "remove_groups", None)
            if remove_groups is None:
                raise InvalidValue(f"copies cannot be dropped under a {type(config.scheduler).__name__}")
            remove_groups(groups)
        renumbered, start = [], 0
        for k in keep:
            renumbered.append(list(range(start, start + len(self.groups[k]))))
            start += len(self.groups[k])
        self.groups = renumbered
        for i, stacked in enumerate(self.stacked):
            self.stacked[i] = nn.Parameter(stacked.detach()[keep], requires_grad=stacked.requires_grad)
        self._stacked_names = {f"module.{name}": p for name, p in zip(self._names, self.stacked, strict=True)}
        for optimizer in self.trainer.optimizers:
            if isinstance(optimizer, VectorisedOptimizer):
                optimizer.keep_rows(keep, list(self.stacked), self.groups)
        self.copies = nn.ModuleList(self.copies[k] for k in keep)
        self._params = [self._params[k] for k in keep]
        self._buffer_owners = [[owners[k] for k in keep] for owners in self._buffer_owners]
        self._alias_copies()
        self._scored = (_Scored(self.copies[0], self._scored[0].metrics),)
        self.labels = [self.labels[k] for k in keep]
        self.schedules = [self.schedules[k] for k in keep]
        self.frozen_at = [self.frozen_at[k] for k in keep]
        self.invalid = {keep.index(k): reason for k, reason in self.invalid.items() if k in keep}
        self.copy_losses = self.copy_losses[keep]
        self._training = self._training[keep]
        for sums, _ in self._sums.values():
            for key, total in sums.items():
                sums[key] = total[keep]
